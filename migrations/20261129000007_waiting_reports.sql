-- triggerReport counts the reports waiting for a worker before it queues one more (past
-- --max-queued-reports it answers TOO_MANY_REQUESTS): a small index of just those.
CREATE INDEX reports_waiting ON reports (created_at) WHERE status = 'PENDING';
