-- Status files usually grow by having the new hour's polls appended. When a status file
-- begins with exactly the bytes of the last successful load of its kind (same checksum
-- over that prefix, ending at a line end), only the rest is read: the polls before it are
-- stored already. `read_from` is where reading started, so that `rows_read` (rows read
-- from there on) can be told apart from a whole read.
ALTER TABLE data_loads
    -- Byte offset the file was read from: 0 for the whole file.
    ADD COLUMN read_from bigint NOT NULL DEFAULT 0;
