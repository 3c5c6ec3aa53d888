//! Logout token verification, in the order of Back-Channel Logout 1.0 §2.6 (BC-RP-01..07) with
//! the errata set 1 `exp` rule and RFC 8725's hardening.
//!
//! [`verify`] is a pure function: raw token, the issuer's keys, the [`VerificationPolicy`] and the
//! current time in, a [`VerifiedLogoutToken`] or a precise [`LogoutTokenError`] out. The `alg`
//! allow-list comes from the policy (the client's registered algorithm), never from the token;
//! `none` and symmetric algorithms cannot be allowed, so key confusion is impossible. Keys come
//! only from the set passed in (the issuer's `jwks_uri`); `jku`, `x5u`, `jwk` and `x5c` headers are
//! never followed.

use adieu_proto::logout::BACKCHANNEL_LOGOUT_EVENT;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

/// Longest token accepted (bytes); anything larger is refused before parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

mod claims;
mod error;
mod header;
mod keys;
mod policy;
mod token;

pub(crate) use self::{claims::*, header::*};
pub use self::{error::*, keys::*, policy::*, token::*};

/// A key set, a valid EdDSA logout token, its policy and the time, for documentation examples.
#[doc(hidden)]
pub fn sample_for_docs() -> (JwkSet, String, VerificationPolicy, i64) {
    crate::install_crypto();
    // A fixed Ed25519 key (PKCS#8 v1: a fixed prefix, then the 32-byte seed); for examples only.
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(&[7u8; 32]);
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).expect("fixed example key");
    jwk.common.key_id = Some("doc-key".into());
    let now = 1_800_000_000;
    let claims = serde_json::json!({
        "iss": "https://op.example.com", "aud": "my-client", "iat": now, "exp": now + 120, "jti": "jti-1",
        "sub": "user-1", "sid": "sid-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}, "initiator": "session-expired"
    });
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.kid = Some("doc-key".into());
    header.typ = Some("logout+jwt".into());
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("signing the example token");
    let policy = VerificationPolicy::new("https://op.example.com", "my-client")
        .with_algorithms(&[Algorithm::EdDSA])
        .expect("asymmetric");
    (JwkSet { keys: vec![jwk] }, token, policy, now)
}

/// Verifies `raw` against `keys` (the issuer's JWKS) and `policy` at `now` (seconds since the
/// epoch). See the module documentation for the order of checks. Parses the key for each call;
/// [`verify_prepared`] with a long-lived [`VerificationKeys`] does not.
///
/// ```
/// use adieu_rp::verify::{verify, LogoutTokenError, VerificationPolicy};
/// let keys = jsonwebtoken::jwk::JwkSet { keys: vec![] };
/// let policy = VerificationPolicy::new("https://op.example.com", "c");
/// assert_eq!(verify("not-a-jwt", &keys, &policy, 0), Err(LogoutTokenError::Malformed));
/// ```
pub fn verify(
    raw: &str,
    keys: &JwkSet,
    policy: &VerificationPolicy,
    now: i64,
) -> Result<VerifiedLogoutToken, LogoutTokenError> {
    verify_inner(raw, keys, None, policy, now)
}

/// [`verify`] with keys parsed once and reused (what [`crate::verifier::LogoutVerifier`] does).
///
/// ```
/// use adieu_rp::verify::{verify_prepared, VerificationKeys};
/// let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
/// let keys = VerificationKeys::new(keys);
/// assert_eq!(verify_prepared(&token, &keys, &policy, now).unwrap().jti(), "jti-1");
/// ```
pub fn verify_prepared(
    raw: &str,
    keys: &VerificationKeys,
    policy: &VerificationPolicy,
    now: i64,
) -> Result<VerifiedLogoutToken, LogoutTokenError> {
    verify_inner(raw, &keys.set, Some(&keys.parsed), policy, now)
}

fn verify_inner(
    raw: &str,
    keys: &JwkSet,
    parsed: Option<&Vec<ParsedSlots>>,
    policy: &VerificationPolicy,
    now: i64,
) -> Result<VerifiedLogoutToken, LogoutTokenError> {
    let payload = verify_jws_payload(raw, keys, parsed, &policy.algorithms, |header| check_typ(header, policy.typ))?;
    check_claims(payload, policy, now)
}

