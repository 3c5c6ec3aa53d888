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
use base64_engine::decode_b64;
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

/// How the `typ` header is treated (BC-RP-13, BC-SEC-04).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TypPolicy {
    /// Accept a missing `typ` (as the OpenID conformance suite sends), `logout+jwt`,
    /// `application/logout+jwt` and the ambiguous `JWT`; refuse any other type. The default.
    #[default]
    Lenient,
    /// Require `logout+jwt` or `application/logout+jwt`.
    Strict,
}

/// How a missing `exp` is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpPolicy {
    /// `exp` is required (Back-Channel Logout errata set 1). The default.
    #[default]
    Required,
    /// Compatibility with providers that omit `exp` (written before errata 1): a token without it
    /// is accepted only while `iat` is at most `max_age` old.
    AllowMissing {
        /// Oldest acceptable `iat` when `exp` is missing.
        max_age: Duration,
    },
}

/// What a logout token must satisfy for one client of one issuer.
///
/// ```
/// use adieu_rp::verify::VerificationPolicy;
/// use jsonwebtoken::Algorithm;
///
/// let policy = VerificationPolicy::new("https://op.example.com", "my-client")
///     .with_algorithms(&[Algorithm::ES256])
///     .unwrap();
/// assert_eq!(policy.allowed_algorithms(), &[Algorithm::ES256]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationPolicy {
    issuer: String,
    client_id: String,
    algorithms: Vec<Algorithm>,
    trusted_audiences: Vec<String>,
    leeway: Duration,
    typ: TypPolicy,
    exp: ExpPolicy,
}

/// A policy that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Only asymmetric algorithms can verify logout tokens with the issuer's public keys.
    #[error(
        "algorithm {0:?} cannot be allowed: only asymmetric algorithms (RS*, PS*, ES*, EdDSA) verify logout tokens"
    )]
    SymmetricAlgorithm(Algorithm),
    /// The list was empty.
    #[error("at least one algorithm must be allowed")]
    NoAlgorithm,
}

impl VerificationPolicy {
    /// A policy for `client_id` at `issuer`: RS256 only (the OpenID default when no
    /// `id_token_signed_response_alg` was registered), 60 s leeway, lenient `typ`, `exp` required.
    ///
    /// ```
    /// let p = adieu_rp::verify::VerificationPolicy::new("https://op.example.com", "c1");
    /// assert_eq!(p.issuer(), "https://op.example.com");
    /// ```
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        VerificationPolicy {
            issuer: issuer.into(),
            client_id: client_id.into(),
            algorithms: vec![Algorithm::RS256],
            trusted_audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            typ: TypPolicy::Lenient,
            exp: ExpPolicy::Required,
        }
    }

    /// Allows exactly these algorithms (the client's registered `id_token_signed_response_alg`).
    /// Symmetric algorithms are refused (RFC 8725 §3.1, key confusion).
    ///
    /// ```
    /// use adieu_rp::verify::VerificationPolicy;
    /// use jsonwebtoken::Algorithm;
    /// assert!(VerificationPolicy::new("https://op", "c").with_algorithms(&[Algorithm::HS256]).is_err());
    /// ```
    pub fn with_algorithms(mut self, algs: &[Algorithm]) -> Result<Self, PolicyError> {
        self.algorithms = asymmetric_allow_list(algs)?;
        Ok(self)
    }

    /// Also accepts these audiences next to the client id (CORE-02: others are untrusted).
    ///
    /// ```
    /// let p = adieu_rp::verify::VerificationPolicy::new("https://op", "c").trust_audience("api");
    /// # let _ = p;
    /// ```
    pub fn trust_audience(mut self, aud: impl Into<String>) -> Self {
        self.trusted_audiences.push(aud.into());
        self
    }

    /// Clock skew tolerated for `iat` and `exp` (default 60 s).
    ///
    /// ```
    /// let p = adieu_rp::verify::VerificationPolicy::new("https://op", "c").leeway(std::time::Duration::from_secs(5));
    /// # let _ = p;
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires `typ: logout+jwt` (BC-SEC-04; breaks providers that do not type their tokens).
    ///
    /// ```
    /// let p = adieu_rp::verify::VerificationPolicy::new("https://op", "c").strict_typ();
    /// # let _ = p;
    /// ```
    pub fn strict_typ(mut self) -> Self {
        self.typ = TypPolicy::Strict;
        self
    }

    /// Compatibility switch for providers that omit `exp`: accept such tokens while `iat` is at
    /// most `max_age` old. Tokens that carry `exp` are still checked against it.
    ///
    /// ```
    /// let p = adieu_rp::verify::VerificationPolicy::new("https://op", "c")
    ///     .allow_missing_exp(std::time::Duration::from_secs(120));
    /// # let _ = p;
    /// ```
    pub fn allow_missing_exp(mut self, max_age: Duration) -> Self {
        self.exp = ExpPolicy::AllowMissing { max_age };
        self
    }

    /// The expected issuer.
    ///
    /// ```
    /// assert_eq!(adieu_rp::verify::VerificationPolicy::new("https://op", "c").issuer(), "https://op");
    /// ```
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client id the tokens must be for.
    ///
    /// ```
    /// assert_eq!(adieu_rp::verify::VerificationPolicy::new("https://op", "c").client_id(), "c");
    /// ```
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// How long a verified token stays acceptable: until `exp` (or `iat` + the compatibility
    /// maximum age when `exp` is missing) plus the leeway. The replay cache keeps a `jti` that long.
    pub(crate) fn acceptable_until(&self, token: &VerifiedLogoutToken) -> i64 {
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let end = match (token.expires_at(), self.exp) {
            (Some(exp), _) => exp,
            (None, ExpPolicy::AllowMissing { max_age }) => {
                token.issued_at().saturating_add(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX))
            }
            (None, ExpPolicy::Required) => token.issued_at(),
        };
        end.saturating_add(leeway).saturating_add(1)
    }

    /// The allowed algorithms.
    ///
    /// ```
    /// use jsonwebtoken::Algorithm;
    /// assert_eq!(adieu_rp::verify::VerificationPolicy::new("https://op", "c").allowed_algorithms(), &[Algorithm::RS256]);
    /// ```
    pub fn allowed_algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

/// Whom a logout token names (BC-LT-01): a session, a user, or both. Never neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutSubject {
    /// Only `sid`: that session.
    Sid(String),
    /// Only `sub`: every session of that user at this issuer.
    Sub(String),
    /// Both: the session `sid` of user `sub`.
    Both {
        /// The user.
        sub: String,
        /// The session.
        sid: String,
    },
}

impl LogoutSubject {
    /// The `sid`, if present.
    ///
    /// ```
    /// use adieu_rp::verify::LogoutSubject;
    /// assert_eq!(LogoutSubject::Sid("s".into()).sid(), Some("s"));
    /// assert_eq!(LogoutSubject::Sub("u".into()).sid(), None);
    /// ```
    pub fn sid(&self) -> Option<&str> {
        match self {
            LogoutSubject::Sid(s) | LogoutSubject::Both { sid: s, .. } => Some(s),
            LogoutSubject::Sub(_) => None,
        }
    }

