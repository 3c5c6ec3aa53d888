//! The HTTP client that carries logout tokens, and the outbound address policy (SSRF defence).
//!
//! Outside the development profile:
//! - only `https` URIs are called;
//! - the client resolves host names itself ([`PolicyResolver`]) and keeps only addresses that are
//!   public (see [`adieu_core::net::forbidden_range`]) or inside an operator's allow-list; the
//!   connection goes to exactly those checked addresses, so a DNS answer that changes between check
//!   and connect cannot redirect the call (no rebinding);
//! - a literal IP host (which never reaches the resolver) is checked before the call.
//!
//! Always: redirects are never followed, proxies from the environment are ignored, connect and
//! total timeouts are short. The development profile (loopback issuer) allows `http` and loopback
//! or private targets, and says so at start-up.

use adieu_core::delivery::Response;
use adieu_core::net::forbidden_range;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::{Host, Url};

/// What outbound calls may reach.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// Development profile: `http`, loopback and private addresses allowed.
    pub development: bool,
    /// Private ranges an operator explicitly allows (RPs on an internal network).
    pub allow_cidrs: Vec<IpNet>,
    /// The provider's own host name (normalised), never called outside the development profile.
    pub own_host: String,
}

impl OutboundPolicy {
    /// Why `ip` may not be called, or `None` if it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        if self.development || self.allow_cidrs.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        forbidden_range(ip).map(|r| format!("address {ip} is in a forbidden range: {r}"))
    }

    /// Checks scheme and literal-IP host of a URI before any call.
    pub fn check_uri(&self, uri: &Url) -> Result<(), String> {
        match uri.scheme() {
            "https" => {}
            "http" if self.development => {}
            other => return Err(format!("scheme {other} is not allowed (https only outside the development profile)")),
        }
        if uri.port() == Some(0) {
            return Err("port 0 is not allowed".into());
        }
        let ip = match uri.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(d)) => {
                if !self.development && adieu_core::text::normalize_host(d) == self.own_host {
                    return Err("the URI points at the provider itself".into());
                }
                None
            }
            None => return Err("the URI has no host".into()),
        };
        match ip.and_then(|ip| self.refuses(ip)) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

