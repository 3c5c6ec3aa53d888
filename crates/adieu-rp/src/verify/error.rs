//! Why a logout token was refused.

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
