//! Signing keys: generation, the pre-parsed signers, the public JWKS, and verification of our own
//! tokens (the `id_token_hint`).
//!
//! Each key signs with exactly one algorithm (RFC 8725 §3.1) and its `kid` starts with the
//! algorithm name, because the RFC 7638 thumbprint would not tell an RS256 key from a PS256 one.
//! Keys are parsed once when loaded; signing then costs only the signature (STACK.md pitfall 2).

use adieu_core::store::{KeyStore, StoreError, StoredSigningKey};
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
use std::collections::HashMap;

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
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Parsed {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed private key with its public JWK.
struct SigningKey {
    kid: String,
    alg: SigningAlg,
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

impl SigningKey {
    fn parse(stored: &StoredSigningKey) -> Result<Self, KeyError> {
        let kid = stored.kid.as_str();
        let der = &stored.private_pkcs8;
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
        Ok(SigningKey { kid: kid.to_owned(), alg: stored.alg, parsed, jwk, decoding })
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

/// The provider's signing keys, parsed.
#[derive(Debug)]
pub struct Keys {
    keys: Vec<SigningKey>,
    current: HashMap<SigningAlg, usize>,
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
    /// Loads the keys from storage, generating one per algorithm if none exists (first start).
    pub async fn load_or_generate(store: &dyn KeyStore, now: UnixMillis) -> Result<Keys, KeyError> {
        let mut stored = store.signing_keys().await?;
        for alg in SigningAlg::ALL {
            if !stored.iter().any(|k| k.alg == alg) {
                let key = StoredSigningKey {
                    kid: format!("{}-{}", alg, crate::crypto::random_b64(12)),
                    alg,
                    private_pkcs8: tokio::task::spawn_blocking(move || generate(alg))
                        .await
                        .map_err(|_| KeyError::Generation)??,
                    created_at: now,
                };
                store.insert_signing_key(&key).await?;
                tracing::info!(kid = %key.kid, %alg, "generated signing key");
                stored.push(key);
            }
        }
        // Re-read so every process publishes the keys in the database's order.
        Keys::from_stored(&store.signing_keys().await?)
    }

    /// Parses stored keys. The newest key of each algorithm signs; all are published.
    pub fn from_stored(stored: &[StoredSigningKey]) -> Result<Keys, KeyError> {
        let mut keys = Vec::with_capacity(stored.len());
        let mut current = HashMap::new();
        for s in stored {
            let k = SigningKey::parse(s)?;
            current.insert(k.alg, keys.len());
            keys.push(k);
        }
        Ok(Keys { keys, current })
    }

    /// The public JWK Set (no private material).
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// Signs `claims` as a compact JWS with the current key for `alg`; `typ` goes in the header.
    pub fn sign<C: Serialize>(&self, alg: SigningAlg, typ: &str, claims: &C) -> Result<String, KeyError> {
        let key = self.current.get(&alg).map(|&i| &self.keys[i]).ok_or(KeyError::NoKey(alg))?;
        let header = json!({ "alg": alg.as_str(), "typ": typ, "kid": key.kid });
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

    /// Verifies a JWS we issued: known `kid`, `alg` equal to that key's algorithm, valid signature,
    /// `iss` equal to `issuer`. Expiry is *not* checked (an expired `id_token_hint` is accepted, RPI-04).
    pub fn verify_ours<C: DeserializeOwned>(&self, token: &str, issuer: &str) -> Result<C, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or(VerifyError::UnknownKey)?;
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

    fn keys() -> Keys {
        let stored: Vec<_> = SigningAlg::ALL
            .into_iter()
            .map(|alg| StoredSigningKey {
                kid: format!("{alg}-test"),
                alg,
                private_pkcs8: generate(alg).unwrap(),
                created_at: UnixMillis(0),
            })
            .collect();
        Keys::from_stored(&stored).unwrap()
    }

    #[test]
    fn every_alg_signs_tokens_that_jsonwebtoken_verifies_from_the_jwks() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let keys = keys();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(keys.jwks()).unwrap();
        for alg in SigningAlg::ALL {
            let token =
                keys.sign(alg, "JWT", &json!({"iss": "https://op", "sub": "u", "exp": 4_000_000_000u64})).unwrap();
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
        let token = keys.sign(SigningAlg::RS256, "JWT", &json!({"iss": "https://op", "sub": "u"})).unwrap();
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
