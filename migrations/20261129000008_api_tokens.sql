-- API tokens (issue 10). The secret is shown once, at creation; only its SHA-256 is kept,
-- which is enough for a secret of 256 random bits (no salt or slow hash needed: nothing to
-- guess). A revoked or expired token stays listed, refused.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    secret_sha256 bytea NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Written at most once a minute per process: a token's use is not a write per request.
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);

-- The key that signs report links (csvUrl), shared by every process on the database so
-- that a link one server gave out works on all of them. One row, made by the first
-- process that needs it.
CREATE TABLE signing_keys (
    id         smallint PRIMARY KEY CHECK (id = 1),
    key        bytea NOT NULL CHECK (length(key) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
