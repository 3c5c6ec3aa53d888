//! Signing keys: generation, sealing at rest, the pre-parsed signers, the public JWKS, rotation
//! shared through the database, and verification of our own tokens (the `id_token_hint`).
//!
//! - this file: [`Keys`], the key set every handler signs with. It is swappable: a background task
//!   ([`spawn_reloader`]) re-reads the database every `keys.reload_interval_secs`, so a rotation or
//!   retirement made by the command line or another replica is picked up without a restart. The
//!   signer of each algorithm is chosen at signing time with the injected clock
//!   ([`adieu_core::keys::signer_index`]), so a pre-published key starts signing on every replica
//!   at the same moment.
//! - [`kek`]: the key-encryption key and the sealed form of private keys at rest.
//! - [`rotation`]: rotating and retiring keys, and the first keys of an empty database.
//!
//! Each key signs with exactly one algorithm (RFC 8725 §3.1) and its `kid` starts with the
//! algorithm name, because the RFC 7638 thumbprint would not tell an RS256 key from a PS256 one.
//! Keys are parsed once when loaded; signing then costs only the signature (STACK.md pitfall 2).

pub mod kek;
pub mod rotation;

use adieu_core::keys::{RetireRefusal, Scheduled, StoredSigningKey, signer_index};
use adieu_core::store::{KeyStore, StoreError};
use adieu_core::time::UnixMillis;
use adieu_proto::SigningAlg;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::{Arc, PoisonError, RwLock};

pub use kek::Kek;
pub use rotation::spawn_reloader;

/// A key failed to generate, parse or sign.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The stored key could not be parsed.
    #[error("signing key {kid} is unusable: {reason}")]
    Unusable {
        /// The key.
        kid: String,
        /// Why.
        reason: String,
    },
    /// Generation failed.
    #[error("key generation failed")]
    Generation,
    /// Signing failed.
    #[error("signing failed")]
    Signing,
    /// No key for the algorithm.
    #[error("no signing key for {0}")]
    NoKey(SigningAlg),
    /// The key is encrypted and no key-encryption key is configured.
    #[error(
        "signing key {kid} is encrypted, but no key_encryption_key is configured: set it (ADIEU_KEY_ENCRYPTION_KEY) to the key it was encrypted with"
    )]
    KekMissing {
        /// The key.
        kid: String,
    },
    /// The key is encrypted under another key-encryption key.
    #[error(
        "signing key {kid} was encrypted with another key_encryption_key (id {sealed_with}; the configured one has id {configured})"
    )]
    WrongKek {
        /// The key.
        kid: String,
        /// The id of the KEK it was sealed under.
        sealed_with: String,
        /// The id of the configured KEK.
        configured: String,
    },
    /// The configured key-encryption key is the right one, but the ciphertext does not open:
    /// it was altered, or moved to another kid.
    #[error("signing key {kid} cannot be decrypted: its stored ciphertext or kid was altered")]
    Undecryptable {
        /// The key.
        kid: String,
    },
    /// Sealing a new key failed.
    #[error("encrypting a new signing key failed")]
    Sealing,
    /// A retirement the rules refuse.
    #[error(transparent)]
    Refused(RetireRefusal),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Parsed {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed private key with its public JWK and its schedule.
struct SigningKey {
    kid: String,
    alg: SigningAlg,
    generation: i64,
    signs_from: UnixMillis,
    parsed: Parsed,
    jwk: Value,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

fn unusable(kid: &str, reason: impl std::fmt::Display) -> KeyError {
    KeyError::Unusable { kid: kid.to_owned(), reason: reason.to_string() }
}

impl Scheduled for SigningKey {
    fn alg(&self) -> SigningAlg {
        self.alg
    }
    fn generation(&self) -> i64 {
        self.generation
    }
    fn signs_from(&self) -> UnixMillis {
        self.signs_from
    }
    fn retired_at(&self) -> Option<UnixMillis> {
        None
    }
}

impl SigningKey {
    /// Opens (with the KEK if it is sealed) and parses a stored key.
    fn parse(stored: &StoredSigningKey, kek: Option<&Kek>) -> Result<(Self, kek::Opened), KeyError> {
        let kid = stored.kid.as_str();
        let opened = kek::open(kek, kid, &stored.private_key)?;
        let der = opened.pkcs8.as_slice();
        let (parsed, jwk, decoding) = match stored.alg {
            SigningAlg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(|e| unusable(kid, e))?;
                let c = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                let (n, e) = (B64.encode(strip_zeros(&c.n)), B64.encode(strip_zeros(&c.e)));
                let dk = DecodingKey::from_rsa_components(&n, &e).map_err(|e| unusable(kid, e))?;
                (Parsed::Rsa(kp), json!({"kty": "RSA", "n": n, "e": e}), dk)
            }
            SigningAlg::ES256 => {
                let kp =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|e| unusable(kid, e))?;
                let point = kp.public_key().as_ref();
                // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
                if point.len() != 65 || point[0] != 4 {
                    return Err(unusable(kid, "unexpected P-256 public key encoding"));
                }
                let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
                let dk = DecodingKey::from_ec_components(&x, &y).map_err(|e| unusable(kid, e))?;
                (Parsed::Ec(kp), json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}), dk)
            }
            SigningAlg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(der).map_err(|e| unusable(kid, e))?;
                let x = B64.encode(kp.public_key().as_ref());
                let dk = DecodingKey::from_ed_components(&x).map_err(|e| unusable(kid, e))?;
                (Parsed::Ed(kp), json!({"kty": "OKP", "crv": "Ed25519", "x": x}), dk)
            }
        };
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(stored.alg.as_str());
        jwk["use"] = json!("sig");
        let key = SigningKey {
            kid: kid.to_owned(),
            alg: stored.alg,
            generation: stored.generation,
            signs_from: stored.signs_from,
            parsed,
            jwk,
            decoding,
        };
        Ok((key, opened))
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.parsed {
            Parsed::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut sig).map_err(|_| KeyError::Signing)?;
                Ok(sig)
            }
            Parsed::Ec(kp) => {
                Ok(kp.sign(&SystemRandom::new(), input).map_err(|_| KeyError::Signing)?.as_ref().to_vec())
            }
            Parsed::Ed(kp) => Ok(kp.sign(input).as_ref().to_vec()),
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len().saturating_sub(1));
    &b[i..]
}