    /// The `sub`, if present.
    ///
    /// ```
    /// use adieu_rp::verify::LogoutSubject;
    /// assert_eq!(LogoutSubject::Both { sub: "u".into(), sid: "s".into() }.sub(), Some("u"));
    /// ```
    pub fn sub(&self) -> Option<&str> {
        match self {
            LogoutSubject::Sub(s) | LogoutSubject::Both { sub: s, .. } => Some(s),
            LogoutSubject::Sid(_) => None,
        }
    }
}

/// A logout token that passed every check. Only [`verify`] makes one.
///
/// ```
/// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
/// let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
/// assert_eq!(t.issuer(), "https://op.example.com");
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedLogoutToken {
    issuer: String,
    audiences: Vec<String>,
    issued_at: i64,
    expires_at: Option<i64>,
    jti: String,
    subject: LogoutSubject,
    /// The verified claims as signed (a JSON object); read into a map only when asked for.
    payload: Box<[u8]>,
    claims: OnceLock<Map<String, Value>>,
}

impl PartialEq for VerifiedLogoutToken {
    fn eq(&self, other: &Self) -> bool {
        // The parsed claims are a cache of the payload.
        (&self.issuer, &self.audiences, self.issued_at, self.expires_at, &self.jti, &self.subject, &self.payload)
            == (
                &other.issuer,
                &other.audiences,
                other.issued_at,
                other.expires_at,
                &other.jti,
                &other.subject,
                &other.payload,
            )
    }
}

impl VerifiedLogoutToken {
    /// `iss`.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.issuer(), "https://op.example.com");
    /// ```
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// `aud`, as a list.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.audiences(), ["my-client".to_owned()]);
    /// ```
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
    /// `iat`, seconds since the epoch.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.issued_at(), now);
    /// ```
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }
    /// `exp`, seconds since the epoch (absent only under [`ExpPolicy::AllowMissing`]).
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.expires_at(), Some(now + 120));
    /// ```
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
    /// `jti`.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.jti(), "jti-1");
    /// ```
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// Whom the token logs out.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.subject().sid(), Some("sid-1"));
    /// ```
    pub fn subject(&self) -> &LogoutSubject {
        &self.subject
    }
    /// Why the session ended, if the provider says: adieu's `initiator` claim (`rp-logout`,
    /// `idp-logout`, `session-revoked`, `password-changed`, `email-identifier-changed`,
    /// `account-deleted` or `session-expired`). Other providers send none, and a value that is not
    /// a string reads as none. It lets an application tell the user "your session expired" rather
    /// than "you signed out"; it changes nothing in what the token ends.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.initiator(), Some("session-expired"));
    /// ```
    pub fn initiator(&self) -> Option<&str> {
        self.claims().get("initiator").and_then(Value::as_str)
    }
    /// Every claim, including ones this crate does not interpret (BC-LT-02).
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert!(t.claims().contains_key("events"));
    /// ```
    pub fn claims(&self) -> &Map<String, Value> {
        // The payload was checked to be a JSON object that serde_json reads (`parse_object`)
        // before this token was made, so this cannot fail.
        self.claims.get_or_init(|| serde_json::from_slice(&self.payload).unwrap_or_default())
    }
}

/// Why a logout token was refused. Each variant names the rule it enforces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutTokenError {
    /// Not a compact JWS: wrong number of parts, bad base64url or JSON, or too long.
    #[error("the logout token is malformed")]
    Malformed,
    /// BC-RP-01: an encrypted (JWE) token; this client did not negotiate encryption.
    #[error("encrypted logout tokens are not accepted")]
    Encrypted,
    /// RFC 7515 §4.1.11: a `crit` header names an extension this verifier does not implement.
    #[error("the logout token uses a critical header extension that is not supported")]
    UnsupportedCritical,
    /// BC-RP-13: `typ` is present and is not a logout token type (`at+jwt`, `secevent+jwt`, …).
    /// The value is cut to 40 characters.
    #[error("the token type {0:?} is not a logout token")]
    WrongType(String),
    /// BC-RP-13 strict mode: `typ` is missing or ambiguous.
    #[error("the logout token is not explicitly typed logout+jwt")]
    UntypedToken,
    /// BC-RP-03: `alg` is `none`, unknown, or not the client's registered algorithm.
    #[error("the signing algorithm {0:?} is not allowed for this client")]
    AlgorithmNotAllowed(String),
    /// BC-RP-02: no key of the issuer has this `kid` (after a refresh of the key set).
    #[error("no key of the issuer matches the token's key id")]
    UnknownKey(Option<String>),
    /// RFC 8725 §3.1: the key is not for this algorithm (its `alg` or type differs).
    #[error("the issuer's key does not match the token's algorithm")]
    KeyMismatch,
    /// BC-RP-02: the signature does not verify.
    #[error("the logout token's signature is invalid")]
    BadSignature,
    /// BC-RP-04: `iss` is not the issuer.
    #[error("the logout token was not issued by the expected issuer")]
    WrongIssuer,
    /// BC-RP-04: `aud` does not contain the client id.
    #[error("the logout token is not addressed to this client")]
    WrongAudience,
    /// BC-RP-04 (CORE-02): `aud` contains an audience the client does not trust.
    #[error("the logout token is also addressed to an untrusted audience")]
    UntrustedAudience,
    /// BC-RP-04: `iat` is missing or not a number.
    #[error("the logout token has no valid iat")]
    MissingIssuedAt,
    /// BC-RP-04: `iat` is in the future beyond the leeway.
    #[error("the logout token is issued in the future")]
    IssuedInFuture,
    /// BC-RP-04 (errata 1): `exp` is missing.
    #[error("the logout token has no exp")]
    MissingExpiry,
    /// BC-RP-04: `exp` has passed (beyond the leeway).
    #[error("the logout token has expired")]
    Expired,
    /// Compatibility mode: no `exp` and `iat` older than the maximum age.
    #[error("the logout token is too old")]
    TooOld,
    /// `jti` is missing or empty (CORE-09).
    #[error("the logout token has no jti")]
    MissingJti,
    /// BC-RP-05: neither `sub` nor `sid`.
    #[error("the logout token names neither a subject nor a session")]
    MissingSubjectAndSession,
    /// BC-RP-05: `sub` or `sid` is present but not a non-empty string (a number, `null`, `""`,
    /// an array…). Read as absent, a broken `sid` would end every session of the subject.
    #[error("the logout token's sub or sid is not a non-empty string")]
    InvalidSubjectOrSession,
    /// BC-RP-06: no `events` claim with the back-channel logout member.
    #[error("the logout token lacks the back-channel logout event")]
    MissingEvent,
    /// BC-RP-06: the back-channel logout event member is not a JSON object.
    #[error("the back-channel logout event is not a JSON object")]
    EventNotObject,
    /// BC-RP-07: a `nonce` claim is present.
    #[error("the logout token must not contain a nonce")]
    NoncePresent,
    /// BC-RP-08: this `jti` was already used for a successful logout.
    #[error("the logout token was already used")]
    Replayed,
}

