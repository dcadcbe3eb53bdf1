-- Reports: one row per triggerReport, and the rows of each finished report.
--
-- A report moves PENDING → RUNNING → COMPLETE or FAILED. Every change is announced with
-- NOTIFY report_events (payload: the report as JSON), which is how subscriptions in any
-- process hear of work done in any other.

CREATE TABLE reports (
    id             uuid        PRIMARY KEY,
    status         text        NOT NULL DEFAULT 'PENDING'
                               CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETE', 'FAILED')),
    interpolation  text        NOT NULL CHECK (interpolation IN ('NEAREST', 'FORWARD_FILL')),
    -- The asOf the client asked for (NULL: the newest poll)...
    requested_as_of timestamptz,
    -- ... and the instant the report was computed at, fixed when it starts RUNNING.
    as_of          timestamptz,
    -- The data version it was computed from (see data_loads.changed). A new report with the
    -- same data version, asOf and interpolation as a COMPLETE one reuses its result.
    data_version   bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    stores_total   integer,
    stores_done    integer     NOT NULL DEFAULT 0,
    error          text,
    -- The report whose rows and CSV this one shares (itself when it computed them).
    result_of      uuid        REFERENCES reports (id),
    -- The W3C trace context of the request that triggered it, carried into the job.
    traceparent    text
);
CREATE INDEX reports_created ON reports (created_at DESC, id DESC);
-- Finding a finished result to reuse.
CREATE INDEX reports_reusable ON reports (data_version, as_of, interpolation) WHERE status = 'COMPLETE';

-- A finished report's rows, for paginated reads. The figures are kept exactly as the CSV
-- writes them: hundredths of minutes (last hour) or hours (day, week).
CREATE TABLE report_rows (
    report                 uuid    NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    -- Byte order, as the CSV sorts them; also the pagination cursor.
    store_id               text    COLLATE "C" NOT NULL,
    uptime_last_hour       integer NOT NULL,
    uptime_last_day        integer NOT NULL,
    uptime_last_week       integer NOT NULL,
    downtime_last_hour     integer NOT NULL,
    downtime_last_day      integer NOT NULL,
    downtime_last_week     integer NOT NULL,
    PRIMARY KEY (report, store_id)
);
