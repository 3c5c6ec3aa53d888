//! ID token validation for the authorization code flow (Core §3.1.3.7), with the same signature
//! checks as logout tokens: the issuer's keys only, an `alg` allow-list that can never hold
//! `none` or a symmetric algorithm, keys pinned to their algorithm.
//!
//! In order: the JWS shape (a JWE is refused), `crit`, `typ` (absent or `JWT`: a logout token's
//! `logout+jwt` or an access token's `at+jwt` is refused), `alg`, key and signature; then `iss`
//! exactly, `aud` containing the client and nothing else, `azp` if present, `exp`, `iat`, `sub`,
//! the `nonce` sent in the authorization request, and no `events` claim (BC-SEC-05: a logout
//! token is never accepted as an ID token).

use crate::keys::{KeyCache, KeyFetchError};
use crate::verify::{
    JoseHeader, LogoutTokenError, PolicyError, VerificationKeys, non_empty_string, number, verify_jws,
};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use std::time::Duration;

/// What an ID token must satisfy for one client of one issuer.
///
/// ```
/// use adieu_rp::id_token::IdTokenPolicy;
/// use jsonwebtoken::Algorithm;
/// let p = IdTokenPolicy::new("https://op.example.com", "my-client")
///     .with_algorithms(&[Algorithm::RS256, Algorithm::ES256])
///     .unwrap();
/// assert_eq!(p.allowed_algorithms(), &[Algorithm::RS256, Algorithm::ES256]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IdTokenPolicy {
    issuer: String,
    client_id: String,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
}

impl IdTokenPolicy {
    /// A policy for `client_id` at `issuer`: RS256 only (the default `id_token_signed_response_alg`),
    /// 60 s leeway.
    ///
    /// ```
    /// let p = adieu_rp::id_token::IdTokenPolicy::new("https://op.example.com", "c");
    /// assert_eq!(p.issuer(), "https://op.example.com");
    /// ```
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        IdTokenPolicy {
            issuer: issuer.into(),
            client_id: client_id.into(),
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(60),
        }
    }

    /// Allows exactly these algorithms; symmetric ones are refused (RFC 8725 §3.1).
    ///
    /// ```
    /// use adieu_rp::id_token::IdTokenPolicy;
    /// assert!(IdTokenPolicy::new("https://op", "c").with_algorithms(&[jsonwebtoken::Algorithm::HS256]).is_err());
    /// ```
    pub fn with_algorithms(mut self, algs: &[Algorithm]) -> Result<Self, PolicyError> {
        self.algorithms = crate::verify::asymmetric_allow_list(algs)?;
        Ok(self)
    }

    /// Clock skew tolerated for `iat` and `exp` (default 60 s).
    ///
    /// ```
    /// let p = adieu_rp::id_token::IdTokenPolicy::new("https://op", "c").leeway(std::time::Duration::from_secs(5));
    /// # let _ = p;
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The expected issuer.
    ///
    /// ```
    /// assert_eq!(adieu_rp::id_token::IdTokenPolicy::new("https://op", "c").issuer(), "https://op");
    /// ```
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The allowed algorithms.
    ///
    /// ```
    /// use jsonwebtoken::Algorithm;
    /// assert_eq!(adieu_rp::id_token::IdTokenPolicy::new("https://op", "c").allowed_algorithms(), &[Algorithm::RS256]);
    /// ```
    pub fn allowed_algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

/// An ID token that passed every check. Only [`verify_id_token`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedIdToken {
    sub: String,
    sid: Option<String>,
    issued_at: i64,
    expires_at: i64,
    claims: Map<String, Value>,
}

