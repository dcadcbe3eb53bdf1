-- cancelReport (issue 11): a PENDING or RUNNING report can be stopped, and stays CANCELLED.
ALTER TABLE reports DROP CONSTRAINT reports_status_check;
ALTER TABLE reports ADD CONSTRAINT reports_status_check
    CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETE', 'FAILED', 'CANCELLED'));
