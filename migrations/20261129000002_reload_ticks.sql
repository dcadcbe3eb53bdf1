-- The scheduled reload runs in every server and worker process, and each process's
-- scheduler fires at every tick. The first process to claim a tick here runs that reload;
-- the others see the claim and skip it. (Loads are also serialized by an advisory lock,
-- so a late claimer could not interleave, only repeat work.)
CREATE TABLE reload_ticks (
    -- The scheduled instant of the tick (the same in every process).
    tick       timestamptz PRIMARY KEY,
    -- Which process ran it: its worker name.
    claimed_by text        NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
