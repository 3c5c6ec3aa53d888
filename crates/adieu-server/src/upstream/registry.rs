//! The configured upstreams and what adieu learns about each at run time: its discovery document
//! (fetched on first use, kept for the life of the process; a failure is retried at most every
//! [`RETRY_DISCOVERY_AFTER`]), its keys (a [`KeyCache`], refetched on an unknown `kid`, rate
//! limited, and hourly), and the verifiers for its ID tokens and logout tokens.
//!
//! Every call to an upstream (discovery, keys, token, userinfo) goes through the delivery
//! [`Outbound`] client, so it follows the same policy as logout deliveries: `https` only outside
//! the development profile, public addresses (or `delivery.allow_private_cidrs`), no redirects,
//! short timeouts.

use crate::delivery::outbound::Outbound;
use crate::settings::{Settings, UpstreamSettings};
use adieu_rp::discovery::{Provider, is_allowed_url};
use adieu_rp::id_token::IdTokenPolicy;
use adieu_rp::keys::{JwksSource, KeyCache, KeyFetchError};
use adieu_rp::replay::MemoryReplayCache;
use adieu_rp::verifier::LogoutVerifier;
use adieu_rp::verify::VerificationPolicy;
use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// After a failed discovery, the next request waits at least this long before trying again, so
/// requests to adieu cannot make it hammer an unreachable upstream.
pub const RETRY_DISCOVERY_AFTER: Duration = Duration::from_secs(10);

/// The largest document adieu reads from an upstream (discovery, keys, token response, userinfo).
pub const MAX_UPSTREAM_BODY: usize = 512 * 1024;

/// Signing algorithms adieu accepts from upstreams (ID and logout tokens): the asymmetric ones it
/// implements itself. Never `none`, never `HS*` (RFC 8725 §3.1).
pub const ACCEPTED_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// Why an upstream cannot be used right now (shown generically, logged in full).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Discovery failed or the document is unusable.
    #[error("discovery of {issuer} failed: {reason}")]
    Discovery {
        /// The upstream's issuer.
        issuer: String,
        /// Why.
        reason: String,
    },
}

/// All configured upstreams, in configuration order.
#[derive(Debug, Default)]
pub struct Upstreams {
    list: Vec<Arc<Upstream>>,
}

impl Upstreams {
    /// One [`Upstream`] per `[[upstreams]]` entry, calling out through `outbound`.
    pub fn new(settings: &Settings, outbound: &Outbound) -> Self {
        Upstreams {
            list: settings.upstreams.iter().map(|u| Arc::new(Upstream::new(u.clone(), outbound.clone()))).collect(),
        }
    }

    /// The upstream with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Upstream>> {
        self.list.iter().find(|u| u.settings.id == id)
    }

    /// All of them.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.list.iter()
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// One upstream provider.
#[derive(Debug)]
pub struct Upstream {
    /// Its configuration.
    pub settings: UpstreamSettings,
    outbound: Outbound,
    state: Mutex<DiscoveryState>,
}

#[derive(Debug, Default)]
struct DiscoveryState {
    found: Option<Arc<Discovered>>,
    failed: Option<(Instant, UpstreamError)>,
}

/// What discovery found, and the verifiers built from it.
#[derive(Debug)]
pub struct Discovered {
    /// Where the browser signs in.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// Profile claims, when the ID token has none.
    pub userinfo_endpoint: Option<String>,
    /// ID tokens: issuer, our client id, the accepted algorithms it publishes.
    pub id_tokens: IdTokenPolicy,
    /// Logout tokens (BC-RP-01..08): the same issuer, keys and algorithms, a `jti` replay cache.
    pub logout: LogoutVerifier,
}

impl Upstream {
    fn new(settings: UpstreamSettings, outbound: Outbound) -> Self {
        Upstream { settings, outbound, state: Mutex::default() }
    }

