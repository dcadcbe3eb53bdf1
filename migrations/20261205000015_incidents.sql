-- Incidents: the periods a store was down within its business hours, by the rules of
-- src/domain/incident.rs, evaluated in the transaction that stores the polls.

CREATE TABLE incidents (
    id             uuid        PRIMARY KEY,
    store          integer     NOT NULL REFERENCES stores (id),
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
CREATE TABLE store_health (
    store      integer     PRIMARY KEY REFERENCES stores (id),
    -- The newest poll within business hours evaluated: polls after it step on; earlier
    -- ones (late, or repeated) make the store be evaluated afresh from its stored polls.
    last_poll  timestamptz,
    run_start  timestamptz,
    run_active boolean,
    run_length integer,
    -- Evaluate it afresh from its first poll next time: its polls were stored before
    -- incidents were evaluated (this migration), or some were removed.
    from_history boolean   NOT NULL DEFAULT false
);
INSERT INTO store_health (store, from_history)
SELECT id, true FROM stores WHERE first_poll IS NOT NULL;

-- The outbox of what followers of incidents are told, written in the transaction that
-- changes the incident: the `incidents` subscription reads it, and webhook deliveries are
-- made from it. Each row keeps the incident as it was then, so that a retry sends the same.
CREATE TABLE incident_events (
    -- Under the incidents' lock (one evaluation at a time), so in commit order: a reader
    -- that has seen seq N has seen every event before it.
    seq            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             uuid        NOT NULL UNIQUE,
    kind           text        NOT NULL CHECK (kind IN ('opened', 'resolved', 'withdrawn')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    incident       uuid        NOT NULL,
    store          integer     NOT NULL REFERENCES stores (id),
    opened_at      timestamptz NOT NULL,
    resolved_at    timestamptz,
    inactive_polls integer     NOT NULL
);
CREATE INDEX incident_events_created ON incident_events (created_at);
