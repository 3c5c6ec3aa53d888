//! OpenID Provider discovery (`/.well-known/openid-configuration`) and fetching the JWK Set over
//! HTTP. The issuer must use `https`, except a loopback issuer (development); the document's
//! `issuer` must equal the configured one exactly (CORE-01) and its `jwks_uri` must be `https`
//! (or loopback `http` for a loopback issuer). Redirects are not followed.

use crate::keys::{JwksSource, KeyFetchError};
use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use std::time::Duration;
use url::{Host, Url};

/// What discovery found that matters for back-channel logout.
///
/// ```no_run
/// # async fn run() -> Result<(), adieu_rp::discovery::DiscoveryError> {
/// let provider = adieu_rp::discovery::Provider::discover("https://op.example.com").await?;
/// println!("keys at {}", provider.jwks_uri);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The issuer, exactly as configured and as published.
    pub issuer: String,
    /// Where its keys are.
    pub jwks_uri: String,
    /// Algorithms it signs ID (and logout) tokens with.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Whether it says it supports back-channel logout (BC-OP-01).
    pub backchannel_logout_supported: bool,
    /// Whether it sends `sid` (BC-OP-02).
    pub backchannel_logout_session_supported: bool,
    /// Where users sign in.
    pub authorization_endpoint: Option<String>,
    /// Where codes are exchanged.
    pub token_endpoint: Option<String>,
    /// Claims about the user.
    pub userinfo_endpoint: Option<String>,
    /// RP-Initiated Logout (RPI-01).
    pub end_session_endpoint: Option<String>,
}

/// Discovery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer or `jwks_uri` is not `https` (and not a loopback development URL).
    #[error("{0} must use https (http is only allowed on a loopback host)")]
    NotHttps(String),
    /// The request failed or the document is not valid.
    #[error("discovery failed: {0}")]
    Fetch(String),
    /// The document names another issuer (CORE-01).
    #[error("the discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the document says.
        found: String,
    },
}

