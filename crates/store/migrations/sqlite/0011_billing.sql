-- Billing (issue 8). Only the payment providers' identifiers and the subscription's state are
-- kept: no card number, expiry, CVC, name on card or billing address ever reaches Sigillum (the
-- providers' hosted pages take them), so there is no column for any of it.
CREATE TABLE billing_accounts (
    org_id          TEXT PRIMARY KEY REFERENCES organisations(id) ON DELETE CASCADE,
    provider        TEXT,
    customer_id     TEXT,
    subscription_id TEXT,
    plan_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    period_start_ms BIGINT,
    period_end_ms   BIGINT,
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX billing_accounts_customer ON billing_accounts (provider, customer_id);

-- Each provider event is applied once: a replayed or duplicated delivery finds its id here.
CREATE TABLE billing_events (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- Envelopes sent per organisation and usage period (the start of the subscription's period,
-- or of the calendar month without one).
CREATE TABLE billing_usage (
    org_id          TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    period_start_ms BIGINT NOT NULL,
    envelopes       BIGINT NOT NULL,
    PRIMARY KEY (org_id, period_start_ms)
);