/// Name resolution, replaceable in tests (e.g. a resolver that answers a name with a private
/// address, to show the policy refuses it at connect time).
pub trait NameLookup: Send + Sync + std::fmt::Debug + 'static {
    /// The addresses of `host`.
    fn lookup(&self, host: String) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system resolver (getaddrinfo through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl NameLookup for SystemLookup {
    fn lookup(&self, host: String) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// A reqwest resolver that drops every address the policy refuses.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<OutboundPolicy>,
    lookup: Arc<dyn NameLookup>,
}

/// The error a resolver returns when every address of a name is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AddressRefused(pub String);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = lookup.lookup(host.clone()).await?;
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|ip| match policy.refuses(*ip) {
                    Some(r) => {
                        refused = Some(r);
                        false
                    }
                    None => true,
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                let reason = refused.unwrap_or_else(|| format!("{host} has no address"));
                return Err(
                    Box::new(AddressRefused(format!("{host}: {reason}"))) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Timeouts and pool settings of the outbound client.
#[derive(Debug, Clone, Copy)]
pub struct OutboundTimeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// Whole request.
    pub total: Duration,
}

/// The client that POSTs logout tokens.
#[derive(Debug, Clone)]
pub struct Outbound {
    policy: Arc<OutboundPolicy>,
    http: reqwest::Client,
}

impl Outbound {
    /// Builds the client for `policy`, resolving names with `lookup`.
    pub fn new(
        policy: OutboundPolicy,
        timeouts: OutboundTimeouts,
        lookup: Arc<dyn NameLookup>,
    ) -> reqwest::Result<Self> {
        let policy = Arc::new(policy);
        let resolver = Arc::new(PolicyResolver { policy: policy.clone(), lookup });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!policy.development)
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .user_agent(concat!("adieu/", env!("CARGO_PKG_VERSION"), " (back-channel logout)"))
            .dns_resolver(resolver)
            .build()?;
        Ok(Outbound { policy, http })
    }

    /// The policy in force.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// A request to `uri` under the same policy, for calls to upstream providers (discovery,
    /// keys, token, userinfo): the scheme and a literal address are checked here, host names by
    /// the resolver when connecting; redirects are not followed; the timeouts apply.
    pub fn request(&self, method: reqwest::Method, uri: &str) -> Result<reqwest::RequestBuilder, String> {
        let url = Url::parse(uri).map_err(|e| format!("invalid URI {uri:?}: {e}"))?;
        self.policy.check_uri(&url)?;
        Ok(self.http.request(method, url))
    }

    /// Why a request failed, in the words of the delivery log (a refused address, a timeout, a
    /// connection error with its causes).
    pub fn describe_error(e: &reqwest::Error) -> String {
        match classify(e) {
            Response::Failed { reason, .. } => reason,
            Response::Status { code, .. } => format!("HTTP {code}"),
        }
    }

    /// POSTs `logout_token` as `application/x-www-form-urlencoded` to `uri`, keeping its query
    /// (BC-SEND-01, BC-REG-02), and classifies what happened.
    pub async fn send_logout_token(&self, uri: &str, logout_token: &str) -> Response {
        let url = match Url::parse(uri) {
            Ok(u) => u,
            Err(e) => return Response::Failed { recoverable: false, reason: format!("invalid logout URI: {e}") },
        };
        if let Err(reason) = self.policy.check_uri(&url) {
            return Response::Failed { recoverable: false, reason };
        }
        let body =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("logout_token", logout_token).finish();
        let result = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        match result {
            Ok(res) => {
                let code = res.status().as_u16();
                let retry_after = res
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Response::Status { code, retry_after }
            }
            Err(e) => classify(&e),
        }
    }
}

fn classify(e: &reqwest::Error) -> Response {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<AddressRefused>() {
            return Response::Failed {
                recoverable: false,
                reason: format!("address refused by the outbound policy: {r}"),
            };
        }
        source = s.source();
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Response::Failed { recoverable: true, reason: format!("{kind}: {}", error_chain(e)) }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prod() -> OutboundPolicy {
        OutboundPolicy { development: false, allow_cidrs: vec![], own_host: "id.example.test".into() }
    }

    #[test]
    fn production_refuses_http_and_forbidden_literal_ips() {
        let p = prod();
        assert!(p.check_uri(&Url::parse("http://rp.example.com/bc").unwrap()).is_err());
        assert!(p.check_uri(&Url::parse("https://10.0.0.1/bc").unwrap()).is_err());
        assert!(p.check_uri(&Url::parse("https://[::ffff:127.0.0.1]/bc").unwrap()).is_err());
        assert!(p.check_uri(&Url::parse("https://8.8.8.8/bc").unwrap()).is_ok());
        assert!(p.check_uri(&Url::parse("https://rp.example.com/bc").unwrap()).is_ok());
    }

    #[test]
    fn the_own_host_rule_holds_at_connect_time_with_or_without_trailing_dot() {
        let p = prod();
        for u in ["https://id.example.test/bc", "https://ID.example.test./bc", "https://id.example.test:8443/bc"] {
            assert!(p.check_uri(&Url::parse(u).unwrap()).is_err(), "{u}");
        }
        assert!(p.check_uri(&Url::parse("https://rp.example.test/bc").unwrap()).is_ok());
    }

    #[test]
    fn port_zero_is_refused_at_connect_time() {
        assert!(prod().check_uri(&Url::parse("https://rp.example.com:0/bc").unwrap()).is_err());
    }

    #[test]
    fn allow_list_admits_an_operators_private_range() {
        let p = OutboundPolicy {
            development: false,
            allow_cidrs: vec!["10.1.0.0/16".parse().unwrap()],
            own_host: "id.example.test".into(),
        };
        assert!(p.refuses("10.1.2.3".parse().unwrap()).is_none());
        assert!(p.refuses("10.2.0.1".parse().unwrap()).is_some());
    }

    #[test]
    fn development_profile_allows_loopback_and_http() {
        let p = OutboundPolicy { development: true, allow_cidrs: vec![], own_host: "127.0.0.1".into() };
        assert!(p.check_uri(&Url::parse("http://127.0.0.1:9000/bc").unwrap()).is_ok());
    }
}
