-- Recipients and fields of an envelope (issue 4). A recipient's name and email are personal data:
-- sealed under the envelope key, so shredding the envelope erases them too.
CREATE TABLE recipients (
    id            TEXT PRIMARY KEY,
    envelope_id   TEXT NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
    name_sealed   BLOB NOT NULL,
    email_sealed  BLOB NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('signer', 'approver', 'cc')),
    routing_order BIGINT NOT NULL,
    status        TEXT NOT NULL,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX recipients_envelope ON recipients(envelope_id);

CREATE TABLE fields (
    id           TEXT PRIMARY KEY,
    envelope_id  TEXT NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
    recipient_id TEXT NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    page         BIGINT NOT NULL,
    x            DOUBLE PRECISION NOT NULL,
    y            DOUBLE PRECISION NOT NULL,
    width        DOUBLE PRECISION NOT NULL,
    height       DOUBLE PRECISION NOT NULL,
    required     BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL
);
CREATE INDEX fields_envelope ON fields(envelope_id);