    /// The client adieu calls the upstream with.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// The discovery result, fetching it on first use (concurrent callers share one fetch).
    pub async fn discovered(&self) -> Result<Arc<Discovered>, UpstreamError> {
        let mut st = self.state.lock().await;
        if let Some(found) = &st.found {
            return Ok(found.clone());
        }
        if let Some((at, e)) = &st.failed
            && at.elapsed() < RETRY_DISCOVERY_AFTER
        {
            return Err(e.clone());
        }
        match self.discover().await {
            Ok(d) => {
                let d = Arc::new(d);
                tracing::info!(upstream = %self.settings.id, issuer = %self.settings.issuer, "upstream discovered");
                st.found = Some(d.clone());
                st.failed = None;
                Ok(d)
            }
            Err(reason) => {
                let e = UpstreamError::Discovery { issuer: self.settings.issuer.clone(), reason };
                tracing::warn!(upstream = %self.settings.id, error = %e, "upstream discovery failed");
                st.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    async fn discover(&self) -> Result<Discovered, String> {
        let issuer = &self.settings.issuer;
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let body = get(&self.outbound, &url, None).await?;
        let provider = Provider::from_document(issuer, &body).map_err(|e| e.to_string())?;
        let endpoint = |name: &str, v: Option<String>| -> Result<String, String> {
            let v = v.ok_or_else(|| format!("the discovery document has no {name}"))?;
            if is_allowed_url(&v) { Ok(v) } else { Err(format!("{name} {v:?} must use https")) }
        };
        let authorization_endpoint = endpoint("authorization_endpoint", provider.authorization_endpoint.clone())?;
        let token_endpoint = endpoint("token_endpoint", provider.token_endpoint.clone())?;
        let userinfo_endpoint = provider.userinfo_endpoint.clone().filter(|u| is_allowed_url(u));
        let algorithms = algorithms_of(&provider)?;
        if !provider.backchannel_logout_supported {
            tracing::warn!(
                upstream = %self.settings.id,
                "the upstream does not say it supports back-channel logout (backchannel_logout_supported); \
                 signing in works, but it may never tell adieu when a user signs out there"
            );
        }
        let keys =
            KeyCache::new(Arc::new(OutboundJwks { outbound: self.outbound.clone(), uri: provider.jwks_uri.clone() }));
        let id = &self.settings.client_id;
        let policy = VerificationPolicy::new(issuer.clone(), id.clone())
            .with_algorithms(&algorithms)
            .map_err(|e| e.to_string())?;
        let logout = LogoutVerifier::new(policy, keys).with_replay_cache(Arc::new(MemoryReplayCache::default()));
        let id_tokens =
            IdTokenPolicy::new(issuer.clone(), id.clone()).with_algorithms(&algorithms).map_err(|e| e.to_string())?;
        Ok(Discovered { authorization_endpoint, token_endpoint, userinfo_endpoint, id_tokens, logout })
    }
}

/// The algorithms to accept: those the upstream publishes in `id_token_signing_alg_values_supported`
/// that adieu accepts; RS256 when it publishes none (the OpenID default).
fn algorithms_of(p: &Provider) -> Result<Vec<Algorithm>, String> {
    if p.id_token_signing_alg_values_supported.is_empty() {
        return Ok(vec![Algorithm::RS256]);
    }
    let algs: Vec<Algorithm> = ACCEPTED_ALGORITHMS
        .into_iter()
        .filter(|a| p.id_token_signing_alg_values_supported.iter().any(|s| s.as_str() == format!("{a:?}")))
        .collect();
    if algs.is_empty() {
        return Err(format!(
            "it signs ID tokens only with {:?}; adieu accepts RS256, ES256 and EdDSA",
            p.id_token_signing_alg_values_supported
        ));
    }
    Ok(algs)
}

/// GETs `url` through the outbound policy (optionally with a bearer token) and returns the body of
/// a 2xx answer, at most [`MAX_UPSTREAM_BODY`] bytes.
pub async fn get(outbound: &Outbound, url: &str, bearer: Option<&str>) -> Result<Vec<u8>, String> {
    let mut req = outbound.request(reqwest::Method::GET, url)?.header(reqwest::header::ACCEPT, "application/json");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.map_err(|e| Outbound::describe_error(&e))?;
    if !res.status().is_success() {
        return Err(format!("{url} answered {}", res.status()));
    }
    read_limited(res).await
}

/// The body of `res`, refusing more than [`MAX_UPSTREAM_BODY`] bytes.
pub async fn read_limited(mut res: reqwest::Response) -> Result<Vec<u8>, String> {
    if res.content_length().is_some_and(|n| n > MAX_UPSTREAM_BODY as u64) {
        return Err("the answer is too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| Outbound::describe_error(&e))? {
        if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return Err("the answer is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The upstream's JWK Set, fetched through the outbound policy.
#[derive(Debug)]
struct OutboundJwks {
    outbound: Outbound,
    uri: String,
}

#[async_trait]
impl JwksSource for OutboundJwks {
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
        let body = get(&self.outbound, &self.uri, None).await.map_err(KeyFetchError::new)?;
        serde_json::from_slice(&body)
            .map_err(|e| KeyFetchError::with_source(format!("the key set is not a JWK Set: {e}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(algs: &[&str]) -> Provider {
        Provider::from_document(
            "https://up.example",
            serde_json::json!({
                "issuer": "https://up.example",
                "jwks_uri": "https://up.example/jwks",
                "id_token_signing_alg_values_supported": algs,
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn rfc_8725_only_asymmetric_algorithms_the_upstream_publishes_are_accepted() {
        assert_eq!(algorithms_of(&provider(&[])).unwrap(), [Algorithm::RS256], "the OpenID default");
        assert_eq!(
            algorithms_of(&provider(&["none", "HS256", "ES256", "RS256"])).unwrap(),
            [Algorithm::RS256, Algorithm::ES256]
        );
        assert!(algorithms_of(&provider(&["HS256", "none"])).is_err());
    }
}
