-- Store groups (a brand, a franchisee, a region): which stores a token scoped to groups
-- sees. A store may be in several. Loaded from a store_groups.csv (store_id, group) as a
-- snapshot, like the business hours: each load of a changed file replaces them all.
CREATE TABLE store_groups (
    group_name text    NOT NULL CHECK (length(group_name) BETWEEN 1 AND 100),
    store      integer NOT NULL,
    PRIMARY KEY (group_name, store)
);
-- What a store's groups are (the dashboard, and scoped reads by store).
CREATE INDEX store_groups_store ON store_groups (store);

ALTER TABLE data_loads DROP CONSTRAINT data_loads_kind_check;
ALTER TABLE data_loads ADD CONSTRAINT data_loads_kind_check
    CHECK (kind IN ('status', 'hours', 'timezones', 'groups'));