impl LogoutTokenError {
    /// A short, stable name for metrics and logs.
    ///
    /// ```
    /// assert_eq!(adieu_rp::verify::LogoutTokenError::Expired.reason(), "expired");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            LogoutTokenError::Malformed => "malformed",
            LogoutTokenError::Encrypted => "encrypted",
            LogoutTokenError::UnsupportedCritical => "unsupported_crit",
            LogoutTokenError::WrongType(_) => "wrong_typ",
            LogoutTokenError::UntypedToken => "untyped",
            LogoutTokenError::AlgorithmNotAllowed(_) => "alg_not_allowed",
            LogoutTokenError::UnknownKey(_) => "unknown_key",
            LogoutTokenError::KeyMismatch => "key_mismatch",
            LogoutTokenError::BadSignature => "bad_signature",
            LogoutTokenError::WrongIssuer => "wrong_issuer",
            LogoutTokenError::WrongAudience => "wrong_audience",
            LogoutTokenError::UntrustedAudience => "untrusted_audience",
            LogoutTokenError::MissingIssuedAt => "missing_iat",
            LogoutTokenError::IssuedInFuture => "iat_in_future",
            LogoutTokenError::MissingExpiry => "missing_exp",
            LogoutTokenError::Expired => "expired",
            LogoutTokenError::TooOld => "too_old",
            LogoutTokenError::MissingJti => "missing_jti",
            LogoutTokenError::MissingSubjectAndSession => "missing_sub_and_sid",
            LogoutTokenError::InvalidSubjectOrSession => "invalid_sub_or_sid",
            LogoutTokenError::MissingEvent => "missing_event",
            LogoutTokenError::EventNotObject => "event_not_object",
            LogoutTokenError::NoncePresent => "nonce_present",
            LogoutTokenError::Replayed => "replayed",
        }
    }
}

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

mod base64_engine {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(s).ok()
    }
}

/// The JOSE header members verification reads (RFC 7515 §4.1), parsed without building a map.
/// Other members are ignored, except that any `crit` is refused; `jku`, `x5u`, `jwk` and `x5c`
/// are never read. `alg`, `kid` and `typ`, when present, must be strings (`null` included: a
/// member that is there but not a string makes the token malformed), and a member named twice
/// makes it malformed (RFC 7515 §4 allows refusing duplicates instead of taking the last).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct JoseHeader<'a> {
    #[serde(borrow, default, deserialize_with = "string_member")]
    pub(crate) alg: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "string_member")]
    pub(crate) kid: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "string_member")]
    pub(crate) typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Present,
}

impl<'a> JoseHeader<'a> {
    fn parse(json: &'a [u8]) -> Result<Self, LogoutTokenError> {
        parse_object(json)
    }
}

/// Reads a JSON object (a JOSE header or a claims set) into `T`, after checking that the whole
/// text is JSON that `serde_json::Value` would read: a derived struct skips the members it does
/// not name without looking closely (an invalid UTF-8 byte or a lone surrogate in a skipped
/// string, a number out of range), and such a token must be refused as it was when the whole
/// text was read into a map (found by the `logout_claims` fuzz target).
fn parse_object<'a, T: serde::Deserialize<'a>>(json: &'a [u8]) -> Result<T, LogoutTokenError> {
    let text = std::str::from_utf8(json).map_err(|_| LogoutTokenError::Malformed)?;
    // Only a JSON object (a derived struct would also take an array).
    if !text.trim_start().starts_with('{') {
        return Err(LogoutTokenError::Malformed);
    }
    serde_json::from_str::<StrictJson>(text).map_err(|_| LogoutTokenError::Malformed)?;
    serde_json::from_str(text).map_err(|_| LogoutTokenError::Malformed)
}

/// Any JSON value, every string and number read as `serde_json::Value` reads it, nothing kept.
struct StrictJson;

impl<'de> serde::Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictJson)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictJson {
    type Value = StrictJson;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<StrictJson>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<StrictJson, StrictJson>()?.is_some() {}
        Ok(self)
    }
}

/// Whether a member is there at all, whatever its value (`"crit": null` is still a `crit`).
#[derive(Debug, Default)]
struct Present(bool);

impl<'de> serde::Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

/// A string member, borrowed from the JSON when it has no escapes; `null` is refused.
fn string_member<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    d.deserialize_str(Visitor).map(Some)
}

/// An `alg` allow-list: not empty, and no symmetric algorithm (RFC 8725 §3.1: with a public key
/// as the HMAC secret, anyone could sign).
pub(crate) fn asymmetric_allow_list(algs: &[Algorithm]) -> Result<Vec<Algorithm>, PolicyError> {
    if algs.is_empty() {
        return Err(PolicyError::NoAlgorithm);
    }
    if let Some(a) = algs.iter().find(|a| is_symmetric(**a)) {
        return Err(PolicyError::SymmetricAlgorithm(*a));
    }
    Ok(algs.to_vec())
}

fn is_symmetric(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Checks `typ` (BC-RP-13): RFC 7515 §4.1.9 compares media types case-insensitively and allows
/// the `application/` prefix to be omitted.
fn check_typ(header: &JoseHeader<'_>, policy: TypPolicy) -> Result<(), LogoutTokenError> {
    let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
    let typ = typ.as_deref().map(|t| t.strip_prefix("application/").unwrap_or(t));
    match (typ, policy) {
        (Some("logout+jwt"), _) => Ok(()),
        (None | Some("jwt"), TypPolicy::Lenient) => Ok(()),
        (None | Some("jwt"), TypPolicy::Strict) => Err(LogoutTokenError::UntypedToken),
        (Some(other), _) => Err(LogoutTokenError::WrongType(other.chars().take(40).collect())),
    }
}

fn key_usable(k: &Jwk, alg: Algorithm) -> bool {
    if matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return false;
    }
    // A key that names its algorithm is for that algorithm only (RFC 8725 §3.1).
    match k.common.key_algorithm {
        Some(ka) => signing_algorithm(ka) == Some(alg),
        None => true,
    }
}

/// The signature algorithm a JWK's `alg` names (none for encryption or unknown algorithms).
fn signing_algorithm(ka: KeyAlgorithm) -> Option<Algorithm> {
    Some(match ka {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Finds the key (its position in the set): by `kid`; without a `kid`, the single key usable
/// for `alg` (CORE-08).
fn select_key(keys: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<usize, LogoutTokenError> {
    match kid {
        Some(kid) => {
            let i = keys
                .keys
                .iter()
                .position(|k| k.common.key_id.as_deref() == Some(kid))
                .ok_or_else(|| LogoutTokenError::UnknownKey(Some(kid.to_owned())))?;
            if key_usable(&keys.keys[i], alg) { Ok(i) } else { Err(LogoutTokenError::KeyMismatch) }
        }
        None => {
            let usable: Vec<usize> = (0..keys.keys.len()).filter(|&i| key_usable(&keys.keys[i], alg)).collect();
            match usable.as_slice() {
                [one] => Ok(*one),
                _ => Err(LogoutTokenError::UnknownKey(None)),
            }
        }
    }
}

/// The asymmetric algorithms, in slot order for [`VerificationKeys`].
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn alg_slot(alg: Algorithm) -> usize {
    ASYMMETRIC.iter().position(|a| *a == alg).unwrap_or(0)
}

/// DER `RSAPublicKey` (RFC 8017 A.1.1) from a JWK's `n` and `e`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, n: usize) {
        if n < 0x80 {
            out.push(u8::try_from(n).unwrap_or(0));
        } else {
            let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
            out.extend(bytes);
        }
    }
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let v = &v[v.iter().position(|b| *b != 0).unwrap_or(v.len().saturating_sub(1))..];
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    len(&mut out, body.len());
    out.extend(body);
    out
}

/// Parses `jwk` for `alg`, or `None` when the key is not a valid key of that algorithm's family
/// (wrong key type or curve, RSA shorter than 2048 bits, malformed values): key confusion ends here.
fn parse_key(jwk: &Jwk, alg: Algorithm) -> Option<aws_lc_rs::signature::ParsedPublicKey> {
    use aws_lc_rs::signature as sig;
    let (algorithm, bytes): (&'static dyn sig::VerificationAlgorithm, Vec<u8>) = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(p), _) => {
            let (n, e) = (decode_b64(&p.n)?, decode_b64(&p.e)?);
            let algorithm: &'static dyn sig::VerificationAlgorithm = match alg {
                Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return None,
            };
            (algorithm, rsa_public_key_der(&n, &e))
        }
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256 | Algorithm::ES384) => {
            let (algorithm, size): (&'static dyn sig::VerificationAlgorithm, usize) = match (&p.curve, alg) {
                (EllipticCurve::P256, Algorithm::ES256) => (&sig::ECDSA_P256_SHA256_FIXED, 32),
                (EllipticCurve::P384, Algorithm::ES384) => (&sig::ECDSA_P384_SHA384_FIXED, 48),
                _ => return None,
            };
            let (x, y) = (decode_b64(&p.x)?, decode_b64(&p.y)?);
            if x.len() != size || y.len() != size {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend(x);
            point.extend(y);
            (algorithm, point)
        }
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) if p.curve == EllipticCurve::Ed25519 => {
            (&sig::ED25519, decode_b64(&p.x)?)
        }
        _ => return None,
    };
    sig::ParsedPublicKey::new(algorithm, bytes).ok()
}

