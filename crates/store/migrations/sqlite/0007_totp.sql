-- TOTP two-factor (issue 4). The shared secret is wrapped by the key manager like every other
-- key; `last_step` makes each code usable once (RFC 6238 §5.2). Recovery codes are random
-- (50 bits) and stored as SHA-256 only.
CREATE TABLE user_totp (
    user_id        TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    kek_key_id     TEXT NOT NULL,
    kek_version    BIGINT NOT NULL,
    secret_wrapped BLOB NOT NULL,
    enabled_ms     BIGINT,
    last_step      BIGINT,
    created_ms     BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_ms   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
