-- Polls partitioned by week (PostgreSQL's declarative range partitioning on `at`), so that
-- history can grow for years and be pruned by dropping whole partitions, never by a long
-- DELETE.
--
-- Partitions: `polls_pYYYYMMDD` holds the week from that Monday 00:00 UTC to the next,
-- made for the weeks incoming polls fall in by `store_monitor_add_poll_partitions`, in the
-- loader's transaction. Once pruning has run, `polls_before` holds everything before the
-- oldest week kept (`poll_history.kept_from`): each store's last poll before it, which is
-- all a report whose week starts later needs (its status at the window's start). There is
-- no DEFAULT partition: with only range partitions PostgreSQL reads them in time order, so
-- "a store's last poll before T" stops at the first partition that has one.
--
-- Every poll of the unpartitioned table is moved over; the primary key stays one poll per
-- store and instant (it must include the partition key, and does).
--
-- `edge` marks the polls a report needs: a store's status only changes at the first or last
-- poll of a run of equal statuses, so the polls inside a run change no figure, under either
-- interpolation (the nearest poll to any instant inside a run is in the run; forward fill
-- holds the run's first status). Reports read `polls_edges`, a partial index of those:
-- a tenth of the polls where stores are mostly up. A poll marked an edge that is not one
-- costs a little reading and nothing else; an edge left unmarked would be wrong, so every
-- load marks the polls it adds and their neighbours anew.

ALTER TABLE polls RENAME TO polls_unpartitioned;
ALTER TABLE polls_unpartitioned RENAME CONSTRAINT polls_pkey TO polls_unpartitioned_pkey;

CREATE TABLE polls (
    store  integer     NOT NULL,
    at     timestamptz NOT NULL,
    active boolean     NOT NULL,
    -- The first or last poll of a run of equal statuses (or marked so to be safe).
    edge   boolean     NOT NULL DEFAULT true
) PARTITION BY RANGE (at);

-- Where complete history begins. One row, made by the first pruning.
CREATE TABLE poll_history (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    -- Polls before this instant were pruned, except each store's last one (`polls_before`).
    kept_from timestamptz NOT NULL
);

-- Every pruning, for the operators and `dataset`: what went.
CREATE TABLE poll_prunings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finished_at timestamptz NOT NULL DEFAULT now(),
    -- The week partition dropped (its Monday, UTC), and the new start of complete history.
    week        timestamptz NOT NULL,
    kept_from   timestamptz NOT NULL,
    -- Polls removed: the week's, and the older ones its polls superseded as a store's last.
    polls       bigint      NOT NULL,
    -- The newest poll and --keep-polls-days that made the week old enough to go.
    newest_poll timestamptz NOT NULL,
    keep_days   integer     NOT NULL
);

-- Polls an admin removed through the API (`deletePolls`), recorded as a status load
-- without a file: `dataset.polls` adds up the loads' rows_inserted less these.
ALTER TABLE data_loads ADD COLUMN rows_deleted bigint NOT NULL DEFAULT 0;

-- Partition maintenance and pruning take this lock (transaction-scoped): they never
-- interleave, whichever process runs them.
CREATE FUNCTION store_monitor_poll_partitions_lock() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT 7305814902117731330::bigint $$;

-- Makes the partitions of the given weeks (Mondays 00:00 UTC) that do not exist yet; a week
-- before `kept_from` needs none (`polls_before` takes its polls). Each is created on its
-- own and attached, which takes a SHARE UPDATE EXCLUSIVE lock on `polls` (CREATE TABLE …
-- PARTITION OF would take ACCESS EXCLUSIVE and wait for every running report). Returns
-- how many it made.
CREATE FUNCTION store_monitor_add_poll_partitions(weeks timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    week timestamptz;
    kept timestamptz;
    name text;
    made integer := 0;
BEGIN
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

-- Prunes the week partition starting at `week`, which must be the oldest one: its polls
-- and `polls_before`'s become `polls_before` anew, holding each store's last poll before
-- the week's end. Returns how many polls went. One transaction: it happens whole or not.
CREATE FUNCTION store_monitor_prune_poll_week(week timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'polls_p' || to_char(week AT TIME ZONE 'UTC', 'YYYYMMDD');
    week_end timestamptz := week + interval '168 hours';
    before_total bigint;
    after_total bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(store_monitor_poll_partitions_lock());
    IF to_regclass(format('public.%I', name)) IS NULL THEN
        RAISE EXCEPTION 'no poll partition %', name;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'polls'::regclass AND c.relname LIKE 'polls\_p%' AND c.relname < name) THEN
        RAISE EXCEPTION 'poll partition % is not the oldest week', name;
    END IF;
    SELECT count(*) INTO before_total FROM polls WHERE at < week_end;
    CREATE TABLE public.polls_before_next (LIKE polls);
    -- One index probe per store: the partitions are read newest first, lazily.
    INSERT INTO public.polls_before_next (store, at, active, edge)
    SELECT s.id, p.at, p.active, true FROM stores s CROSS JOIN LATERAL (
        SELECT at, active FROM polls WHERE store = s.id AND at < week_end ORDER BY at DESC LIMIT 1) p;
    GET DIAGNOSTICS after_total = ROW_COUNT;
    ALTER TABLE public.polls_before_next ADD CONSTRAINT polls_before_next_pkey PRIMARY KEY (store, at) INCLUDE (active);
    IF to_regclass('public.polls_before') IS NOT NULL THEN
        ALTER TABLE polls DETACH PARTITION public.polls_before;
        DROP TABLE public.polls_before;
    END IF;
    EXECUTE format('ALTER TABLE polls DETACH PARTITION public.%I', name);
    EXECUTE format('DROP TABLE public.%I', name);
    ALTER TABLE public.polls_before_next RENAME TO polls_before;
    ALTER INDEX public.polls_before_next_pkey RENAME TO polls_before_pkey;
    EXECUTE format('ALTER TABLE polls ATTACH PARTITION public.polls_before FOR VALUES FROM (MINVALUE) TO (%L)', week_end);
    INSERT INTO poll_history (kept_from) VALUES (week_end)
    ON CONFLICT (one) DO UPDATE SET kept_from = EXCLUDED.kept_from;
    RETURN before_total - after_total;
END $$;

SELECT store_monitor_add_poll_partitions(
    ARRAY(SELECT DISTINCT date_trunc('week', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM polls_unpartitioned));

-- Moved without the keys, which are then built once per partition: far faster than keeping
-- them up to date row by row.
INSERT INTO polls (store, at, active, edge)
SELECT store, at, active,
       active IS DISTINCT FROM lag(active) OVER w OR active IS DISTINCT FROM lead(active) OVER w
FROM polls_unpartitioned
WINDOW w AS (PARTITION BY store ORDER BY at);
DROP TABLE polls_unpartitioned;

ALTER TABLE polls ADD CONSTRAINT polls_pkey PRIMARY KEY (store, at) INCLUDE (active);
CREATE INDEX polls_edges ON polls (store, at) INCLUDE (active) WHERE edge;
COMMENT ON CONSTRAINT polls_pkey ON polls IS
    'One poll per store and instant (the first loaded wins), and the report''s read path: an index-only scan per partition, all-visible after a first load (COPY FREEZE into each partition); later additions are left to autovacuum.';