/// BC-RP-02: the signature over `header.payload` (the token up to its last dot).
fn check_signature(
    raw: &str,
    signature_b64: &str,
    check: impl FnOnce(&[u8], &[u8]) -> bool,
) -> Result<bool, LogoutTokenError> {
    let signature = decode_b64(signature_b64).ok_or(LogoutTokenError::Malformed)?;
    let input = &raw.as_bytes()[..raw.len() - signature_b64.len() - 1];
    if check(input, &signature) { Ok(true) } else { Err(LogoutTokenError::BadSignature) }
}

pub(crate) type ParsedSlots = [OnceLock<Option<aws_lc_rs::signature::ParsedPublicKey>>; ASYMMETRIC.len()];

/// An issuer's key set with each key parsed once per algorithm on first use, for
/// [`verify_prepared`]. [`crate::keys::KeyCache`] hands these out.
///
/// ```
/// let keys = adieu_rp::verify::VerificationKeys::new(jsonwebtoken::jwk::JwkSet { keys: vec![] });
/// assert!(keys.keys.is_empty()); // derefs to the JwkSet
/// ```
pub struct VerificationKeys {
    set: JwkSet,
    parsed: Vec<ParsedSlots>,
}

impl std::fmt::Debug for VerificationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKeys").field("set", &self.set).finish_non_exhaustive()
    }
}

impl VerificationKeys {
    /// The keys parsed so far, one slot per algorithm (for [`verify_jws`]).
    pub(crate) fn parsed(&self) -> &Vec<ParsedSlots> {
        &self.parsed
    }

    /// Wraps `set`; keys are parsed lazily, when a token first needs them.
    ///
    /// ```
    /// let keys = adieu_rp::verify::VerificationKeys::new(jsonwebtoken::jwk::JwkSet { keys: vec![] });
    /// # let _ = keys;
    /// ```
    pub fn new(set: JwkSet) -> Self {
        let parsed = set.keys.iter().map(|_| std::array::from_fn(|_| OnceLock::new())).collect();
        VerificationKeys { set, parsed }
    }

    /// The key set.
    ///
    /// ```
    /// let keys = adieu_rp::verify::VerificationKeys::new(jsonwebtoken::jwk::JwkSet { keys: vec![] });
    /// assert!(keys.set().keys.is_empty());
    /// ```
    pub fn set(&self) -> &JwkSet {
        &self.set
    }
}

impl std::ops::Deref for VerificationKeys {
    type Target = JwkSet;
    fn deref(&self) -> &JwkSet {
        &self.set
    }
}

impl From<JwkSet> for VerificationKeys {
    fn from(set: JwkSet) -> Self {
        VerificationKeys::new(set)
    }
}

pub(crate) fn number(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64)),
        _ => None,
    }
}

pub(crate) fn non_empty_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
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

/// The claims a logout token is checked on, each kept as its raw JSON so that a claim of the
/// wrong type gets the error of that claim's rule (not a generic parse error). Other claims are
/// skipped without being built (BC-LT-02: ignored). A claim named twice is malformed.
#[derive(serde::Deserialize)]
struct LogoutClaims<'a> {
    #[serde(borrow, default, deserialize_with = "raw_member")]
    iss: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    aud: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    iat: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    exp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    jti: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    sub: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    sid: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    events: Option<&'a RawValue>,
    #[serde(default)]
    nonce: Present,
}

/// A member that is there, whatever its value (`null` is not taken for absent).
fn raw_member<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// A claim's string value, borrowed when it has no escapes; `None` for any other JSON type.
fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    string_member(&mut serde_json::Deserializer::from_str(raw.get())).ok().flatten()
}

/// A claim's value as a NumericDate (a fraction is rounded down); `None` for a non-number.
fn raw_number(raw: &RawValue) -> Option<i64> {
    let n: serde_json::Number = serde_json::from_str(raw.get()).ok()?;
    number(Some(&Value::Number(n)))
}

/// A non-empty string claim, owned (`jti`, `sub`, `sid`); `None` for anything else.
fn raw_non_empty(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(raw_str).filter(|s| !s.is_empty()).map(Cow::into_owned)
}

/// A claim that is absent (`None`) or a non-empty string; anything else present is refused.
fn present_string(raw: Option<&RawValue>) -> Result<Option<String>, LogoutTokenError> {
    match raw {
        None => Ok(None),
        Some(v) => raw_non_empty(Some(v)).map(Some).ok_or(LogoutTokenError::InvalidSubjectOrSession),
    }
}