impl VerifiedIdToken {
    /// `sub`: with the issuer, the stable identifier of the person (Core §5.7).
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::id_token::sample_for_docs();
    /// let t = adieu_rp::id_token::verify_id_token(&token, &keys, &policy, "nonce-1", now).unwrap();
    /// assert_eq!(t.subject(), "user-1");
    /// ```
    pub fn subject(&self) -> &str {
        &self.sub
    }
    /// `sid`, if the provider sends one (BC-SID-04: keep it to match logout tokens).
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::id_token::sample_for_docs();
    /// # let t = adieu_rp::id_token::verify_id_token(&token, &keys, &policy, "nonce-1", now).unwrap();
    /// assert_eq!(t.sid(), Some("sid-1"));
    /// ```
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
    /// `iat`, seconds since the epoch.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::id_token::sample_for_docs();
    /// # let t = adieu_rp::id_token::verify_id_token(&token, &keys, &policy, "nonce-1", now).unwrap();
    /// assert_eq!(t.issued_at(), now);
    /// ```
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }
    /// `exp`, seconds since the epoch.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::id_token::sample_for_docs();
    /// # let t = adieu_rp::id_token::verify_id_token(&token, &keys, &policy, "nonce-1", now).unwrap();
    /// assert_eq!(t.expires_at(), now + 300);
    /// ```
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
    /// A string claim (`preferred_username`, `email`…), if present and a non-empty string.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::id_token::sample_for_docs();
    /// # let t = adieu_rp::id_token::verify_id_token(&token, &keys, &policy, "nonce-1", now).unwrap();
    /// assert_eq!(t.string_claim("preferred_username"), Some("alice"));
    /// assert_eq!(t.string_claim("email"), None);
    /// ```
    pub fn string_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    /// Every claim.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::id_token::sample_for_docs();
    /// # let t = adieu_rp::id_token::verify_id_token(&token, &keys, &policy, "nonce-1", now).unwrap();
    /// assert_eq!(t.claims()["nonce"], "nonce-1");
    /// ```
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// A key set, a valid EdDSA ID token (nonce `nonce-1`), its policy and the time, for documentation
/// examples.
#[doc(hidden)]
pub fn sample_for_docs() -> (VerificationKeys, String, IdTokenPolicy, i64) {
    crate::install_crypto();
    // A fixed Ed25519 key (PKCS#8 v1: a fixed prefix, then the 32-byte seed); for examples only.
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(&[8u8; 32]);
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::EdDSA).expect("fixed example key");
    jwk.common.key_id = Some("doc-key".into());
    let now = 1_800_000_000;
    let claims = serde_json::json!({
        "iss": "https://op.example.com", "aud": "my-client", "iat": now, "exp": now + 300,
        "sub": "user-1", "sid": "sid-1", "nonce": "nonce-1", "preferred_username": "alice"
    });
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.kid = Some("doc-key".into());
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("signing the example token");
    let policy = IdTokenPolicy::new("https://op.example.com", "my-client")
        .with_algorithms(&[Algorithm::EdDSA])
        .expect("asymmetric");
    (VerificationKeys::new(jsonwebtoken::jwk::JwkSet { keys: vec![jwk] }), token, policy, now)
}

/// Why an ID token was refused. Each variant names the rule it enforces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// Not a compact JWS, or too long, or a claim of the wrong type.
    #[error("the ID token is malformed")]
    Malformed,
    /// An encrypted (JWE) token; no encryption was negotiated.
    #[error("encrypted ID tokens are not accepted")]
    Encrypted,
    /// A `crit` header this verifier does not implement (RFC 7515 §4.1.11).
    #[error("the ID token uses a critical header extension that is not supported")]
    UnsupportedCritical,
    /// `typ` names another kind of token (`logout+jwt`, `at+jwt`…): RFC 8725 §3.11.
    #[error("the token type {0:?} is not an ID token")]
    WrongType(String),
    /// `alg` is `none`, symmetric, unknown or not allowed (Core §3.1.3.7 step 7).
    #[error("the signing algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// No key of the issuer has this `kid`, even after refreshing the key set.
    #[error("no key of the issuer matches the ID token's key id")]
    UnknownKey(Option<String>),
    /// The key is not for this algorithm.
    #[error("the issuer's key does not match the ID token's algorithm")]
    KeyMismatch,
    /// The signature does not verify (Core §3.1.3.7 step 6).
    #[error("the ID token's signature is invalid")]
    BadSignature,
    /// `iss` is not the issuer (step 2).
    #[error("the ID token was not issued by the expected issuer")]
    WrongIssuer,
    /// `aud` does not contain the client id (step 3).
    #[error("the ID token is not addressed to this client")]
    WrongAudience,
    /// `aud` also names another audience (step 3: "additional audiences not trusted").
    #[error("the ID token is also addressed to another audience")]
    UntrustedAudience,
    /// `azp` is present and is not the client id (step 5).
    #[error("the ID token's authorized party is another client")]
    WrongAuthorizedParty,
    /// `sub` is missing or empty.
    #[error("the ID token has no subject")]
    MissingSubject,
    /// `iat` is missing.
    #[error("the ID token has no valid iat")]
    MissingIssuedAt,
    /// `iat` is in the future beyond the leeway (step 10).
    #[error("the ID token is issued in the future")]
    IssuedInFuture,
    /// `exp` is missing.
    #[error("the ID token has no exp")]
    MissingExpiry,
    /// `exp` has passed, beyond the leeway (step 9).
    #[error("the ID token has expired")]
    Expired,
    /// The authorization request sent a `nonce` and the token has none (step 11).
    #[error("the ID token has no nonce")]
    MissingNonce,
    /// The `nonce` differs from the one sent (step 11): a replayed or injected token.
    #[error("the ID token's nonce does not match the sign-in")]
    NonceMismatch,
    /// The token has an `events` claim: it is a logout token or another SET (BC-SEC-05).
    #[error("the token is a security event token, not an ID token")]
    EventToken,
    /// The issuer's keys could not be fetched (try again later).
    #[error(transparent)]
    Keys(#[from] KeyFetchError),
}

