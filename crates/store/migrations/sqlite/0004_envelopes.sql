-- Envelopes (issue 4). The title is personal-ish (it often names a party), so it is stored
-- sealed under the envelope's own key, like every document byte.
CREATE TABLE envelopes (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    created_by      TEXT NOT NULL,
    title_sealed    BLOB NOT NULL,
    status          TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    document_bytes  BIGINT NOT NULL,
    pages           TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX envelopes_org ON envelopes(org_id, created_ms);