/// BC-RP-04..07 on signed claims.
fn check_claims(
    payload: Vec<u8>,
    policy: &VerificationPolicy,
    now: i64,
) -> Result<VerifiedLogoutToken, LogoutTokenError> {
    let claims: LogoutClaims<'_> = parse_object(&payload)?;
    let leeway = i64::try_from(policy.leeway.as_secs()).unwrap_or(i64::MAX);
    // BC-RP-04: iss exact (CORE-01).
    if claims.iss.and_then(raw_str).as_deref() != Some(policy.issuer.as_str()) {
        return Err(LogoutTokenError::WrongIssuer);
    }
    // BC-RP-04: aud contains the client; others must be trusted (CORE-02).
    let audiences: Vec<String> = match claims.aud {
        Some(a) if a.get().starts_with('"') => vec![raw_str(a).ok_or(LogoutTokenError::WrongAudience)?.into_owned()],
        Some(a) if a.get().starts_with('[') => {
            serde_json::from_str::<Vec<String>>(a.get()).map_err(|_| LogoutTokenError::WrongAudience)?
        }
        _ => return Err(LogoutTokenError::WrongAudience),
    };
    if !audiences.contains(&policy.client_id) {
        return Err(LogoutTokenError::WrongAudience);
    }
    if audiences.iter().any(|a| *a != policy.client_id && !policy.trusted_audiences.contains(a)) {
        return Err(LogoutTokenError::UntrustedAudience);
    }
    // BC-RP-04: iat, exp.
    let iat = claims.iat.and_then(raw_number).ok_or(LogoutTokenError::MissingIssuedAt)?;
    if iat > now.saturating_add(leeway) {
        return Err(LogoutTokenError::IssuedInFuture);
    }
    let exp = match claims.exp {
        None => None,
        Some(v) => Some(raw_number(v).ok_or(LogoutTokenError::Malformed)?),
    };
    match (exp, policy.exp) {
        (Some(exp), _) if now > exp.saturating_add(leeway) => return Err(LogoutTokenError::Expired),
        (Some(_), _) => {}
        (None, ExpPolicy::Required) => return Err(LogoutTokenError::MissingExpiry),
        (None, ExpPolicy::AllowMissing { max_age }) => {
            let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            if now > iat.saturating_add(max_age).saturating_add(leeway) {
                return Err(LogoutTokenError::TooOld);
            }
        }
    }
    let jti = raw_non_empty(claims.jti).ok_or(LogoutTokenError::MissingJti)?;
    // BC-RP-05: each of them absent, or a non-empty string.
    let subject = match (present_string(claims.sub)?, present_string(claims.sid)?) {
        (Some(sub), Some(sid)) => LogoutSubject::Both { sub, sid },
        (Some(sub), None) => LogoutSubject::Sub(sub),
        (None, Some(sid)) => LogoutSubject::Sid(sid),
        (None, None) => return Err(LogoutTokenError::MissingSubjectAndSession),
    };
    // BC-RP-06: events is an object whose back-channel member is an object. That member named
    // twice is malformed, like any claim named twice.
    let event = match claims.events {
        Some(e) if e.get().starts_with('{') => {
            let members = serde_json::from_str::<EventMembers<'_>>(e.get()).map_err(|_| LogoutTokenError::Malformed)?;
            let mut named = members.0.into_iter().filter(|(k, _)| k == BACKCHANNEL_LOGOUT_EVENT).map(|(_, v)| v);
            let first = named.next();
            if named.next().is_some() {
                return Err(LogoutTokenError::Malformed);
            }
            first
        }
        _ => None,
    };
    match event {
        None => return Err(LogoutTokenError::MissingEvent),
        Some(v) if v.get().starts_with('{') => {}
        Some(_) => return Err(LogoutTokenError::EventNotObject),
    }
    // BC-RP-07.
    if claims.nonce.0 {
        return Err(LogoutTokenError::NoncePresent);
    }
    Ok(VerifiedLogoutToken {
        issuer: policy.issuer.clone(),
        audiences,
        issued_at: iat,
        expires_at: exp,
        jti,
        subject,
        payload: payload.into_boxed_slice(),
        claims: OnceLock::new(),
    })
}

/// The members of the `events` object, in order, values left as raw JSON.
struct EventMembers<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for EventMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = EventMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key_seed(StringSeed)? {
                    members.push((key, map.next_value::<&RawValue>()?));
                }
                Ok(EventMembers(members))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Deserializes a key as a borrowed-when-possible string.
struct StringSeed;