/// The signed part of verification, shared with ID tokens ([`crate::id_token`]): the compact JWS
/// shape (BC-RP-01: a JWE is refused), `crit`, the header check `check_header` (`typ`), the `alg`
/// allow-list (BC-RP-03; never `none` or a symmetric algorithm), the issuer's key by `kid`, and
/// the signature (BC-RP-02). Returns the claims, not yet checked.
pub(crate) fn verify_jws(
    raw: &str,
    keys: &JwkSet,
    parsed: Option<&Vec<ParsedSlots>>,
    algorithms: &[Algorithm],
    check_header: impl FnOnce(&JoseHeader<'_>) -> Result<(), LogoutTokenError>,
) -> Result<Map<String, Value>, LogoutTokenError> {
    let payload = verify_jws_payload(raw, keys, parsed, algorithms, check_header)?;
    match serde_json::from_slice::<Value>(&payload) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(LogoutTokenError::Malformed),
    }
}

/// [`verify_jws`] up to the signature: returns the payload's bytes (JSON, not yet parsed).
fn verify_jws_payload(
    raw: &str,
    keys: &JwkSet,
    parsed: Option<&Vec<ParsedSlots>>,
    algorithms: &[Algorithm],
    check_header: impl FnOnce(&JoseHeader<'_>) -> Result<(), LogoutTokenError>,
) -> Result<Vec<u8>, LogoutTokenError> {
    // Shape. BC-RP-01: a JWE has five parts.
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > MAX_TOKEN_LEN {
        return Err(LogoutTokenError::Malformed);
    }
    let mut split = raw.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64)) = (split.next(), split.next(), split.next()) else {
        return Err(LogoutTokenError::Malformed);
    };
    match split.count() {
        0 => {}
        2 => return Err(LogoutTokenError::Encrypted),
        _ => return Err(LogoutTokenError::Malformed),
    }
    let header_json = decode_b64(header_b64).ok_or(LogoutTokenError::Malformed)?;
    let header = JoseHeader::parse(&header_json)?;

    // Header: crit (RFC 7515 §4.1.11), typ (BC-RP-13), alg allow-list (BC-RP-03).
    if header.crit.0 {
        return Err(LogoutTokenError::UnsupportedCritical);
    }
    check_header(&header)?;
    let alg_name = header.alg.as_deref().ok_or(LogoutTokenError::Malformed)?;
    let shown = || alg_name.chars().take(20).collect::<String>();
    let alg: Algorithm = alg_name.parse().map_err(|_| LogoutTokenError::AlgorithmNotAllowed(shown()))?;
    if is_symmetric(alg) || !algorithms.contains(&alg) {
        return Err(LogoutTokenError::AlgorithmNotAllowed(shown()));
    }

    // Signature with the issuer's key (BC-RP-02). jku/x5u/jwk/x5c are deliberately not read.
    let kid = header.kid.as_deref();
    let index = select_key(keys, kid, alg)?;
    let verified = match parsed.and_then(|p| p.get(index)) {
        // The issuer's key, parsed once per key set and algorithm (STACK pitfall: parsing per
        // token costs as much as the signature check itself).
        Some(cache) => {
            let slot = &cache[alg_slot(alg)];
            let key = slot.get_or_init(|| parse_key(&keys.keys[index], alg)).as_ref();
            let key = key.ok_or(LogoutTokenError::KeyMismatch)?;
            check_signature(raw, signature_b64, |input, sig| key.verify_sig(input, sig).is_ok())?
        }
        None => {
            let key = parse_key(&keys.keys[index], alg).ok_or(LogoutTokenError::KeyMismatch)?;
            check_signature(raw, signature_b64, |input, sig| key.verify_sig(input, sig).is_ok())?
        }
    };
    debug_assert!(verified);
    decode_b64(payload_b64).ok_or(LogoutTokenError::Malformed)
}

#[cfg(test)]
mod tests;
