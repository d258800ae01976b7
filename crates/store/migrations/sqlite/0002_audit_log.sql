-- Audit log (DESIGN §5): one Merkle tree for the deployment.
-- `audit_log_head` is the single row every appender locks first, so sequence numbers are gap-free
-- and unique across processes. Each leaf row carries the hashes of the tree nodes its arrival
-- completed (`parents`, levels 1.. concatenated), so any node is one primary-key read away.
-- An envelope's events form a chain (`prev_in_envelope`, newest in `audit_envelope_heads`)
-- instead of a secondary index: appends stay in key order, which keeps group commits small.
CREATE TABLE audit_log_head (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    size    BIGINT NOT NULL,
    appends BIGINT NOT NULL
);
INSERT INTO audit_log_head (id, size, appends) VALUES (1, 0, 0);

CREATE TABLE audit_leaves (
    seq         INTEGER PRIMARY KEY,
    envelope_id TEXT,
    prev_in_envelope BIGINT,
    leaf_hash   BLOB NOT NULL,
    parents     BLOB NOT NULL,
    event       BLOB NOT NULL,
    disclosure  BLOB,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE audit_envelope_heads (
    envelope_id TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL,
    events      BIGINT NOT NULL
);

CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE audit_log_key (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    origin       TEXT NOT NULL,
    verifier_key TEXT NOT NULL,
    kek_key_id   TEXT NOT NULL,
    kek_version  BIGINT NOT NULL,
    wrapped_seed BLOB NOT NULL,
    created_ms   BIGINT NOT NULL
);
