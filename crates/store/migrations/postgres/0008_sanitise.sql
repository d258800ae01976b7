-- Hostile-PDF sanitising at ingest (issue 5). The stored original is the sanitised document and
-- `document_sha256` its hash; these record the file as it was uploaded (its SHA-256) and what
-- active content was removed from it (a JSON array of {"kind", "count"}). Envelopes created
-- before sanitising keep NULL in both.
ALTER TABLE envelopes ADD COLUMN uploaded_sha256 TEXT;
ALTER TABLE envelopes ADD COLUMN sanitised_removed TEXT;
