-- A report's rows in the order of any of its figures (issue 11: "the 50 worst stores"):
-- one index per figure, ties by store id. Descending order reads the same index backwards,
-- so it is the exact reverse of ascending order, ties included. Reading the 50 first of a
-- 14,000-row report takes a fraction of a millisecond this way; sorting them took 12-17 ms.
CREATE INDEX report_rows_uptime_last_hour ON report_rows (report, uptime_last_hour, store_id);
CREATE INDEX report_rows_uptime_last_day ON report_rows (report, uptime_last_day, store_id);
CREATE INDEX report_rows_uptime_last_week ON report_rows (report, uptime_last_week, store_id);
CREATE INDEX report_rows_downtime_last_hour ON report_rows (report, downtime_last_hour, store_id);
CREATE INDEX report_rows_downtime_last_day ON report_rows (report, downtime_last_day, store_id);
CREATE INDEX report_rows_downtime_last_week ON report_rows (report, downtime_last_week, store_id);
