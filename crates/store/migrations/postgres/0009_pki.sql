-- Certificates of the internal PKI (root CA, document seal, timestamp authority). Their private
-- keys live in the key manager; a certificate is public data.
CREATE TABLE pki_certificates (
    name TEXT PRIMARY KEY,
    der BYTEA NOT NULL,
    created_unix_ms BIGINT NOT NULL
);
