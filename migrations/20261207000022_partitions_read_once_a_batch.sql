-- Making the partitions a batch lacks read the catalog once, not four times a week: for a
-- batch of a poll a week since 2000 (1,405 weeks), each look at the partitions deparsed
-- every partition's bounds (`store_monitor_poll_partitions`), 8.3 of the batch's 10 s. The
-- bounds are read once, under the partitions' lock, and kept in step as partitions are
-- made. The policy is migration 20's, unchanged; so are the signature and the answer.
CREATE OR REPLACE FUNCTION store_monitor_poll_partitions_for(weeks timestamptz[])
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
    -- Every partition's bounds, oldest first; those made here join them.
    los timestamptz[];
    his timestamptz[];
BEGIN
    SELECT p.kept_from INTO kept FROM poll_history p;
    SELECT array_agg(p.lo ORDER BY p.lo), array_agg(p.hi ORDER BY p.lo) INTO los, his
    FROM store_monitor_poll_partitions() p;
    -- Loads come concurrently (pushes): only one whose polls fall in a week no partition
    -- holds takes the partitions' lock; the others go on.
    IF EXISTS (SELECT 1 FROM unnest(weeks) AS w
               WHERE w IS NOT NULL AND w >= coalesce(kept, '-infinity')
                 AND NOT EXISTS (SELECT 1 FROM unnest(los, his) AS p (lo, hi) WHERE p.lo <= w AND w < p.hi)) THEN
        PERFORM pg_advisory_xact_lock(store_monitor_poll_partitions_lock());
        SELECT p.kept_from INTO kept FROM poll_history p;
        SELECT array_agg(p.lo ORDER BY p.lo), array_agg(p.hi ORDER BY p.lo) INTO los, his
        FROM store_monitor_poll_partitions() p;
        SELECT greatest(max(w), (SELECT max(p.lo) FROM unnest(los) AS p (lo))) - interval '8904 hours'
        INTO horizon FROM unnest(weeks) AS w;
        FOR week IN SELECT DISTINCT w FROM unnest(weeks) AS w WHERE w IS NOT NULL ORDER BY w LOOP
            IF week <> date_trunc('week', week AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
                RAISE EXCEPTION 'a poll partition starts on a Monday 00:00 UTC, not at %', week;
            END IF;
            CONTINUE WHEN week < kept;
            CONTINUE WHEN EXISTS (SELECT 1 FROM unnest(los, his) AS p (lo, hi) WHERE p.lo <= week AND week < p.hi);
            IF week >= horizon THEN
                gap_lo := week;
                gap_hi := week + interval '168 hours';
            ELSE
                -- 8736 hours: 52 weeks, whatever the session's time zone does to days.
                block_lo := epoch + floor(extract(epoch FROM week - epoch) / (8736 * 3600)) * interval '8736 hours';
                gap_lo := greatest(block_lo, kept, (SELECT max(p.hi) FROM unnest(his) AS p (hi) WHERE p.hi <= week));
                gap_hi := least(block_lo + interval '8736 hours', horizon,
                                (SELECT min(p.lo) FROM unnest(los) AS p (lo) WHERE p.lo > week));
            END IF;
            part := 'polls_p' || to_char(gap_lo AT TIME ZONE 'UTC', 'YYYYMMDD');
            EXECUTE format('CREATE TABLE public.%I (LIKE polls)', part);
            -- Attaching takes SHARE UPDATE EXCLUSIVE on `polls` (CREATE TABLE … PARTITION
            -- OF would take ACCESS EXCLUSIVE and wait for every running report).
            EXECUTE format('ALTER TABLE polls ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                           part, gap_lo, gap_hi);
            los := los || gap_lo;
            his := his || gap_hi;
        END LOOP;
    END IF;
    RETURN QUERY
        SELECT p.name, p.lo, p.hi FROM store_monitor_poll_partitions() p
        WHERE EXISTS (SELECT 1 FROM unnest(weeks) AS w WHERE p.lo < w + interval '168 hours' AND w < p.hi)
        ORDER BY p.lo;
END $$;
