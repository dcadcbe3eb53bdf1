-- A token scoped to store groups sees only the stores of those groups (store_groups); NULL:
-- the whole fleet. An admin token manages the fleet and is never scoped. A group that goes
-- away widens nothing: the token sees its other groups' stores, or none.
ALTER TABLE api_tokens ADD COLUMN groups text[]
    CHECK (groups IS NULL OR (role <> 'admin' AND cardinality(groups) > 0));
