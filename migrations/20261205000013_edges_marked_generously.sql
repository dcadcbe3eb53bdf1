-- Loads mark the edges of runs generously, and a maintenance job makes them exact.
--
-- A load used to mark the edges around what it added exactly, with a window over each
-- touched span: 3 s of an hourly reload at 140,000 stores, in the load's transaction, while
-- every other load waited. Now a load marks the polls it adds, the stored polls among them
-- and each added span's two neighbours as edges: a superset (a poll inside a run marked an
-- edge costs a little reading; an edge left unmarked would be wrong, and cannot be: a stored
-- poll's neighbours change only next to what was added or removed). It notes each span
-- here, and `jobs/tidy_edges.rs` unmarks what is no edge, some thousands of stores a
-- transaction, every minute.
CREATE TABLE edge_work (
    store integer     NOT NULL,
    lo    timestamptz NOT NULL,
    hi    timestamptz NOT NULL
);
CREATE INDEX edge_work_store ON edge_work (store);

COMMENT ON TABLE edge_work IS
    'Spans of polls whose edge marks may be more than needed: the next tidy_edges makes them exact.';

-- Loads come concurrently (pushes): only one whose polls fall in a week without its
-- partition takes the partitions' lock; the others go on.
CREATE OR REPLACE FUNCTION store_monitor_add_poll_partitions(weeks timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    week timestamptz;
    kept timestamptz;
    name text;
    made integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM unnest(weeks) AS w
                   WHERE w IS NOT NULL
                     AND to_regclass(format('public.%I', 'polls_p' || to_char(w AT TIME ZONE 'UTC', 'YYYYMMDD'))) IS NULL) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(store_monitor_poll_partitions_lock());
    SELECT kept_from INTO kept FROM poll_history;
    FOR week IN SELECT DISTINCT w FROM unnest(weeks) AS w WHERE w IS NOT NULL ORDER BY w LOOP
        IF week <> date_trunc('week', week AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
            RAISE EXCEPTION 'a poll partition starts on a Monday 00:00 UTC, not at %', week;
        END IF;
        CONTINUE WHEN week < kept;
        name := 'polls_p' || to_char(week AT TIME ZONE 'UTC', 'YYYYMMDD');
        CONTINUE WHEN to_regclass(format('public.%I', name)) IS NOT NULL;
        EXECUTE format('CREATE TABLE public.%I (LIKE polls)', name);
        -- 168 hours, not 7 days: a day is 23 or 25 hours across DST in the session's zone.
        EXECUTE format('ALTER TABLE polls ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                       name, week, week + interval '168 hours');
        made := made + 1;
    END LOOP;
    RETURN made;
END $$;

-- A load a pushed batch: the newest poll (every push answers it, every report's default
-- *now*) is read from the newest loads, not from all of them.
CREATE INDEX data_loads_newest_poll ON data_loads (newest_poll) WHERE outcome = 'loaded';

-- `Idempotency-Key` of pushed batches (the IETF draft): a key a caller sends with a batch,
-- kept a day with what the batch did, so that a retry whose answer was lost gets the same
-- answer, and the key sent with another batch is refused. Claimed in the batch's
-- transaction: a retry racing the first waits for it, then reads its answer.
CREATE TABLE idempotency_keys (
    principal    text        NOT NULL,
    key          text        NOT NULL,
    fingerprint  text        NOT NULL,
    load         bigint,
    data_version bigint,
    newest_poll  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
