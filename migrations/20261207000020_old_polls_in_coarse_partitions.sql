-- Old polls go into coarse partitions: a week partition each, whatever week a poll fell in,
-- let one batch of a poll a week from 2000 make 1,406 partitions, and then every report
-- planned, locked and walked them all (0.65 s became 116 s; PostgreSQL ran out of shared
-- memory for locks, `max_locks_per_transaction`).
--
-- The policy: a week within 53 weeks before the newest week stored or arriving keeps a
-- partition of its own, as before (what reports, pruning and pushes work on). An older week
-- gets none: its polls go into the partition of its 52-week block (blocks start on Mondays
-- from 1999-12-27, the week of the earliest poll taken), which covers as much of the block
-- as no other partition does. However many old weeks arrive, that is at most one partition
-- a block (27 since 2000) and one more beside each run of week partitions made while that
-- time was recent: the partitions and the locks a report takes stay bounded. A coarse
-- partition is named by its first Monday, as a week's is (`polls_pYYYYMMDD`), and is pruned
-- whole once all of it is older than the retention's cut.

-- contract: nothing a running release reads changes shape. The DROP TABLE and RENAMEs below
-- are the pruning function's, as in migration 11: they act on partitions while it runs.
-- The functions older releases call keep their signatures and now follow this policy too.

-- Every partition of `polls` but `polls_before`, with its bounds (read from the catalog:
-- nothing else to keep in step).
CREATE FUNCTION store_monitor_poll_partitions() RETURNS TABLE (name text, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), $r$FROM \('([^']+)'\)$r$))[1]::timestamptz,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), $r$TO \('([^']+)'\)$r$))[1]::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'polls'::regclass AND c.relname LIKE 'polls\_p%'
$$;

-- Makes the partitions the given weeks (Mondays 00:00 UTC) lack, by the policy above, and
-- returns every partition that holds part of them, oldest first. A week before `kept_from`
-- needs none (`polls_before` takes its polls).
CREATE FUNCTION store_monitor_poll_partitions_for(weeks timestamptz[])
RETURNS TABLE (name text, lo timestamptz, hi timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    epoch constant timestamptz := '1999-12-27 00:00:00+00';
    week timestamptz;
    kept timestamptz;
    horizon timestamptz;
    block_lo timestamptz;
    gap_lo timestamptz;
    gap_hi timestamptz;
    part text;
BEGIN
    SELECT p.kept_from INTO kept FROM poll_history p;
    -- Loads come concurrently (pushes): only one whose polls fall in a week no partition
    -- holds takes the partitions' lock; the others go on.
    IF EXISTS (SELECT 1 FROM unnest(weeks) AS w
               WHERE w IS NOT NULL AND w >= coalesce(kept, '-infinity')
                 AND NOT EXISTS (SELECT 1 FROM store_monitor_poll_partitions() p WHERE p.lo <= w AND w < p.hi)) THEN
        PERFORM pg_advisory_xact_lock(store_monitor_poll_partitions_lock());
        SELECT p.kept_from INTO kept FROM poll_history p;
        SELECT greatest(max(w), (SELECT max(p.lo) FROM store_monitor_poll_partitions() p)) - interval '8904 hours'
        INTO horizon FROM unnest(weeks) AS w;
        FOR week IN SELECT DISTINCT w FROM unnest(weeks) AS w WHERE w IS NOT NULL ORDER BY w LOOP
            IF week <> date_trunc('week', week AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
                RAISE EXCEPTION 'a poll partition starts on a Monday 00:00 UTC, not at %', week;
            END IF;
            CONTINUE WHEN week < kept;
            CONTINUE WHEN EXISTS (SELECT 1 FROM store_monitor_poll_partitions() p WHERE p.lo <= week AND week < p.hi);
            IF week >= horizon THEN
                gap_lo := week;
                gap_hi := week + interval '168 hours';
            ELSE
                -- 8736 hours: 52 weeks, whatever the session's time zone does to days.
                block_lo := epoch + floor(extract(epoch FROM week - epoch) / (8736 * 3600)) * interval '8736 hours';
                gap_lo := greatest(block_lo, kept,
                                   (SELECT max(p.hi) FROM store_monitor_poll_partitions() p WHERE p.hi <= week));
                gap_hi := least(block_lo + interval '8736 hours', horizon,
                                (SELECT min(p.lo) FROM store_monitor_poll_partitions() p WHERE p.lo > week));
            END IF;
            part := 'polls_p' || to_char(gap_lo AT TIME ZONE 'UTC', 'YYYYMMDD');
            EXECUTE format('CREATE TABLE public.%I (LIKE polls)', part);
            -- Attaching takes SHARE UPDATE EXCLUSIVE on `polls` (CREATE TABLE … PARTITION
            -- OF would take ACCESS EXCLUSIVE and wait for every running report).
            EXECUTE format('ALTER TABLE polls ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                           part, gap_lo, gap_hi);
        END LOOP;
    END IF;
    RETURN QUERY
        SELECT p.name, p.lo, p.hi FROM store_monitor_poll_partitions() p
        WHERE EXISTS (SELECT 1 FROM unnest(weeks) AS w WHERE p.lo < w + interval '168 hours' AND w < p.hi)
        ORDER BY p.lo;
END $$;

-- What releases before this one call: the same partitions, made by the same policy.
CREATE OR REPLACE FUNCTION store_monitor_add_poll_partitions(weeks timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    before integer := (SELECT count(*) FROM store_monitor_poll_partitions());
BEGIN
    PERFORM store_monitor_poll_partitions_for(weeks);
    RETURN (SELECT count(*) FROM store_monitor_poll_partitions()) - before;
END $$;

-- Prunes the partition starting at `week`, which must be the oldest one, whatever its span
-- (a week, or a coarse one): its polls and `polls_before`'s become `polls_before` anew,
-- holding each store's last poll before the partition's end. Returns how many polls went.
-- One transaction: it happens whole or not.
CREATE OR REPLACE FUNCTION store_monitor_prune_poll_week(week timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'polls_p' || to_char(week AT TIME ZONE 'UTC', 'YYYYMMDD');
    week_end timestamptz;
    before_total bigint;
    after_total bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(store_monitor_poll_partitions_lock());
    SELECT p.hi INTO week_end FROM store_monitor_poll_partitions() p WHERE p.name = part;
    IF week_end IS NULL THEN
        RAISE EXCEPTION 'no poll partition %', part;
    END IF;
    IF EXISTS (SELECT 1 FROM store_monitor_poll_partitions() p WHERE p.lo < week) THEN
        RAISE EXCEPTION 'poll partition % is not the oldest', part;
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
    EXECUTE format('ALTER TABLE polls DETACH PARTITION public.%I', part);
    EXECUTE format('DROP TABLE public.%I', part);
    ALTER TABLE public.polls_before_next RENAME TO polls_before;
    ALTER INDEX public.polls_before_next_pkey RENAME TO polls_before_pkey;
    EXECUTE format('ALTER TABLE polls ATTACH PARTITION public.polls_before FOR VALUES FROM (MINVALUE) TO (%L)', week_end);
    INSERT INTO poll_history (kept_from) VALUES (week_end)
    ON CONFLICT (one) DO UPDATE SET kept_from = EXCLUDED.kept_from;
    RETURN before_total - after_total;
END $$;
