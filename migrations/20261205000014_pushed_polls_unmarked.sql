-- Pushed polls go in with no edge mark at all: marking the polls around a batch was a third
-- of its cost. Their spans are noted here, and until tidy_edges reaches them reports read
-- every poll of each span and the one on each side (src/db/snapshot.rs, pending_polls).
COMMENT ON TABLE edge_work IS
    'Spans of polls whose edge marks are not exact yet: loads mark more than needed, pushes nothing; reports read every poll of a span and its neighbours until the next tidy_edges makes the marks exact.';

-- A batch notes a span per store (14,000 rows for a batch of 50,000 polls over the whole
-- fleet): the index on them cost three times the rows themselves, and the spans are read
-- whole, by tidy_edges and by reports, and are few once tidied.
DROP INDEX edge_work_store;