impl From<LogoutTokenError> for IdTokenError {
    fn from(e: LogoutTokenError) -> Self {
        match e {
            LogoutTokenError::Encrypted => IdTokenError::Encrypted,
            LogoutTokenError::UnsupportedCritical => IdTokenError::UnsupportedCritical,
            LogoutTokenError::WrongType(t) => IdTokenError::WrongType(t),
            LogoutTokenError::AlgorithmNotAllowed(a) => IdTokenError::AlgorithmNotAllowed(a),
            LogoutTokenError::UnknownKey(k) => IdTokenError::UnknownKey(k),
            LogoutTokenError::KeyMismatch => IdTokenError::KeyMismatch,
            LogoutTokenError::BadSignature => IdTokenError::BadSignature,
            _ => IdTokenError::Malformed,
        }
    }
}

/// An ID token's `typ`: absent or `JWT` (RFC 7519 §5.1); anything else is another kind of token.
fn check_id_token_typ(header: &JoseHeader<'_>) -> Result<(), LogoutTokenError> {
    match header.typ.as_deref() {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("application/jwt") => Ok(()),
        Some(t) => Err(LogoutTokenError::WrongType(t.chars().take(40).collect())),
    }
}

/// Verifies `raw` against the issuer's `keys`, `policy`, the `nonce` sent in the authorization
/// request, at `now` (seconds since the epoch).
///
/// ```
/// use adieu_rp::id_token::{verify_id_token, IdTokenError, IdTokenPolicy};
/// use adieu_rp::verify::VerificationKeys;
/// let keys = VerificationKeys::new(jsonwebtoken::jwk::JwkSet { keys: vec![] });
/// let policy = IdTokenPolicy::new("https://op.example.com", "c");
/// assert_eq!(verify_id_token("x.y", &keys, &policy, "n", 0), Err(IdTokenError::Malformed));
/// ```
pub fn verify_id_token(
    raw: &str,
    keys: &VerificationKeys,
    policy: &IdTokenPolicy,
    nonce: &str,
    now: i64,
) -> Result<VerifiedIdToken, IdTokenError> {
    let claims = verify_jws(raw, keys.set(), Some(keys.parsed()), &policy.algorithms, check_id_token_typ)?;
    check_claims(claims, policy, nonce, now)
}

/// [`verify_id_token`] with the issuer's cached keys, refetched once (rate limited) when the
/// token names an unknown `kid` (key rotation).
///
/// ```
/// use adieu_rp::keys::{KeyCache, StaticJwks};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let (keys, token, policy, now) = adieu_rp::id_token::sample_for_docs();
/// let cache = KeyCache::new(std::sync::Arc::new(StaticJwks(keys.set().clone())));
/// let t = adieu_rp::id_token::verify_id_token_cached(&token, &cache, &policy, "nonce-1", now).await.unwrap();
/// assert_eq!(t.subject(), "user-1");
/// # });
/// ```
pub async fn verify_id_token_cached(
    raw: &str,
    keys: &KeyCache,
    policy: &IdTokenPolicy,
    nonce: &str,
    now: i64,
) -> Result<VerifiedIdToken, IdTokenError> {
    match verify_id_token(raw, &*keys.current().await?, policy, nonce, now) {
        Err(IdTokenError::UnknownKey(_)) => verify_id_token(raw, &*keys.refresh().await?, policy, nonce, now),
        other => other,
    }
}

