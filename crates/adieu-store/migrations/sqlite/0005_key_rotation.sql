-- Signing-key rotation shared through the database: each algorithm's keys are numbered by
-- generation (unique per algorithm, so replicas that start together on an empty database insert
-- one first key, not two), a rotated key signs only from `signs_from` (it is published ahead), and
-- a retired key leaves the JWKS with its private key erased. `private_pkcs8` keeps its name: it
-- holds the PKCS#8 DER, or that DER sealed under the key-encryption key.

ALTER TABLE signing_keys ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE signing_keys ADD COLUMN signs_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE signing_keys ADD COLUMN retired_at INTEGER;

-- Existing keys: generations in creation order; each signed from its creation.
UPDATE signing_keys SET
    generation = (
        SELECT COUNT(*) FROM signing_keys k
        WHERE k.alg = signing_keys.alg
          AND (k.created_at < signing_keys.created_at
               OR (k.created_at = signing_keys.created_at AND k.kid <= signing_keys.kid))
    ),
    signs_from = created_at;

CREATE UNIQUE INDEX signing_keys_alg_generation ON signing_keys (alg, generation);
