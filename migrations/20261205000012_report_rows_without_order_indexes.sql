-- The six indexes of 20261129000009 (one per figure) cost more than they save once fleets
-- grow. Measured on 140,000 rows a report (the 10x fleet): writing a report's rows took
-- 1.50 s with them and 0.27 s without (a third of trigger -> COMPLETE), and they made the
-- rows table four times larger (173 MB against 41 MB for two reports); reading the 50
-- worst stores took 0.3 ms with them and 20-27 ms without (the report's rows by the
-- primary key, and a top-N sort), 2-3 ms at the bundled fleet's 14,000 rows. A report is
-- written once and read a few pages at a time: the writes pay, the reads can wait 20 ms.
DROP INDEX report_rows_uptime_last_hour;
DROP INDEX report_rows_uptime_last_day;
DROP INDEX report_rows_uptime_last_week;
DROP INDEX report_rows_downtime_last_hour;
DROP INDEX report_rows_downtime_last_day;
DROP INDEX report_rows_downtime_last_week;
