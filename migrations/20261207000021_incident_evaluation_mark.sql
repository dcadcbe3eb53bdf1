-- Each incident evaluation leaves a new mark here, in its own transaction: a process keeps
-- the polls its evaluations read (a backfill out of time order read the same history every
-- batch) and trusts them only while the mark is the one it left. Another process's
-- evaluation, a removal, or its own evaluation rolled back leaves the mark different; a
-- pruning is told apart by `poll_prunings`.
CREATE TABLE incident_evaluation_mark (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    mark     uuid    NOT NULL
);

INSERT INTO incident_evaluation_mark (mark) VALUES (gen_random_uuid());
