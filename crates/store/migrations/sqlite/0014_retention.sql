-- Per-organisation retention: envelopes are erased this many days after they ended
-- (completed, declined, voided or expired); NULL keeps them until deleted.
ALTER TABLE organisations ADD COLUMN retention_days BIGINT;