impl<'de> serde::de::DeserializeSeed<'de> for StringSeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        string_member(d).map(|s| s.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{AUD, ISS, NOW, TestKey, claims, set};
    use serde_json::json;

    fn install() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    }

    fn policy() -> VerificationPolicy {
        VerificationPolicy::new(ISS, AUD)
    }

    fn rs() -> (TestKey, JwkSet) {
        install();
        let k = TestKey::rsa("k1");
        let s = set(&[&k]);
        (k, s)
    }

    fn with(mut c: Value, k: &str, v: Value) -> Value {
        c[k] = v;
        c
    }

    fn without(mut c: Value, k: &str) -> Value {
        c.as_object_mut().unwrap().remove(k);
        c
    }

    // --- The OpenID conformance suite's back-channel RP plan (SPEC.md §6.2) -------------------

    /// Conformance "valid logout token" (no typ header): accepted.
    #[test]
    fn conformance_valid_token_without_typ_is_accepted() {
        let (k, keys) = rs();
        let t = verify(&k.sign("RS256", json!({}), &claims()), &keys, &policy(), NOW).unwrap();
        assert_eq!(t.subject(), &LogoutSubject::Both { sub: "user-1".into(), sid: "sid-1".into() });
        assert_eq!((t.issuer(), t.jti(), t.issued_at(), t.expires_at()), (ISS, "jti-1", NOW, Some(NOW + 120)));
    }

    /// Conformance "alg none" (BC-RP-03).
    #[test]
    fn bc_rp_03_alg_none_is_rejected() {
        let (_, keys) = rs();
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims().to_string());
        use base64::Engine;
        assert_eq!(
            verify(&format!("{h}.{p}."), &keys, &policy(), NOW),
            Err(LogoutTokenError::AlgorithmNotAllowed("none".into()))
        );
    }

    /// Conformance "no event" (BC-RP-06).
    #[test]
    fn bc_rp_06_missing_event_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &without(claims(), "events"));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingEvent));
    }

    /// Conformance "with nonce" (BC-RP-07).
    #[test]
    fn bc_rp_07_nonce_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &with(claims(), "nonce", json!("n")));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::NoncePresent));
    }

    /// Conformance "wrong alg": a valid signature with a published key, but not the registered alg.
    #[test]
    fn bc_rp_03_wrong_alg_with_a_published_key_is_rejected() {
        install();
        let (rsa, ec) = (TestKey::rsa("rsa"), TestKey::ec("ec"));
        let keys = set(&[&rsa, &ec]);
        let t = ec.sign("ES256", json!({}), &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::AlgorithmNotAllowed("ES256".into())));
        let es_policy = policy().with_algorithms(&[Algorithm::ES256]).unwrap();
        verify(&t, &keys, &es_policy, NOW).unwrap();
    }

    /// Conformance "wrong aud" (BC-RP-04).
    #[test]
    fn bc_rp_04_wrong_audience_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &with(claims(), "aud", json!("someone-else")));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::WrongAudience));
    }

    /// Conformance "wrong event": a different event URI (BC-RP-06).
    #[test]
    fn bc_rp_06_wrong_event_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign(
            "RS256",
            json!({}),
            &with(
                claims(),
                "events",
                json!({"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}}),
            ),
        );
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingEvent));
    }

    /// Conformance "wrong iss" (BC-RP-04).
    #[test]
    fn bc_rp_04_wrong_issuer_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &with(claims(), "iss", json!("https://op.example.com/")));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::WrongIssuer));
    }

    // --- Beyond the conformance suite --------------------------------------------------------

    #[test]
    fn bc_rp_02_bad_signature_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &claims());
        let forged = k.sign("RS256", json!({}), &with(claims(), "sub", json!("admin")));
        let spliced = format!("{}.{}", &forged[..forged.rfind('.').unwrap()], &t[t.rfind('.').unwrap() + 1..]);
        assert_eq!(verify(&spliced, &keys, &policy(), NOW), Err(LogoutTokenError::BadSignature));
    }

    #[test]
    fn bc_rp_02_a_key_not_published_by_the_issuer_is_unknown() {
        let (_, keys) = rs();
        let stranger = TestKey::rsa("k1-stranger");
        let t = stranger.sign("RS256", json!({}), &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::UnknownKey(Some("k1-stranger".into()))));
        // Same kid as a published key, different key: the signature fails.
        let imposter = TestKey::rsa("k1");
        assert_eq!(
            verify(&imposter.sign("RS256", json!({}), &claims()), &keys, &policy(), NOW),
            Err(LogoutTokenError::BadSignature)
        );
    }

    /// RFC 8725 §3.1 key confusion: an HS256 token MAC'ed with the issuer's public key.
    #[test]
    fn bc_rp_03_hs256_key_confusion_is_impossible() {
        let (k, keys) = rs();
        let secret = serde_json::to_vec(&k.jwk(None)).unwrap();
        let header = jsonwebtoken::Header { kid: Some("k1".into()), ..jsonwebtoken::Header::new(Algorithm::HS256) };
        let t = jsonwebtoken::encode(&header, &claims(), &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::AlgorithmNotAllowed("HS256".into())));
        assert_eq!(
            policy().with_algorithms(&[Algorithm::HS256]),
            Err(PolicyError::SymmetricAlgorithm(Algorithm::HS256))
        );
    }

    /// RFC 8725 §3.1: a JWK's `alg` names exactly one signature algorithm, the one of the same
    /// name; encryption algorithms and unknown names name none.
    #[test]
    fn a_jwk_alg_names_the_signature_algorithm_of_the_same_name_only() {
        for alg in ASYMMETRIC.iter().chain(&[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]) {
            let named: KeyAlgorithm = format!("{alg:?}").parse().unwrap();
            assert_eq!(signing_algorithm(named), Some(*alg), "{alg:?}");
        }
        for other in ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "XYZ"] {
            let named: KeyAlgorithm = serde_json::from_value(json!(other)).unwrap();
            assert_eq!(signing_algorithm(named), None, "{other}");
        }
        install();
        let k = TestKey::rsa("k1");
        let keys = jsonwebtoken::jwk::JwkSet { keys: vec![k.jwk(Some("RS256"))] };
        assert!(verify(&k.sign("RS256", json!({}), &claims()), &keys, &policy(), NOW).is_ok(), "same name: used");
    }

    /// RFC 8725 §3.1: a key whose JWK names another algorithm is not used.
    #[test]
    fn a_key_published_for_another_algorithm_is_not_used() {
        install();
        let k = TestKey::rsa("k1");
        let keys = jsonwebtoken::jwk::JwkSet { keys: vec![k.jwk(Some("PS256"))] };
        let t = k.sign("RS256", json!({}), &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::KeyMismatch));
    }

    #[test]
    fn every_asymmetric_algorithm_verifies() {
        install();
        let (rsa, ec, ed) = (TestKey::rsa("rsa"), TestKey::ec("ec"), TestKey::ed("ed"));
        let keys = set(&[&rsa, &ec, &ed]);
        for (k, alg, a) in [
            (&rsa, "RS256", Algorithm::RS256),
            (&rsa, "PS256", Algorithm::PS256),
            (&ec, "ES256", Algorithm::ES256),
            (&ed, "EdDSA", Algorithm::EdDSA),
        ] {
            let p = policy().with_algorithms(&[a]).unwrap();
            verify(&k.sign(alg, json!({}), &claims()), &keys, &p, NOW).unwrap_or_else(|e| panic!("{alg}: {e}"));
        }
    }

    #[test]
    fn bc_rp_04_audience_array_containing_the_client_is_accepted_and_untrusted_extras_are_not() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &with(claims(), "aud", json!([AUD])));
        verify(&t, &keys, &policy(), NOW).unwrap();
        let t = k.sign("RS256", json!({}), &with(claims(), "aud", json!([AUD, "other-api"])));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::UntrustedAudience));
        verify(&t, &keys, &policy().trust_audience("other-api"), NOW).unwrap();
        let t = k.sign("RS256", json!({}), &with(claims(), "aud", json!(42)));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::WrongAudience));
    }

    #[test]
    fn bc_rp_04_iat_in_the_future_beyond_the_leeway_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &with(claims(), "iat", json!(NOW + 61)));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::IssuedInFuture));
        let t = k.sign("RS256", json!({}), &with(claims(), "iat", json!(NOW + 60)));
        verify(&t, &keys, &policy(), NOW).unwrap();
        let t = k.sign("RS256", json!({}), &without(claims(), "iat"));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingIssuedAt));
    }

    #[test]
    fn bc_rp_04_expired_token_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &claims());
        verify(&t, &keys, &policy(), NOW + 180).unwrap();
        assert_eq!(verify(&t, &keys, &policy(), NOW + 181), Err(LogoutTokenError::Expired));
    }

    /// Errata 1: `exp` is required, unless the documented compatibility switch is on.
    #[test]
    fn errata1_missing_exp_is_rejected_by_default_and_bounded_by_max_age_in_compatibility_mode() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &without(claims(), "exp"));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingExpiry));
        let compat = policy().allow_missing_exp(Duration::from_secs(120));
        verify(&t, &keys, &compat, NOW + 100).unwrap();
        assert_eq!(verify(&t, &keys, &compat, NOW + 181), Err(LogoutTokenError::TooOld));
    }

    #[test]
    fn bc_rp_05_sub_or_sid_is_required() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &without(without(claims(), "sub"), "sid"));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingSubjectAndSession));
        let t = k.sign("RS256", json!({}), &with(with(claims(), "sub", json!("")), "sid", json!("")));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::InvalidSubjectOrSession));
        let t = k.sign("RS256", json!({}), &without(claims(), "sub"));
        assert_eq!(verify(&t, &keys, &policy(), NOW).unwrap().subject(), &LogoutSubject::Sid("sid-1".into()));
        let t = k.sign("RS256", json!({}), &without(claims(), "sid"));
        assert_eq!(verify(&t, &keys, &policy(), NOW).unwrap().subject(), &LogoutSubject::Sub("user-1".into()));
    }

    /// A `sid` that is present but not a non-empty string must not be read as absent: the
    /// application would then end every session of the `sub` instead of the one named.
    #[test]
    fn bc_rp_05_sub_or_sid_present_but_not_a_non_empty_string_is_refused() {
        let (k, keys) = rs();
        for bad in [json!(1), json!(null), json!(""), json!(["sid-1"]), json!({"v": "sid-1"}), json!(true)] {
            for claim in ["sid", "sub"] {
                let t = k.sign("RS256", json!({}), &with(claims(), claim, bad.clone()));
                assert_eq!(
                    verify(&t, &keys, &policy(), NOW),
                    Err(LogoutTokenError::InvalidSubjectOrSession),
                    "{claim}: {bad}"
                );
            }
        }
    }

    #[test]
    fn bc_rp_06_event_value_must_be_an_object() {
        let (k, keys) = rs();
        let t = k.sign(
            "RS256",
            json!({}),
            &with(claims(), "events", json!({"http://schemas.openid.net/event/backchannel-logout": true})),
        );
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::EventNotObject));
    }

    #[test]
    fn jti_is_required() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &without(claims(), "jti"));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingJti));
    }

    /// BC-RP-13: logout types accepted case-insensitively; other types refused; strict mode.
    #[test]
    fn bc_rp_13_typ_is_checked() {
        let (k, keys) = rs();
        for typ in ["logout+jwt", "application/logout+jwt", "LOGOUT+JWT", "Application/Logout+JWT"] {
            let t = k.sign("RS256", json!({"typ": typ}), &claims());
            verify(&t, &keys, &policy(), NOW).unwrap_or_else(|e| panic!("{typ}: {e}"));
            verify(&t, &keys, &policy().strict_typ(), NOW).unwrap();
        }
        for typ in ["at+jwt", "secevent+jwt", "application/at+jwt", "id_token"] {
            let t = k.sign("RS256", json!({"typ": typ}), &claims());
            assert!(matches!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::WrongType(_))), "{typ}");
        }
        let jwt = k.sign("RS256", json!({"typ": "JWT"}), &claims());
        verify(&jwt, &keys, &policy(), NOW).unwrap();
        assert_eq!(verify(&jwt, &keys, &policy().strict_typ(), NOW), Err(LogoutTokenError::UntypedToken));
        let none = k.sign("RS256", json!({}), &claims());
        assert_eq!(verify(&none, &keys, &policy().strict_typ(), NOW), Err(LogoutTokenError::UntypedToken));
    }

    /// Signs `claims_text` (exact JSON) with the test key.
    fn sign_claims_text(k: &TestKey, claims_text: &str) -> String {
        use base64::Engine;
        let token = k.sign("RS256", json!({}), &json!({}));
        let header = token.split('.').next().unwrap();
        let input = format!("{header}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims_text));
        k.sign_input("RS256", &input)
    }

    /// A claim named twice is refused, not read by "last wins" (RFC 7519 §4 lets a parser
    /// refuse duplicate claim names); so is the back-channel event named twice.
    #[test]
    fn a_claim_named_twice_is_malformed() {
        let (k, keys) = rs();
        let valid = claims().to_string();
        let twice_iss = valid.replacen('{', r#"{"iss":"https://evil.example","#, 1);
        assert_eq!(verify(&sign_claims_text(&k, &twice_iss), &keys, &policy(), NOW), Err(LogoutTokenError::Malformed));
        let event = format!(r#""{BACKCHANNEL_LOGOUT_EVENT}":{{}}"#);
        let twice_event = valid.replacen(&event, &format!(r#"{event},"{BACKCHANNEL_LOGOUT_EVENT}":1"#), 1);
        assert_ne!(twice_event, valid);
        assert_eq!(
            verify(&sign_claims_text(&k, &twice_event), &keys, &policy(), NOW),
            Err(LogoutTokenError::Malformed)
        );
        assert!(verify(&sign_claims_text(&k, &valid), &keys, &policy(), NOW).is_ok(), "the helper signs valid tokens");
    }

    /// Claims of the wrong JSON type get the error of their own rule; `null` is not absent.
    #[test]
    fn claims_of_the_wrong_type_get_their_own_rules_error() {
        let (k, keys) = rs();
        let cases = [
            ("iss", json!(7), LogoutTokenError::WrongIssuer),
            ("iss", json!(null), LogoutTokenError::WrongIssuer),
            ("aud", json!([AUD, 7]), LogoutTokenError::WrongAudience),
            ("aud", json!({"a": AUD}), LogoutTokenError::WrongAudience),
            ("iat", json!("1800000000"), LogoutTokenError::MissingIssuedAt),
            ("exp", json!(null), LogoutTokenError::Malformed),
            ("exp", json!("soon"), LogoutTokenError::Malformed),
            ("jti", json!(""), LogoutTokenError::MissingJti),
            ("jti", json!(12), LogoutTokenError::MissingJti),
            ("events", json!([BACKCHANNEL_LOGOUT_EVENT]), LogoutTokenError::MissingEvent),
            ("events", json!({BACKCHANNEL_LOGOUT_EVENT: "yes"}), LogoutTokenError::EventNotObject),
            ("nonce", json!(null), LogoutTokenError::NoncePresent),
        ];
        for (claim, value, error) in cases {
            let t = k.sign("RS256", json!({}), &with(claims(), claim, value.clone()));
            assert_eq!(verify(&t, &keys, &policy(), NOW), Err(error), "{claim}: {value}");
        }
        let t = k.sign("RS256", json!({}), &with(with(claims(), "sub", json!(1)), "sid", json!(null)));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::InvalidSubjectOrSession));
        let t = k.sign("RS256", json!({}), &with(claims(), "iat", json!(1_800_000_000.9)));
        assert_eq!(verify(&t, &keys, &policy(), NOW).unwrap().issued_at(), NOW, "a fractional NumericDate rounds down");
    }

    /// JSON escapes in claim values and in the event's name read as their values (RFC 8259 §7),
    /// and every claim, interpreted or not, is still there to read (BC-LT-02).
    #[test]
    fn escaped_claims_read_as_their_values_and_every_claim_is_kept() {
        let (k, keys) = rs();
        let escaped_event = BACKCHANNEL_LOGOUT_EVENT.replace('/', "\\/");
        let text = format!(
            r#"{{"iss":"https:\/\/op.example.com","aud":"{AUD}","iat":{NOW},"exp":{},"jti":"j\u0031","sid":"sid-1","events":{{"{escaped_event}":{{}}}},"custom":{{"deep":[1,2]}}}}"#,
            NOW + 60
        );
        let t = verify(&sign_claims_text(&k, &text), &keys, &policy(), NOW).unwrap();
        assert_eq!((t.issuer(), t.jti(), t.subject().sid()), (ISS, "j1", Some("sid-1")));
        assert_eq!(t.claims()["custom"], json!({"deep": [1, 2]}));
        assert_eq!(t.claims()["jti"], json!("j1"));
        assert_eq!(t.clone(), t, "equal to its clone whether or not its claims were read");
    }

    /// Found by the `logout_claims` fuzz target: a claim the crate does not read must still be
    /// JSON that any reader accepts (no invalid UTF-8, no lone surrogate, no number out of range),
    /// or `claims()` would silently lose it; such tokens are malformed, in the header too.
    #[test]
    fn unread_members_that_are_not_valid_json_make_the_token_malformed() {
        let (k, keys) = rs();
        let valid = claims().to_string();
        let mut invalid_utf8 = valid.replacen('{', "{\"x\":[0,{\"\u{1}\":null}],", 1).into_bytes();
        let at = invalid_utf8.iter().position(|&b| b == 1).unwrap();
        invalid_utf8[at] = 0x81;
        for payload in [
            invalid_utf8,
            valid.replacen('{', r#"{"x":"\ud800","#, 1).into_bytes(),
            valid.replacen('{', r#"{"x":{"\udc00":1},"#, 1).into_bytes(),
            valid.replacen('{', r#"{"x":[1e400],"#, 1).into_bytes(),
        ] {
            use base64::Engine;
            let token = k.sign("RS256", json!({}), &json!({}));
            let header = token.split('.').next().unwrap();
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let t = k.sign_input("RS256", &format!("{header}.{}", b64.encode(&payload)));
            assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::Malformed), "{payload:?}");
        }
        let t = k.sign_with_header_text("RS256", r#"{"alg":"RS256","kid":"k1","x5t":"\ud800"}"#, &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::Malformed), "header");
    }

    /// RFC 7515 §4.1.11: a `crit` member is refused whatever its value, `null` included.
    #[test]
    fn a_crit_member_is_refused_even_when_null() {
        let (k, keys) = rs();
        let t = k.sign_with_header_text("RS256", r#"{"alg":"RS256","kid":"k1","crit":null}"#, &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::UnsupportedCritical));
    }

    /// RFC 7515 §4: a header naming a member twice is refused rather than read by "last wins".
    #[test]
    fn a_header_with_a_duplicate_member_is_malformed() {
        let (k, keys) = rs();
        let t = k.sign_with_header_text("RS256", r#"{"alg":"none","alg":"RS256","kid":"k1"}"#, &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::Malformed));
    }

    /// RFC 7515 §4: the header is a JSON object; `alg`, `kid` and `typ` are strings, and a
    /// `null` one is not taken for an absent one.
    #[test]
    fn a_header_that_is_not_an_object_or_has_non_string_members_is_malformed() {
        let (k, keys) = rs();
        for header in [
            r#"["RS256","k1"]"#,
            r#""RS256""#,
            r#"{"alg":"RS256","kid":null}"#,
            r#"{"alg":"RS256","kid":7}"#,
            r#"{"alg":"RS256","kid":"k1","typ":null}"#,
            r#"{"alg":"RS256","kid":"k1","typ":["logout+jwt"]}"#,
            r#"{"alg":null,"kid":"k1"}"#,
            r#"{"kid":"k1"}"#,
            r#"{"alg":"RS256","kid":"k1"} trailing"#,
        ] {
            let t = k.sign_with_header_text("RS256", header, &claims());
            assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::Malformed), "{header}");
        }
    }

    /// BC-RP-13: a `typ` written with JSON escapes is the same `typ` (RFC 8259 §7).
    #[test]
    fn bc_rp_13_an_escaped_typ_is_read_as_its_value() {
        let (k, keys) = rs();
        let t = k.sign_with_header_text(
            "RS256",
            r#"{"alg":"RS256","kid":"k\u0031","typ":"application\/logout+jwt"}"#,
            &claims(),
        );
        assert!(verify(&t, &keys, &policy().strict_typ(), NOW).is_ok());
    }

    #[test]
    fn unknown_crit_header_is_rejected() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({"crit": ["exp-ext"], "exp-ext": 1}), &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::UnsupportedCritical));
    }

    /// BC-LT-02: claims that are not understood are ignored.
    #[test]
    fn unknown_claims_are_ignored() {
        let (k, keys) = rs();
        let t = k.sign("RS256", json!({}), &with(claims(), "ignored_claim", json!({"x": [1, 2]})));
        let v = verify(&t, &keys, &policy(), NOW).unwrap();
        assert!(v.claims().contains_key("ignored_claim"));
    }

    /// CORE-07 / RFC 8725 §3.10: keys named in the token are never used.
    #[test]
    fn embedded_and_remote_key_headers_are_never_followed() {
        let (k, keys) = rs();
        let attacker = TestKey::rsa("attacker");
        let evil =
            json!({"jwk": attacker.jwk(None), "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"});
        let t = attacker.sign("RS256", with(evil.clone(), "kid", json!("k1")), &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::BadSignature));
        // The same headers on a token signed by the issuer do not matter.
        let t = k.sign("RS256", evil, &claims());
        verify(&t, &keys, &policy(), NOW).unwrap();
    }

    /// BC-RP-01: encrypted tokens are refused (no encryption was negotiated).
    #[test]
    fn bc_rp_01_encrypted_token_is_rejected() {
        let (_, keys) = rs();
        assert_eq!(verify("a.b.c.d.e", &keys, &policy(), NOW), Err(LogoutTokenError::Encrypted));
    }

    /// CORE-08: without a `kid`, only a key set with a single usable key can be used.
    #[test]
    fn a_token_without_kid_uses_the_single_matching_key_only() {
        install();
        let (k, other) = (TestKey::rsa("k1"), TestKey::rsa("k2"));
        let t = k.sign("RS256", json!({"kid": false}), &claims());
        verify(&t, &set(&[&k]), &policy(), NOW).unwrap();
        assert_eq!(verify(&t, &set(&[&k, &other]), &policy(), NOW), Err(LogoutTokenError::UnknownKey(None)));
        let t = k.sign("RS256", json!({"kid": null}), &claims());
        assert_eq!(verify(&t, &set(&[&k]), &policy(), NOW), Err(LogoutTokenError::Malformed));
    }

    #[test]
    fn malformed_inputs_are_rejected_without_panicking() {
        let (k, keys) = rs();
        let good = k.sign("RS256", json!({}), &claims());
        for bad in [
            String::new(),
            "a".into(),
            "a.b".into(),
            "a.b.c".into(),
            "....".into(),
            "%%%.%%%.%%%".into(),
            format!("{}.e30.", "e30"),
            "W10.W10.W10".into(),
            "x".repeat(MAX_TOKEN_LEN + 1),
            good.replace('.', ".."),
        ] {
            assert!(verify(&bad, &keys, &policy(), NOW).is_err(), "{bad:.40}");
        }
    }

    /// BC-RP-03: a key is used only for its own family and curve, also when the `kid` matches.
    #[test]
    fn bc_rp_03_a_key_of_another_type_or_curve_is_a_key_mismatch() {
        install();
        let (rsa, ec) = (TestKey::rsa("k1"), TestKey::ec("k1"));
        let p = policy().with_algorithms(&[Algorithm::ES256, Algorithm::RS256]).unwrap();
        let t = ec.sign("ES256", json!({}), &claims());
        assert_eq!(verify(&t, &set(&[&rsa]), &p, NOW), Err(LogoutTokenError::KeyMismatch), "RSA key for ES256");
        let t = rsa.sign("RS256", json!({}), &claims());
        assert_eq!(verify(&t, &set(&[&ec]), &p, NOW), Err(LogoutTokenError::KeyMismatch), "EC key for RS256");
        let mut p384 = ec.jwk(None);
        if let AlgorithmParameters::EllipticCurve(params) = &mut p384.algorithm {
            params.curve = EllipticCurve::P384;
        }
        let t = ec.sign("ES256", json!({}), &claims());
        let keys = JwkSet { keys: vec![p384] };
        assert_eq!(verify(&t, &keys, &p, NOW), Err(LogoutTokenError::KeyMismatch), "P-384 key for ES256");
    }

    /// Keys parsed once ([`VerificationKeys`]) give exactly the answers of a fresh parse, every time.
    #[test]
    fn prepared_keys_verify_exactly_like_a_fresh_parse() {
        install();
        let (rsa, ec, ed) = (TestKey::rsa("rsa"), TestKey::ec("ec"), TestKey::ed("ed"));
        let other = TestKey::rsa("rsa");
        let keys = set(&[&rsa, &ec, &ed]);
        let prepared = VerificationKeys::new(keys.clone());
        let p = policy()
            .with_algorithms(&[Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA])
            .unwrap();
        let tokens = [
            rsa.sign("RS256", json!({}), &claims()),
            rsa.sign("PS256", json!({}), &claims()),
            ec.sign("ES256", json!({}), &claims()),
            ed.sign("EdDSA", json!({}), &claims()),
            other.sign("RS256", json!({}), &claims()),
            ec.sign("ES256", json!({"kid": "rsa"}), &claims()),
            rsa.sign("RS256", json!({}), &with(claims(), "aud", json!("someone-else"))),
        ];
        for round in 0..2 {
            for t in &tokens {
                assert_eq!(verify_prepared(t, &prepared, &p, NOW), verify(t, &keys, &p, NOW), "round {round}");
            }
        }
        assert!(verify_prepared(&tokens[0], &prepared, &p, NOW).is_ok());
        assert_eq!(verify_prepared(&tokens[4], &prepared, &p, NOW), Err(LogoutTokenError::BadSignature));
    }
}
