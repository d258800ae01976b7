-- Foundation: organisations, wrapped envelope keys, blob records, key-use records.
CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE envelope_keys (
    envelope_id TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organisations(id),
    dek_id      BLOB NOT NULL,
    kek_key_id  TEXT NOT NULL,
    kek_version BIGINT NOT NULL,
    wrapped     BLOB NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE INDEX envelope_keys_org ON envelope_keys(org_id);

CREATE TABLE blobs (
    key           TEXT PRIMARY KEY,
    envelope_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    plaintext_len BIGINT NOT NULL,
    stored_len    BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    UNIQUE (envelope_id, kind, version)
);

CREATE TABLE key_uses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kek_key_id  TEXT NOT NULL,
    kek_version BIGINT NOT NULL,
    purpose     TEXT NOT NULL,
    envelope_id TEXT,
    node        TEXT NOT NULL,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX key_uses_envelope ON key_uses(envelope_id);
