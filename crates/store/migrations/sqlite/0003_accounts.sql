-- Accounts (issue 4): users of an organisation, browser sessions, API keys, login throttling.
-- Every secret is stored only as a hash: passwords as Argon2id PHC strings, session, CSRF and
-- API-key tokens as SHA-256 (they are 256-bit random, so a fast hash is enough).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    created_ms    BIGINT NOT NULL
);
CREATE INDEX users_org ON users(org_id);

CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_hash    BLOB NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    created_ms   BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked_ms   BIGINT
);
CREATE INDEX api_keys_org ON api_keys(org_id);

-- Failed logins per scope (`account:<email>` or `ip:<address>`) in a fixed window; shared by
-- every node through the database.
CREATE TABLE login_failures (
    scope           TEXT PRIMARY KEY,
    window_start_ms BIGINT NOT NULL,
    failures        BIGINT NOT NULL
);
