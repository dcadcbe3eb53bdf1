-- Incidents: the periods a store was down within its business hours, by the rules of
-- src/domain/incident.rs, evaluated in the transaction that stores the polls.

CREATE TABLE incidents (
    id             uuid        PRIMARY KEY,
    -- A stores.id. Like polls, without a foreign key: stores are never deleted, and its
    -- check locked each store's row for every incident and event a push wrote.
    store          integer     NOT NULL,
    -- The first inactive poll of the run that opened it.
    opened_at      timestamptz NOT NULL,
    -- The first active poll of the run that resolved it; NULL while the store is down.
    resolved_at    timestamptz CHECK (resolved_at > opened_at),
    -- Inactive polls within business hours from its opening to its resolution.
    inactive_polls integer     NOT NULL CHECK (inactive_polls > 0),
    -- One open incident per store. Deferrable to the end of each statement, so that one
    -- statement may resolve a store's incident and open its next.
    CONSTRAINT incidents_one_open EXCLUDE USING btree (store WITH =) WHERE (resolved_at IS NULL)
        DEFERRABLE INITIALLY IMMEDIATE
);
CREATE INDEX incidents_store ON incidents (store, opened_at);
CREATE INDEX incidents_newest ON incidents (opened_at DESC, id);

-- Where each store's evaluation stands: the run of its last poll within business hours, so
-- that polls arriving in time order step on from it without reading older ones (its open
-- incident is the one of `incidents` with no resolved_at).
-- Where each store stands: the newest poll within business hours evaluated (polls after it
-- step on; earlier ones, late or repeated, make the store be evaluated afresh from its
-- stored polls) and the run of equal statuses it belongs to. In buckets of 128 stores by id
-- (`store / 128`), rewritten whole by the evaluation that touched one of their stores: see
-- src/db/health.rs, which reads and writes them.
CREATE TABLE store_health (
    bucket integer PRIMARY KEY,
    -- A record of 25 bytes a store, by store, big-endian: its id (int4); flags (1 byte: 1 it
    -- has a last poll, 2 a run, 4 the run is active, 8 evaluate it afresh from its first
    -- poll); the last poll and the run's first (int8, microseconds since 1970 UTC); the
    -- run's length (int4).
    states bytea   NOT NULL
);
-- 3,200 bytes at most, kept in the row as they are: compressing them on every write cost
-- more than the write.
ALTER TABLE store_health ALTER states SET STORAGE PLAIN;
-- Stores whose polls were stored before incidents were evaluated: afresh, from their first.
INSERT INTO store_health (bucket, states)
SELECT id / 128, string_agg(int4send(id) || '\x08'::bytea || int8send(0) || int8send(0) || int4send(0), ''::bytea ORDER BY id)
FROM stores WHERE first_poll IS NOT NULL GROUP BY id / 128;

CREATE TABLE incident_events (
    -- Under the incidents' lock (one evaluation at a time), so in commit order: a reader
    -- that has seen seq N has seen every event before it.
    seq            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             uuid        NOT NULL UNIQUE,
    kind           text        NOT NULL CHECK (kind IN ('opened', 'resolved', 'withdrawn')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    incident       uuid        NOT NULL,
    store          integer     NOT NULL,
    opened_at      timestamptz NOT NULL,
    resolved_at    timestamptz,
    inactive_polls integer     NOT NULL
);
CREATE INDEX incident_events_created ON incident_events (created_at);
