-- How many times a worker has started each report. apalis bounds the retries of a job that
-- fails, but hands a job whose worker died to another worker whatever its attempts: a
-- report that kills its process every time would be retried for ever. The report counts
-- its own starts, and the worker that would start it once too often marks it FAILED.
ALTER TABLE reports ADD COLUMN attempts integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN reports.attempts IS
    'Times a worker has started this report (RUNNING), crashes included; bounded by the job''s MAX_ATTEMPTS.';

-- Retention prunes finished reports by age.
CREATE INDEX reports_finished ON reports (finished_at) WHERE finished_at IS NOT NULL;
