-- A correction, kept here because applied migrations cannot change: the comment on
-- `polls_pkey` in the first migration says the loader vacuums after each load. It does
-- not. A first load writes the polls frozen and all-visible (`COPY … FREEZE` into the
-- table truncated in the same transaction), so reports read them by an index-only scan at
-- once; the polls later loads add are left to autovacuum, and until it runs the few pages
-- they touch are read from the heap.
COMMENT ON CONSTRAINT polls_pkey ON polls IS
    'One poll per store and instant (the first loaded wins), and the report''s read path: an index-only scan, all-visible after a first load (COPY FREEZE); later additions are left to autovacuum.';