/// Generates a new private key for `alg`, PKCS#8 v1 DER.
pub fn generate(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    let der = match alg {
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).map_err(|_| KeyError::Generation)?;
            der.as_ref().to_vec()
        }
        SigningAlg::ES256 => {
            let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| KeyError::Generation)?;
            kp.to_pkcs8v1().map_err(|_| KeyError::Generation)?.as_ref().to_vec()
        }
        SigningAlg::EdDSA => {
            let kp = Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?;
            kp.to_pkcs8v1().map_err(|_| KeyError::Generation)?.as_ref().to_vec()
        }
    };
    Ok(der)
}

/// The provider's published signing keys, parsed, behind a lock so that a reload can swap them
/// while requests sign. Reading takes the lock only to clone an `Arc`.
#[derive(Debug)]
pub struct Keys {
    set: RwLock<Arc<KeySet>>,
    kek: Option<Kek>,
}

/// One version of the key set: the published (not retired) keys, oldest first.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<SigningKey>>,
}

/// What loading keys found that the operator should hear about.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys stored unencrypted although a key-encryption key is configured.
    pub plain_despite_kek: Vec<String>,
    /// Keys that joined the set (reloads only).
    pub added: Vec<String>,
    /// Keys that left the set (retired).
    pub removed: Vec<String>,
}

/// Why a token of ours did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a JWS in compact form, or its header is unreadable.
    #[error("the token is malformed")]
    Malformed,
    /// The `kid` is not one of ours.
    #[error("the token was not signed by this provider")]
    UnknownKey,
    /// The `alg` header does not match the key's one algorithm.
    #[error("the token's algorithm does not match its key")]
    AlgMismatch,
    /// Bad signature, or wrong issuer.
    #[error("the token's signature or issuer is invalid")]
    Invalid,
}

impl Keys {
    /// Loads the keys from storage at start-up, generating one per algorithm if the algorithm has
    /// none (first start; replicas starting together generate one between them, see
    /// [`rotation::ensure_keys`]). New keys are sealed under `kek` when one is given. A key that
    /// cannot be opened or parsed is an error naming its kid; keys stored unencrypted although a
    /// KEK is configured load, and are logged (and reported) so the operator rotates them out.
    pub async fn load_or_generate(
        store: &dyn KeyStore,
        now: UnixMillis,
        kek: Option<Kek>,
    ) -> Result<(Keys, LoadReport), KeyError> {
        rotation::ensure_keys(store, kek.as_ref(), now).await?;
        let stored = store.signing_keys().await?;
        let (set, report) = KeySet::parse_all(&stored, kek.as_ref())?;
        for kid in &report.plain_despite_kek {
            tracing::warn!(
                %kid,
                "signing key {kid} is stored unencrypted although a key_encryption_key is set: run `adieu keys rotate`, \
                 then `adieu keys retire {kid}` once the new key signs"
            );
        }
        Ok((Keys { set: RwLock::new(Arc::new(set)), kek }, report))
    }

