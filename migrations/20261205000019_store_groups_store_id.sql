-- A group's stores by their ids too, in the byte order reports sort them by: a scoped page
-- of a report's rows then walks the group's ids in key order beside the report's rows (a
-- merge join that stops with the page), where looking each store up by its number read the
-- whole stores table. At 140,000 stores, a page of a 2,800-store group: 15 ms → under 1.
ALTER TABLE store_groups ADD COLUMN store_id text COLLATE "C";
UPDATE store_groups g SET store_id = s.store_id FROM stores s WHERE s.id = g.store;
ALTER TABLE store_groups ALTER COLUMN store_id SET NOT NULL;
CREATE UNIQUE INDEX store_groups_by_store_id ON store_groups (group_name, store_id);