/// Whether `url` may be fetched: https, or http on a loopback host.
///
/// ```
/// use adieu_rp::discovery::is_allowed_url;
/// assert!(is_allowed_url("https://op.example.com"));
/// assert!(is_allowed_url("http://127.0.0.1:8080"));
/// assert!(!is_allowed_url("http://op.example.com"));
/// ```
pub fn is_allowed_url(url: &str) -> bool {
    let Ok(u) = Url::parse(url) else { return false };
    match u.scheme() {
        "https" => u.host().is_some(),
        "http" => match u.host() {
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    backchannel_logout_supported: bool,
    #[serde(default)]
    backchannel_logout_session_supported: bool,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

impl Provider {
    /// Fetches and checks `{issuer}/.well-known/openid-configuration`.
    ///
    /// ```no_run
    /// # async fn run() {
    /// let p = adieu_rp::discovery::Provider::discover("http://127.0.0.1:8080").await.unwrap();
    /// assert!(p.backchannel_logout_supported);
    /// # }
    /// ```
    pub async fn discover(issuer: &str) -> Result<Provider, DiscoveryError> {
        if !is_allowed_url(issuer) {
            return Err(DiscoveryError::NotHttps(issuer.to_owned()));
        }
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let res = client()
            .map_err(DiscoveryError::Fetch)?
            .get(&url)
            .send()
            .await
            .map_err(|e| DiscoveryError::Fetch(e.to_string()))?;
        if !res.status().is_success() {
            return Err(DiscoveryError::Fetch(format!("{url} answered {}", res.status())));
        }
        let body = res.bytes().await.map_err(|e| DiscoveryError::Fetch(e.to_string()))?;
        Provider::from_document(issuer, &body)
    }

    /// Checks a discovery document fetched for `issuer` by other means (for instance a client
    /// with its own outbound policy): it must name exactly this issuer (CORE-01) and an allowed
    /// `jwks_uri`.
    ///
    /// ```
    /// use adieu_rp::discovery::{DiscoveryError, Provider};
    /// let doc = br#"{"issuer":"https://op.example.com","jwks_uri":"https://op.example.com/jwks"}"#;
    /// assert_eq!(Provider::from_document("https://op.example.com", doc).unwrap().jwks_uri, "https://op.example.com/jwks");
    /// assert!(matches!(
    ///     Provider::from_document("https://other.example.com", doc),
    ///     Err(DiscoveryError::IssuerMismatch { .. })
    /// ));
    /// ```
    pub fn from_document(issuer: &str, body: &[u8]) -> Result<Provider, DiscoveryError> {
        let doc: Document = serde_json::from_slice(body)
            .map_err(|e| DiscoveryError::Fetch(format!("the discovery document is invalid: {e}")))?;
        if doc.issuer != issuer {
            return Err(DiscoveryError::IssuerMismatch { expected: issuer.to_owned(), found: doc.issuer });
        }
        if !is_allowed_url(&doc.jwks_uri) {
            return Err(DiscoveryError::NotHttps(doc.jwks_uri));
        }
        Ok(Provider {
            issuer: doc.issuer,
            jwks_uri: doc.jwks_uri,
            id_token_signing_alg_values_supported: doc.id_token_signing_alg_values_supported,
            backchannel_logout_supported: doc.backchannel_logout_supported,
            backchannel_logout_session_supported: doc.backchannel_logout_session_supported,
            authorization_endpoint: doc.authorization_endpoint,
            token_endpoint: doc.token_endpoint,
            userinfo_endpoint: doc.userinfo_endpoint,
            end_session_endpoint: doc.end_session_endpoint,
        })
    }
}

/// A JWK Set fetched from a `jwks_uri`.
///
/// ```
/// let source = adieu_rp::discovery::HttpJwks::new("https://op.example.com/jwks").unwrap();
/// # let _ = source;
/// ```
#[derive(Debug, Clone)]
pub struct HttpJwks {
    uri: String,
    http: reqwest::Client,
}

impl HttpJwks {
    /// A source for `jwks_uri` (https, or loopback http).
    ///
    /// ```
    /// assert!(adieu_rp::discovery::HttpJwks::new("http://op.example.com/jwks").is_err());
    /// ```
    pub fn new(jwks_uri: &str) -> Result<Self, DiscoveryError> {
        if !is_allowed_url(jwks_uri) {
            return Err(DiscoveryError::NotHttps(jwks_uri.to_owned()));
        }
        Ok(HttpJwks { uri: jwks_uri.to_owned(), http: client().map_err(DiscoveryError::Fetch)? })
    }
}

#[async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
        let res = self.http.get(&self.uri).send().await.map_err(|e| KeyFetchError::with_source(e.to_string(), e))?;
        if !res.status().is_success() {
            return Err(KeyFetchError::new(format!("{} answered {}", self.uri, res.status())));
        }
        let bytes = res.bytes().await.map_err(|e| KeyFetchError::with_source(e.to_string(), e))?;
        if bytes.len() > 512 * 1024 {
            return Err(KeyFetchError::new("the key set is larger than 512 KiB"));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| KeyFetchError::with_source(format!("the key set is not a JWK Set: {e}"), e))
    }
}

/// One-call setup of the back-channel logout endpoint (features `http` and `axum`).
#[cfg(feature = "axum")]
impl crate::axum::BackchannelLogout {
    /// Discovers `issuer`, fetches its keys over HTTPS (cached, refetched for a new `kid`),
    /// verifies logout tokens for `client_id` with the default [`crate::verify::VerificationPolicy`]
    /// and replay protection in memory, and ends the sessions `index` finds with `ender`. For
    /// several replicas, a custom policy or a shared replay cache, build the parts yourself and
    /// use [`crate::axum::BackchannelLogout::new`].
    ///
    /// ```no_run
    /// use adieu_rp::axum::BackchannelLogout;
    /// use adieu_rp::index::{LogoutMarkers, MemorySessionIndex};
    /// use std::sync::Arc;
    /// # async fn run() -> Result<(), adieu_rp::discovery::DiscoveryError> {
    /// let index = Arc::new(MemorySessionIndex::default()); // record each login here
    /// let markers = Arc::new(LogoutMarkers::default()); // or your session store as a SessionEnder
    /// let logout = BackchannelLogout::discover("https://id.example.com", "my-app", index, markers).await?;
    /// let app: axum::Router = axum::Router::new().route("/backchannel-logout", logout.method_router());
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        index: std::sync::Arc<dyn crate::index::SessionIndex>,
        ender: std::sync::Arc<dyn crate::index::SessionEnder>,
    ) -> Result<Self, DiscoveryError> {
        let provider = Provider::discover(issuer).await?;
        let keys = crate::keys::KeyCache::new(std::sync::Arc::new(HttpJwks::new(&provider.jwks_uri)?));
        let policy = crate::verify::VerificationPolicy::new(&provider.issuer, client_id);
        let verifier = crate::verifier::LogoutVerifier::new(policy, keys);
        Ok(Self::new(std::sync::Arc::new(verifier), index, ender))
    }
}