fn check_claims(
    claims: Map<String, Value>,
    policy: &IdTokenPolicy,
    nonce: &str,
    now: i64,
) -> Result<VerifiedIdToken, IdTokenError> {
    let leeway = i64::try_from(policy.leeway.as_secs()).unwrap_or(i64::MAX);
    if claims.get("iss").and_then(Value::as_str) != Some(policy.issuer.as_str()) {
        return Err(IdTokenError::WrongIssuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(v)) => {
            v.iter().map(Value::as_str).collect::<Option<_>>().ok_or(IdTokenError::WrongAudience)?
        }
        _ => return Err(IdTokenError::WrongAudience),
    };
    if !audiences.contains(&policy.client_id.as_str()) {
        return Err(IdTokenError::WrongAudience);
    }
    if audiences.iter().any(|a| *a != policy.client_id) {
        return Err(IdTokenError::UntrustedAudience);
    }
    match claims.get("azp") {
        None => {}
        Some(Value::String(azp)) if *azp == policy.client_id => {}
        Some(_) => return Err(IdTokenError::WrongAuthorizedParty),
    }
    let exp = number(claims.get("exp")).ok_or(IdTokenError::MissingExpiry)?;
    if now > exp.saturating_add(leeway) {
        return Err(IdTokenError::Expired);
    }
    let iat = number(claims.get("iat")).ok_or(IdTokenError::MissingIssuedAt)?;
    if iat > now.saturating_add(leeway) {
        return Err(IdTokenError::IssuedInFuture);
    }
    let sub = non_empty_string(claims.get("sub")).ok_or(IdTokenError::MissingSubject)?;
    match claims.get("nonce") {
        None => return Err(IdTokenError::MissingNonce),
        Some(Value::String(n)) if n == nonce => {}
        Some(_) => return Err(IdTokenError::NonceMismatch),
    }
    if claims.contains_key("events") {
        return Err(IdTokenError::EventToken);
    }
    let sid = non_empty_string(claims.get("sid"));
    Ok(VerifiedIdToken { sub, sid, issued_at: iat, expires_at: exp, claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{AUD, ISS, NOW, TestKey};
    use jsonwebtoken::jwk::JwkSet;
    use serde_json::json;

    fn good() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "user-1", "sid": "s-1", "iat": NOW, "exp": NOW + 300, "nonce": "n-1"})
    }

    fn policy() -> IdTokenPolicy {
        IdTokenPolicy::new(ISS, AUD).with_algorithms(&[Algorithm::RS256, Algorithm::ES256]).unwrap()
    }

    fn check(key: &TestKey, set: &JwkSet, claims: &Value) -> Result<VerifiedIdToken, IdTokenError> {
        let raw = key.sign("RS256", json!({}), claims);
        verify_id_token(&raw, &VerificationKeys::new(set.clone()), &policy(), "n-1", NOW)
    }

    fn edit(f: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut c = good();
        f(c.as_object_mut().unwrap());
        c
    }

    fn rig() -> (TestKey, JwkSet) {
        crate::install_crypto();
        let k = TestKey::rsa("rs");
        let set = JwkSet { keys: vec![k.jwk(Some("RS256"))] };
        (k, set)
    }

    #[test]
    fn core_3_1_3_7_a_valid_id_token_is_accepted_with_its_sub_and_sid() {
        let (k, set) = rig();
        let t = check(&k, &set, &good()).unwrap();
        assert_eq!((t.subject(), t.sid(), t.issued_at()), ("user-1", Some("s-1"), NOW));
    }

    #[test]
    fn core_3_1_3_7_wrong_issuer_is_rejected() {
        let (k, set) = rig();
        assert_eq!(
            check(&k, &set, &edit(|c| drop(c.insert("iss".into(), json!("https://evil"))))),
            Err(IdTokenError::WrongIssuer)
        );
    }

    #[test]
    fn core_3_1_3_7_wrong_or_extra_audience_and_foreign_azp_are_rejected() {
        let (k, set) = rig();
        assert_eq!(
            check(&k, &set, &edit(|c| drop(c.insert("aud".into(), json!("other"))))),
            Err(IdTokenError::WrongAudience)
        );
        assert_eq!(
            check(&k, &set, &edit(|c| drop(c.insert("aud".into(), json!([AUD, "other"]))))),
            Err(IdTokenError::UntrustedAudience)
        );
        assert_eq!(
            check(&k, &set, &edit(|c| drop(c.insert("azp".into(), json!("other"))))),
            Err(IdTokenError::WrongAuthorizedParty)
        );
        assert!(check(&k, &set, &edit(|c| drop(c.insert("aud".into(), json!([AUD]))))).is_ok());
    }

    #[test]
    fn core_3_1_3_7_nonce_must_be_the_one_sent() {
        let (k, set) = rig();
        assert_eq!(check(&k, &set, &edit(|c| drop(c.remove("nonce")))), Err(IdTokenError::MissingNonce));
        assert_eq!(
            check(&k, &set, &edit(|c| drop(c.insert("nonce".into(), json!("n-2"))))),
            Err(IdTokenError::NonceMismatch)
        );
    }

    #[test]
    fn core_3_1_3_7_expired_missing_exp_and_future_iat_are_rejected() {
        let (k, set) = rig();
        assert_eq!(
            check(&k, &set, &edit(|c| drop(c.insert("exp".into(), json!(NOW - 61))))),
            Err(IdTokenError::Expired)
        );
        assert_eq!(check(&k, &set, &edit(|c| drop(c.remove("exp")))), Err(IdTokenError::MissingExpiry));
        assert_eq!(
            check(&k, &set, &edit(|c| drop(c.insert("iat".into(), json!(NOW + 61))))),
            Err(IdTokenError::IssuedInFuture)
        );
        assert_eq!(check(&k, &set, &edit(|c| drop(c.remove("iat")))), Err(IdTokenError::MissingIssuedAt));
        assert_eq!(check(&k, &set, &edit(|c| drop(c.remove("sub")))), Err(IdTokenError::MissingSubject));
    }

    #[test]
    fn core_3_1_3_7_bad_signature_and_unpublished_key_are_rejected() {
        let (k, set) = rig();
        // A signature over other claims, spliced onto these (changing the last base64 character
        // could touch only its unused bits, or put back the same character).
        let t = k.sign("RS256", json!({}), &good());
        let other = k.sign("RS256", json!({}), &{
            let mut c = good();
            c["sub"] = json!("admin");
            c
        });
        let raw = format!("{}.{}", &t[..t.rfind('.').unwrap()], &other[other.rfind('.').unwrap() + 1..]);
        let keys = VerificationKeys::new(set.clone());
        assert_eq!(verify_id_token(&raw, &keys, &policy(), "n-1", NOW), Err(IdTokenError::BadSignature));
        let stranger = TestKey::rsa("rs");
        assert_eq!(check(&stranger, &set, &good()), Err(IdTokenError::BadSignature), "same kid, other key");
        let unknown = TestKey::rsa("nope");
        assert!(matches!(check(&unknown, &set, &good()), Err(IdTokenError::UnknownKey(_))));
    }

    #[test]
    fn rfc_8725_alg_none_and_hs256_are_never_accepted() {
        let (_, set) = rig();
        let b64 = |v: Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!("{}.{}.", b64(json!({"alg": "none"})), b64(good()));
        let keys = VerificationKeys::new(set.clone());
        assert!(matches!(
            verify_id_token(&none, &keys, &policy(), "n-1", NOW),
            Err(IdTokenError::AlgorithmNotAllowed(_))
        ));
        let hs = format!("{}.{}.c2ln", b64(json!({"alg": "HS256", "kid": "rs"})), b64(good()));
        assert!(matches!(
            verify_id_token(&hs, &keys, &policy(), "n-1", NOW),
            Err(IdTokenError::AlgorithmNotAllowed(_))
        ));
    }

    #[test]
    fn bc_sec_05_a_logout_token_is_never_an_id_token() {
        let (k, set) = rig();
        let keys = VerificationKeys::new(set.clone());
        let typed = k.sign("RS256", json!({"typ": "logout+jwt"}), &good());
        assert!(matches!(verify_id_token(&typed, &keys, &policy(), "n-1", NOW), Err(IdTokenError::WrongType(_))));
        let with_events = edit(|c| {
            c.insert("events".into(), json!({adieu_proto::logout::BACKCHANNEL_LOGOUT_EVENT: {}}));
        });
        assert_eq!(check(&k, &set, &with_events), Err(IdTokenError::EventToken));
    }
}