    /// Parses stored keys (retired ones are skipped). A key that cannot be opened or parsed is an
    /// error.
    pub fn from_stored(stored: &[StoredSigningKey], kek: Option<Kek>) -> Result<Keys, KeyError> {
        let (set, _) = KeySet::parse_all(stored, kek.as_ref())?;
        Ok(Keys { set: RwLock::new(Arc::new(set)), kek })
    }

    /// The key-encryption key, if one is configured.
    pub fn kek(&self) -> Option<&Kek> {
        self.kek.as_ref()
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-reads the keys from storage and swaps the set: new keys are parsed, retired ones leave,
    /// unchanged ones are kept as parsed. A new key that cannot be opened or parsed (for example
    /// one added under another KEK) is logged with its kid and left out; the running set keeps
    /// serving.
    pub async fn reload(&self, store: &dyn KeyStore) -> Result<LoadReport, KeyError> {
        let stored = store.signing_keys().await?;
        let old = self.current();
        let mut report = LoadReport::default();
        let mut keys = Vec::new();
        for s in stored.iter().filter(|s| s.retired_at.is_none()) {
            if let Some(k) = old.keys.iter().find(|k| k.kid == s.kid) {
                keys.push(k.clone());
                continue;
            }
            match SigningKey::parse(s, self.kek.as_ref()) {
                Ok((k, opened)) => {
                    if opened.plain_despite_kek {
                        report.plain_despite_kek.push(s.kid.clone());
                    }
                    report.added.push(s.kid.clone());
                    keys.push(Arc::new(k));
                }
                Err(e) => {
                    tracing::error!(kid = %s.kid, error = %e, "a new signing key cannot be used; it is not published")
                }
            }
        }
        report.removed =
            old.keys.iter().filter(|k| !keys.iter().any(|n| n.kid == k.kid)).map(|k| k.kid.clone()).collect();
        if !report.added.is_empty() || !report.removed.is_empty() {
            tracing::info!(added = ?report.added, removed = ?report.removed, "signing keys reloaded");
            *self.set.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(KeySet { keys });
        }
        Ok(report)
    }

    /// The kids in the public JWKS, oldest first.
    pub fn published_kids(&self) -> Vec<String> {
        self.current().keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// The kid that signs for `alg` at `now`.
    pub fn signer_kid(&self, alg: SigningAlg, now: UnixMillis) -> Option<String> {
        let set = self.current();
        signer_index(&set.keys, alg, now).map(|i| set.keys[i].kid.clone())
    }

    /// The public JWK Set (no private material): every published key, pending ones included.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.current().keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// Signs `claims` as a compact JWS with the key that signs for `alg` at `now`; `typ` goes in
    /// the header.
    pub fn sign<C: Serialize>(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &C,
        now: UnixMillis,
    ) -> Result<String, KeyError> {
        self.sign_under(alg, typ, None, claims, now)
    }

    /// [`Keys::sign`], with `kid` in the header instead of the signing key's own when given (for
    /// `adieu check-rp`'s unknown-`kid` probe; the signature is still the real key's).
    pub fn sign_under<C: Serialize>(
        &self,
        alg: SigningAlg,
        typ: &str,
        kid: Option<&str>,
        claims: &C,
        now: UnixMillis,
    ) -> Result<String, KeyError> {
        let set = self.current();
        let key = signer_index(&set.keys, alg, now).map(|i| &set.keys[i]).ok_or(KeyError::NoKey(alg))?;
        let header = json!({ "alg": alg.as_str(), "typ": typ, "kid": kid.unwrap_or(&key.kid) });
        let header = serde_json::to_vec(&header).map_err(|_| KeyError::Signing)?;
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Signing)?;
        let mut out = String::with_capacity(64 + payload.len() * 2 + 400);
        B64.encode_string(header, &mut out);
        out.push('.');
        B64.encode_string(payload, &mut out);
        let sig = key.sign(out.as_bytes())?;
        out.push('.');
        B64.encode_string(sig, &mut out);
        Ok(out)
    }

    /// Verifies a JWS we issued: a published `kid`, `alg` equal to that key's algorithm, valid
    /// signature, `iss` equal to `issuer`. Expiry is *not* checked (an expired `id_token_hint` is
    /// accepted, RPI-04).
    pub fn verify_ours<C: DeserializeOwned>(&self, token: &str, issuer: &str) -> Result<C, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let set = self.current();
        let key = set.keys.iter().find(|k| k.kid == kid).ok_or(VerifyError::UnknownKey)?;
        let alg = match key.alg {
            SigningAlg::RS256 => Algorithm::RS256,
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::EdDSA => Algorithm::EdDSA,
        };
        if header.alg != alg {
            return Err(VerifyError::AlgMismatch);
        }
        let mut v = Validation::new(alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v.set_issuer(&[issuer]);
        jsonwebtoken::decode::<C>(token, &key.decoding, &v).map(|d| d.claims).map_err(|_| VerifyError::Invalid)
    }
}

impl KeySet {
    /// Opens and parses every published key; the first failure is the error.
    fn parse_all(stored: &[StoredSigningKey], kek: Option<&Kek>) -> Result<(KeySet, LoadReport), KeyError> {
        let mut report = LoadReport::default();
        let mut keys = Vec::new();
        for s in stored.iter().filter(|s| s.retired_at.is_none()) {
            let (k, opened) = SigningKey::parse(s, kek)?;
            if opened.plain_despite_kek {
                report.plain_despite_kek.push(s.kid.clone());
            }
            keys.push(Arc::new(k));
        }
        Ok((KeySet { keys }, report))
    }
}

/// `at_hash`: base64url of the left half of the hash of the access token, with the hash of the
/// ID token's algorithm (Core §3.1.3.6). For EdDSA (Ed25519) that hash is SHA-512.
pub fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    use aws_lc_rs::digest::{SHA256, SHA512, digest};
    let d = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => digest(&SHA256, access_token.as_bytes()),
        SigningAlg::EdDSA => digest(&SHA512, access_token.as_bytes()),
    };
    let bytes = d.as_ref();
    B64.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(1_000);

    fn keys() -> Keys {
        let stored: Vec<_> = SigningAlg::ALL
            .into_iter()
            .map(|alg| StoredSigningKey {
                kid: format!("{alg}-test"),
                alg,
                generation: 1,
                private_key: generate(alg).unwrap(),
                created_at: UnixMillis(0),
                signs_from: UnixMillis(0),
                retired_at: None,
            })
            .collect();
        Keys::from_stored(&stored, None).unwrap()
    }

    #[test]
    fn every_alg_signs_tokens_that_jsonwebtoken_verifies_from_the_jwks() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let keys = keys();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(keys.jwks()).unwrap();
        for alg in SigningAlg::ALL {
            let token =
                keys.sign(alg, "JWT", &json!({"iss": "https://op", "sub": "u", "exp": 4_000_000_000u64}), NOW).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
            let mut v = Validation::new(header.alg);
            v.set_issuer(&["https://op"]);
            v.validate_aud = false;
            let dk = DecodingKey::from_jwk(jwk).unwrap();
            jsonwebtoken::decode::<Value>(&token, &dk, &v).unwrap_or_else(|e| panic!("{alg}: {e}"));
            let claims: Value = keys.verify_ours(&token, "https://op").unwrap();
            assert_eq!(claims["sub"], "u");
        }
    }

    #[test]
    fn jwks_has_kid_on_every_key_and_no_private_members() {
        let jwks = keys().jwks();
        for k in jwks["keys"].as_array().unwrap() {
            assert!(k["kid"].is_string());
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(k.get(private).is_none(), "{private} leaked");
            }
        }
    }

    #[test]
    fn verify_ours_rejects_tampering_foreign_issuer_and_alg_swap() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let keys = keys();
        let token = keys.sign(SigningAlg::RS256, "JWT", &json!({"iss": "https://op", "sub": "u"}), NOW).unwrap();
        assert_eq!(keys.verify_ours::<Value>(&token, "https://other").unwrap_err(), VerifyError::Invalid);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = B64.encode(br#"{"iss":"https://op","sub":"admin"}"#);
        assert_eq!(keys.verify_ours::<Value>(&parts.join("."), "https://op").unwrap_err(), VerifyError::Invalid);
        let swapped = B64.encode(br#"{"alg":"ES256","kid":"RS256-test"}"#);
        parts[0] = swapped;
        assert_eq!(keys.verify_ours::<Value>(&parts.join("."), "https://op").unwrap_err(), VerifyError::AlgMismatch);
        assert_eq!(keys.verify_ours::<Value>("garbage", "https://op").unwrap_err(), VerifyError::Malformed);
    }
}
