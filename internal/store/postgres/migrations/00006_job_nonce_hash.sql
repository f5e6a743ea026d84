-- Job nonces at rest: a job's nonce is the bearer credential of its worker
-- (for AcknowledgeJob, ID tokens and cloud credentials), so the store keeps
-- only what the server derives from it (store.Job.NonceHash: a keyed hash,
-- for third-party jobs with a sealed copy), never the nonce.
--
-- The keyed hash needs the master key, which SQL does not have: this
-- migration adds the column and leaves the clear nonces of existing rows
-- in `nonce`, where the server's start (store.HashLegacyNonces) hashes
-- them and clears the column before it serves. jobs_legacy_nonce finds
-- those rows; it is empty from then on.

-- +goose Up
ALTER TABLE jobs ADD COLUMN nonce_hash text NOT NULL DEFAULT '';
CREATE INDEX jobs_legacy_nonce ON jobs (id) WHERE nonce <> '';

-- +goose Down
DROP INDEX jobs_legacy_nonce;
ALTER TABLE jobs DROP COLUMN nonce_hash;
