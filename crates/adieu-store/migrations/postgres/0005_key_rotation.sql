-- Signing-key rotation shared through the database: each algorithm's keys are numbered by
-- generation (unique per algorithm, so replicas that start together on an empty database insert
-- one first key, not two), a rotated key signs only from `signs_from` (it is published ahead), and
-- a retired key leaves the JWKS with its private key erased. `private_pkcs8` keeps its name (a
-- running older replica's statements still work): it holds the PKCS#8 DER, or that DER sealed
-- under the key-encryption key.

ALTER TABLE signing_keys ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE signing_keys ADD COLUMN signs_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE signing_keys ADD COLUMN retired_at BIGINT;

-- Existing keys: generations in creation order; each signed from its creation.
UPDATE signing_keys SET generation = g.n, signs_from = signing_keys.created_at
FROM (
    SELECT kid, row_number() OVER (PARTITION BY alg ORDER BY created_at, kid) AS n FROM signing_keys
) g
WHERE g.kid = signing_keys.kid;

CREATE UNIQUE INDEX signing_keys_alg_generation ON signing_keys (alg, generation);
