-- Sending and signing (issue 4): the send options on the envelope, the signer's progress on the
-- recipient, capability tokens (hashed), field values and signatures (sealed under the envelope
-- key), the job queue every node works from, and webhooks with their delivery log.
ALTER TABLE envelopes ADD COLUMN message_sealed BLOB;
ALTER TABLE envelopes ADD COLUMN sent_ms BIGINT;
ALTER TABLE envelopes ADD COLUMN expires_ms BIGINT;
ALTER TABLE envelopes ADD COLUMN remind_every_days BIGINT;
ALTER TABLE envelopes ADD COLUMN finished_ms BIGINT;
ALTER TABLE envelopes ADD COLUMN final_sha256 TEXT;
ALTER TABLE envelopes ADD COLUMN reason_sealed BLOB;

ALTER TABLE recipients ADD COLUMN access_code_hash TEXT;
ALTER TABLE recipients ADD COLUMN consented_ms BIGINT;
ALTER TABLE recipients ADD COLUMN finished_ms BIGINT;
ALTER TABLE recipients ADD COLUMN signature_kind TEXT;
ALTER TABLE recipients ADD COLUMN signature_sealed BLOB;

-- A signer's capability: SHA-256 of the 256-bit token, never the token itself.
CREATE TABLE signing_tokens (
    token_hash   BLOB PRIMARY KEY,
    recipient_id TEXT NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
    envelope_id  TEXT NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
    purpose      TEXT NOT NULL CHECK (purpose IN ('email', 'embedded')),
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL
);
CREATE INDEX signing_tokens_recipient ON signing_tokens(recipient_id);

CREATE TABLE field_values (
    field_id     TEXT PRIMARY KEY REFERENCES fields(id) ON DELETE CASCADE,
    envelope_id  TEXT NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
    recipient_id TEXT NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
    value_sealed BLOB NOT NULL,
    created_ms   BIGINT NOT NULL
);
CREATE INDEX field_values_envelope ON field_values(envelope_id);

-- Background work that must survive restarts and may run on any node: a node leases a job
-- (locked_until_ms) and finishes it; a lease that runs out makes the job available again.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    run_at_ms       BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_attempts    BIGINT NOT NULL,
    locked_by       TEXT,
    locked_until_ms BIGINT,
    last_error      TEXT,
    done_ms         BIGINT,
    failed          BIGINT NOT NULL DEFAULT 0,
    created_ms      BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(done_ms, run_at_ms);

CREATE TABLE webhooks (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    events         TEXT NOT NULL,
    kek_key_id     TEXT NOT NULL,
    kek_version    BIGINT NOT NULL,
    secret_wrapped BLOB NOT NULL,
    created_ms     BIGINT NOT NULL,
    disabled_ms    BIGINT
);
CREATE INDEX webhooks_org ON webhooks(org_id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    response_status BIGINT,
    last_error      TEXT,
    created_ms      BIGINT NOT NULL,
    delivered_ms    BIGINT
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, created_ms);
