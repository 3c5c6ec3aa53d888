//! The verification policy: what a logout token for one client at one issuer must satisfy.

use super::*;

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
    pub(super) issuer: String,
    pub(super) client_id: String,
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) trusted_audiences: Vec<String>,
    pub(super) leeway: Duration,
    pub(super) typ: TypPolicy,
    pub(super) exp: ExpPolicy,
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

pub(super) fn is_symmetric(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}
