//! Settings of the provider's HTTP application (the binary layers file and environment on top).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;
use url::Url;

/// Everything the HTTP application is configured with. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The issuer identifier and public base URL. A loopback host is the development profile;
    /// anything else must be `https`.
    pub issuer: Url,
    /// OP session lifetimes.
    pub session: SessionSettings,
    /// Token lifetimes.
    pub tokens: TokenSettings,
    /// Sign-in attempt limits.
    pub login: LoginSettings,
    /// Back-channel logout delivery.
    pub delivery: DeliverySettings,
    /// A management API bearer token from configuration (`ADIEU_ADMIN_TOKEN`), besides those
    /// created with `adieu admin-token create`. At least 32 characters.
    pub admin_token: Option<Secret>,
    /// An initial access token for dynamic client registration from configuration
    /// (`ADIEU_REGISTRATION_TOKEN`), besides those created with the CLI. At least 32 characters.
    pub registration_token: Option<Secret>,
    /// Upstream OpenID Providers users may sign in with (`[[upstreams]]`).
    pub upstreams: Vec<UpstreamSettings>,
    /// Base64 of 32 random bytes (`ADIEU_KEY_ENCRYPTION_KEY`; `adieu keys generate-kek`): when set,
    /// new signing keys are stored encrypted with it (AES-256-GCM), and encrypted ones need it.
    pub key_encryption_key: Option<Secret>,
    /// Signing-key rotation.
    pub keys: KeySettings,
    /// The HTTP listener's connection limits and timeouts, and the trusted reverse proxies.
    pub http: crate::http_server::HttpSettings,
    /// How long finished deliveries and audit events are kept.
    pub retention: crate::retention::RetentionSettings,
    /// How the pages look: product name, logo, accent colour, template overrides.
    pub pages: crate::pages::PagesSettings,
}

/// Signing-key rotation (`[keys]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// How long a rotated key is published in the JWKS before it signs, seconds (default 600): longer
    /// than relying parties cache the JWKS (adieu serves it with `max-age=300`) plus
    /// `reload_interval_secs`. The first key of an algorithm signs at once.
    pub publish_ahead_secs: u64,
    /// How often every replica re-reads the keys from the database, seconds (default 30; 1 to 3600).
    pub reload_interval_secs: u64,
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings { publish_ahead_secs: 600, reload_interval_secs: 30 }
    }
}

impl KeySettings {
    /// `publish_ahead_secs` as a duration.
    pub fn publish_ahead(&self) -> Duration {
        Duration::from_secs(self.publish_ahead_secs)
    }
}

/// An upstream OpenID Provider (`[[upstreams]]`): adieu is its client, signs users in through it,
/// and ends their sessions when it sends a back-channel logout (`idp-logout`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// A short slug used in URLs (`/upstream/{id}/callback`): 1 to 32 of `a-z`, `0-9`, `-`.
    pub id: String,
    /// The upstream's issuer, exactly as its `iss` (discovery at
    /// `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// adieu's client id at the upstream.
    pub client_id: String,
    /// adieu's client secret at the upstream (`client_secret_basic`).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The name of an environment variable holding the secret instead (read at start).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The button text: "Sign in with {display_name}".
    pub display_name: String,
    /// Scopes to request; `openid` is always added (default `openid profile email`).
    #[serde(default = "default_upstream_scopes")]
    pub scopes: Vec<String>,
}

fn default_upstream_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(str::to_owned).to_vec()
}

impl UpstreamSettings {
    /// The scope parameter: the configured scopes with `openid` first, each once.
    pub fn scope(&self) -> String {
        let mut out = vec!["openid"];
        for s in &self.scopes {
            if !out.contains(&s.as_str()) {
                out.push(s);
            }
        }
        out.join(" ")
    }
}

/// A secret setting: never printed.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Back-channel logout delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Attempts per round of a delivery, the first included (default 12). `1` never retries. An
    /// operator's retry of a dead delivery starts a new round.
    pub max_attempts: u32,
    /// Delay before the first retry, milliseconds (default 1000); doubles each time, with jitter.
    pub initial_backoff_ms: u64,
    /// Longest delay between attempts, seconds (default 600).
    pub max_backoff_secs: u64,
    /// No attempt starts later than this after the round began (the logout, or an operator's
    /// retry), seconds (default 86400).
    pub deadline_secs: u64,
    /// TCP/TLS connect timeout, milliseconds (default 2000).
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, milliseconds (default 5000).
    pub request_timeout_ms: u64,
    /// Deliveries in flight at once (default 256).
    pub global_concurrency: usize,
    /// Deliveries in flight to one host at once (default 32).
    pub per_host_concurrency: usize,
    /// Deliveries in flight to one application at once (default 4, at most
    /// `per_host_concurrency`): applications that share a host name (a gateway, a multi-tenant
    /// host) keep slots of their own, so one that hangs cannot take the slots of the healthy ones.
    pub per_client_concurrency: usize,
    /// How long the logout page waits for first attempts, milliseconds (default 1000; 0 = do not wait).
    pub logout_wait_ms: u64,
    /// How long a worker holds a claimed delivery before another may take it, seconds (default 60).
    pub lease_secs: u64,
    /// Whether this process runs a delivery worker (default true). `false` is for API-only
    /// replicas: they write deliveries, and the replicas that run workers send them.
    pub worker: bool,
    /// The longest an idle worker waits before it looks at the queue again, milliseconds (default
    /// 500). A logout in this process, a retry due, an expired lease and (on PostgreSQL) a NOTIFY
    /// from another replica wake it sooner; polling finds what the command line wrote.
    pub poll_interval_ms: u64,
    /// On SIGTERM, how long in-flight attempts may take to finish before they are abandoned and
    /// their deliveries released for another replica, seconds (default 10; 0 releases at once).
    pub shutdown_grace_secs: u64,
    /// CIDRs of private networks whose applications may be called outside the development profile.
    pub allow_private_cidrs: Vec<String>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            max_attempts: 12,
            initial_backoff_ms: 1000,
            max_backoff_secs: 600,
            deadline_secs: 24 * 3600,
            connect_timeout_ms: 2000,
            request_timeout_ms: 5000,
            global_concurrency: 256,
            per_host_concurrency: 32,
            per_client_concurrency: 4,
            logout_wait_ms: 1000,
            lease_secs: 60,
            worker: true,
            poll_interval_ms: 500,
            shutdown_grace_secs: 10,
            allow_private_cidrs: Vec::new(),
        }
    }
}

impl DeliverySettings {
    /// The retry policy.
    pub fn retry_policy(&self) -> adieu_core::delivery::RetryPolicy {
        adieu_core::delivery::RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms),
            max_backoff: Duration::from_secs(self.max_backoff_secs),
            deadline: Duration::from_secs(self.deadline_secs),
        }
    }

    /// The allow-list, parsed.
    pub fn allow_cidrs(&self) -> Result<Vec<ipnet::IpNet>, SettingsError> {
        self.allow_private_cidrs
            .iter()
            .map(|c| c.parse::<ipnet::IpNet>().map_err(|_| SettingsError::Cidr(c.clone())))
            .collect()
    }
}

/// OP session lifetimes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// A session unused this long ends (default 8 hours).
    pub idle_timeout_secs: u64,
    /// A session ends this long after it was created (its first sign-in), however active and even if
    /// the user re-authenticates in it (default 24 hours).
    pub absolute_timeout_secs: u64,
    /// How often the sweeper ends expired sessions and notifies their applications
    /// (`session-expired`), seconds (default 15; 1 to 3600). It also runs once at start.
    pub sweep_interval_secs: u64,
}

/// Token lifetimes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Authorization code lifetime (default 60 s).
    pub code_ttl_secs: u64,
    /// Access token lifetime (default 1 hour).
    pub access_token_ttl_secs: u64,
    /// ID token lifetime (default 1 hour).
    pub id_token_ttl_secs: u64,
    /// Refresh token lifetime (default 30 days); session-bound ones also end with the session.
    pub refresh_token_ttl_secs: u64,
    /// How long a sign-in started at the authorization endpoint may take (default 10 minutes).
    pub login_request_ttl_secs: u64,
}

/// Sign-in attempt limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Failed attempts for one username within the window before it is refused (default 5).
    pub max_failures_per_account: u32,
    /// Attempts from one address within the window before it is refused (default 30).
    pub max_attempts_per_address: u32,
    /// The window (default 15 minutes).
    pub window_secs: u64,
    /// argon2id hashes that may run at once (default 2; each takes ~19 MiB).
    pub hash_concurrency: usize,
    /// Sign-in requests waiting for a sign-in (stored by `/authorize` for an anonymous browser, or
    /// sent to an upstream provider) from one address within `tokens.login_request_ttl_secs`
    /// (default 100; an IPv6 client by its /64).
    pub max_pending_per_address: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            // Invariant: a literal that parses.
            issuer: Url::parse("http://127.0.0.1:8080").expect("valid default issuer"),
            session: SessionSettings::default(),
            tokens: TokenSettings::default(),
            login: LoginSettings::default(),
            delivery: DeliverySettings::default(),
            admin_token: None,
            registration_token: None,
            upstreams: Vec::new(),
            key_encryption_key: None,
            keys: KeySettings::default(),
            http: crate::http_server::HttpSettings::default(),
            retention: crate::retention::RetentionSettings::default(),
            pages: crate::pages::PagesSettings::default(),
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings { idle_timeout_secs: 8 * 3600, absolute_timeout_secs: 24 * 3600, sweep_interval_secs: 15 }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            code_ttl_secs: 60,
            access_token_ttl_secs: 3600,
            id_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            login_request_ttl_secs: 600,
        }
    }
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            max_failures_per_account: 5,
            max_attempts_per_address: 30,
            window_secs: 900,
            hash_concurrency: 2,
            max_pending_per_address: 100,
        }
    }
}

/// The longest sweep interval: an expired session's applications are told within this.
pub const MAX_SWEEP_INTERVAL_SECS: u64 = 3600;

/// The longest interval between two reloads of the signing keys.
pub const MAX_KEY_RELOAD_INTERVAL_SECS: u64 = 3600;

/// The longest idle wait of a delivery worker (one hour).
pub const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// The issuer is not an absolute http(s) URL without query and fragment.
    #[error("issuer {0:?} must be an absolute URL without query or fragment")]
    IssuerShape(String),
    /// A non-loopback issuer that is not https.
    #[error(
        "issuer {0:?} is not on a loopback address, so it must use https (plain http is only allowed for the loopback development profile)"
    )]
    IssuerNotHttps(String),
    /// A lifetime or limit of zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A value above its maximum.
    #[error("{0} must be at most {1}")]
    TooLarge(&'static str, u64),
    /// A configured bearer token that is too short to be a secret.
    #[error("{0} must be at least 32 characters (use `adieu admin-token create` to make one)")]
    WeakToken(&'static str),
    /// An allow-list entry that is not a CIDR.
    #[error("delivery.allow_private_cidrs: {0:?} is not a CIDR (e.g. 10.0.0.0/8)")]
    Cidr(String),
    /// An `[[upstreams]]` entry that cannot work; the text says which and why.
    #[error("upstreams: {0}")]
    Upstream(String),
    /// The key-encryption key is not base64 of 32 bytes (the text never contains it).
    #[error(transparent)]
    KeyEncryptionKey(#[from] crate::keys::kek::KekError),
}

impl Settings {
    /// Checks the settings that would make the provider unsafe or unusable.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let i = &self.issuer;
        if !matches!(i.scheme(), "http" | "https")
            || i.query().is_some()
            || i.fragment().is_some()
            || i.host().is_none()
        {
            return Err(SettingsError::IssuerShape(i.to_string()));
        }
        if i.scheme() != "https" && !self.is_development() {
            return Err(SettingsError::IssuerNotHttps(i.to_string()));
        }
        for (name, v) in [
            ("session.idle_timeout_secs", self.session.idle_timeout_secs),
            ("session.absolute_timeout_secs", self.session.absolute_timeout_secs),
            ("session.sweep_interval_secs", self.session.sweep_interval_secs),
            ("tokens.code_ttl_secs", self.tokens.code_ttl_secs),
            ("tokens.access_token_ttl_secs", self.tokens.access_token_ttl_secs),
            ("tokens.id_token_ttl_secs", self.tokens.id_token_ttl_secs),
            ("tokens.refresh_token_ttl_secs", self.tokens.refresh_token_ttl_secs),
            ("tokens.login_request_ttl_secs", self.tokens.login_request_ttl_secs),
            ("login.window_secs", self.login.window_secs),
            ("login.max_failures_per_account", u64::from(self.login.max_failures_per_account)),
            ("login.max_attempts_per_address", u64::from(self.login.max_attempts_per_address)),
            ("login.hash_concurrency", self.login.hash_concurrency as u64),
            ("login.max_pending_per_address", u64::from(self.login.max_pending_per_address)),
            ("delivery.max_attempts", u64::from(self.delivery.max_attempts)),
            ("delivery.connect_timeout_ms", self.delivery.connect_timeout_ms),
            ("delivery.request_timeout_ms", self.delivery.request_timeout_ms),
            ("delivery.global_concurrency", self.delivery.global_concurrency as u64),
            ("delivery.per_host_concurrency", self.delivery.per_host_concurrency as u64),
            ("delivery.per_client_concurrency", self.delivery.per_client_concurrency as u64),
            ("delivery.lease_secs", self.delivery.lease_secs),
            ("delivery.deadline_secs", self.delivery.deadline_secs),
            ("delivery.poll_interval_ms", self.delivery.poll_interval_ms),
            ("keys.reload_interval_secs", self.keys.reload_interval_secs),
        ] {
            if v == 0 {
                return Err(SettingsError::Zero(name));
            }
        }
        self.http.validate()?;
        if self.delivery.per_client_concurrency > self.delivery.per_host_concurrency {
            return Err(SettingsError::TooLarge(
                "delivery.per_client_concurrency",
                self.delivery.per_host_concurrency as u64,
            ));
        }
        if self.session.sweep_interval_secs > MAX_SWEEP_INTERVAL_SECS {
            return Err(SettingsError::TooLarge("session.sweep_interval_secs", MAX_SWEEP_INTERVAL_SECS));
        }
        if self.delivery.poll_interval_ms > MAX_POLL_INTERVAL_MS {
            return Err(SettingsError::TooLarge("delivery.poll_interval_ms", MAX_POLL_INTERVAL_MS));
        }
        if self.keys.reload_interval_secs > MAX_KEY_RELOAD_INTERVAL_SECS {
            return Err(SettingsError::TooLarge("keys.reload_interval_secs", MAX_KEY_RELOAD_INTERVAL_SECS));
        }
        self.kek()?;
        self.delivery.allow_cidrs()?;
        for (name, t) in [("admin_token", &self.admin_token), ("registration_token", &self.registration_token)] {
            if t.as_ref().is_some_and(|t| t.0.len() < 32) {
                return Err(SettingsError::WeakToken(name));
            }
        }
        self.validate_upstreams()
    }

    /// `[[upstreams]]`: slug ids, each id and issuer once, an `https` issuer (plain `http` only on a
    /// loopback host in the development profile), a client id and secret, a display name.
    fn validate_upstreams(&self) -> Result<(), SettingsError> {
        let bad = |id: &str, why: String| Err(SettingsError::Upstream(format!("{id:?}: {why}")));
        for (i, u) in self.upstreams.iter().enumerate() {
            let id = u.id.as_str();
            if id.is_empty()
                || id.len() > 32
                || id.starts_with('-')
                || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return bad(id, "the id must be 1 to 32 characters of a-z, 0-9 and -, not starting with -".into());
            }
            if self.upstreams[..i].iter().any(|o| o.id == u.id) {
                return bad(id, "two upstreams have this id".into());
            }
            if self.upstreams[..i].iter().any(|o| o.issuer == u.issuer) {
                return bad(id, format!("two upstreams have the issuer {}", u.issuer));
            }
            let Ok(url) = Url::parse(&u.issuer) else { return bad(id, format!("issuer {:?} is not a URL", u.issuer)) };
            if url.query().is_some() || url.fragment().is_some() || url.host().is_none() {
                return bad(id, format!("issuer {:?} must be an absolute URL without query or fragment", u.issuer));
            }
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            match url.scheme() {
                "https" => {}
                "http" if loopback && self.is_development() => {}
                _ => {
                    return bad(
                        id,
                        format!(
                            "issuer {:?} must use https (http only for a loopback upstream in the development profile)",
                            u.issuer
                        ),
                    );
                }
            }
            if u.client_id.is_empty() {
                return bad(id, "client_id is empty".into());
            }
            if u.client_secret.as_ref().is_none_or(|s| s.0.is_empty()) {
                return bad(id, "client_secret is missing (set client_secret or client_secret_env)".into());
            }
            let name = u.display_name.trim();
            if name.is_empty() || name.len() > 100 {
                return bad(id, "display_name must be 1 to 100 bytes".into());
            }
            if let Some(s) = u.scopes.iter().find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"'))
            {
                return bad(id, format!("scope {s:?} is not a scope token"));
            }
        }
        Ok(())
    }

    /// The development profile: the issuer's host is a loopback address (`localhost`, 127.0.0.0/8,
    /// `::1`). It allows plain `http`.
    pub fn is_development(&self) -> bool {
        match self.issuer.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        }
    }

    /// The key-encryption key, parsed, if one is set.
    pub fn kek(&self) -> Result<Option<crate::keys::Kek>, SettingsError> {
        Ok(self.key_encryption_key.as_ref().map(|s| crate::keys::Kek::from_base64(&s.0)).transpose()?)
    }

    /// The issuer as it appears in `iss`: without a trailing slash.
    pub fn issuer_str(&self) -> String {
        self.issuer.as_str().trim_end_matches('/').to_owned()
    }

    /// The session lifetimes as the domain type.
    pub fn session_lifetime(&self) -> adieu_core::SessionLifetime {
        adieu_core::SessionLifetime {
            idle: Duration::from_secs(self.session.idle_timeout_secs),
            absolute: Duration::from_secs(self.session.absolute_timeout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_issuer(s: &str) -> Settings {
        Settings { issuer: Url::parse(s).unwrap(), ..Settings::default() }
    }

    #[test]
    fn loopback_http_issuer_is_the_development_profile() {
        for i in ["http://127.0.0.1:8080", "http://localhost:9000", "http://[::1]:1"] {
            let s = with_issuer(i);
            assert!(s.is_development(), "{i}");
            s.validate().unwrap();
        }
    }

    #[test]
    fn non_loopback_issuer_requires_https() {
        assert!(matches!(with_issuer("http://id.example.com").validate(), Err(SettingsError::IssuerNotHttps(_))));
        assert!(matches!(with_issuer("http://10.0.0.1").validate(), Err(SettingsError::IssuerNotHttps(_))));
        let s = with_issuer("https://id.example.com");
        assert!(!s.is_development());
        s.validate().unwrap();
        assert_eq!(s.issuer_str(), "https://id.example.com");
    }

    #[test]
    fn sweep_interval_must_be_between_one_second_and_an_hour() {
        let mut s = Settings::default();
        assert_eq!(s.session.sweep_interval_secs, 15);
        s.session.sweep_interval_secs = 0;
        assert_eq!(s.validate(), Err(SettingsError::Zero("session.sweep_interval_secs")));
        s.session.sweep_interval_secs = 3601;
        assert_eq!(s.validate(), Err(SettingsError::TooLarge("session.sweep_interval_secs", 3600)));
        s.session.sweep_interval_secs = 3600;
        s.validate().unwrap();
    }

    fn upstream(id: &str, issuer: &str) -> UpstreamSettings {
        UpstreamSettings {
            id: id.into(),
            issuer: issuer.into(),
            client_id: "adieu".into(),
            client_secret: Some(Secret("s3cret".into())),
            client_secret_env: None,
            display_name: "Corp".into(),
            scopes: default_upstream_scopes(),
        }
    }

    fn upstream_error(s: &Settings) -> String {
        match s.validate() {
            Err(SettingsError::Upstream(e)) => e,
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }

    #[test]
    fn upstreams_need_slug_ids_unique_ids_and_issuers_and_a_secret() {
        let mut s = with_issuer("https://id.example.com");
        s.upstreams = vec![upstream("corp", "https://corp.example"), upstream("social-1", "https://social.example/")];
        s.validate().unwrap();
        s.upstreams[1].id = "Social".into();
        assert!(upstream_error(&s).contains("a-z"));
        s.upstreams[1].id = "corp".into();
        assert!(upstream_error(&s).contains("two upstreams have this id"));
        s.upstreams[1] = upstream("other", "https://corp.example");
        assert!(upstream_error(&s).contains("issuer"));
        s.upstreams[1] = upstream("other", "https://other.example");
        s.upstreams[1].client_secret = None;
        assert!(upstream_error(&s).contains("client_secret_env"));
        s.upstreams[1] = upstream("other", "https://other.example");
        s.upstreams[1].display_name = " ".into();
        assert!(upstream_error(&s).contains("display_name"));
    }

    #[test]
    fn an_upstream_issuer_must_be_https_except_loopback_in_development() {
        let mut prod = with_issuer("https://id.example.com");
        prod.upstreams = vec![upstream("corp", "http://corp.example")];
        assert!(upstream_error(&prod).contains("https"));
        prod.upstreams = vec![upstream("corp", "http://127.0.0.1:9000")];
        assert!(upstream_error(&prod).contains("https"), "loopback http is for the development profile only");
        let mut dev = with_issuer("http://127.0.0.1:8080");
        dev.upstreams = vec![upstream("corp", "http://localhost:9000")];
        dev.validate().unwrap();
        dev.upstreams = vec![upstream("corp", "http://corp.example")];
        assert!(upstream_error(&dev).contains("https"));
        dev.upstreams = vec![upstream("corp", "https://corp.example/?tenant=1")];
        assert!(upstream_error(&dev).contains("query"));
    }

    #[test]
    fn the_upstream_scope_always_starts_with_openid() {
        let mut u = upstream("corp", "https://corp.example");
        assert_eq!(u.scope(), "openid profile email");
        u.scopes = vec!["email".into(), "openid".into(), "groups".into()];
        assert_eq!(u.scope(), "openid email groups");
    }

    #[test]
    fn upstream_secrets_are_never_printed() {
        let u = upstream("corp", "https://corp.example");
        assert!(!format!("{u:?}").contains("s3cret"));
    }

    #[test]
    fn a_key_encryption_key_must_be_base64_of_32_bytes_and_is_never_printed() {
        let mut s = Settings { key_encryption_key: Some(Secret("c2hvcnQ=".into())), ..Settings::default() };
        let err = s.validate().unwrap_err();
        assert!(matches!(err, SettingsError::KeyEncryptionKey(crate::keys::kek::KekError::Length(5))), "{err:?}");
        assert!(!err.to_string().contains("c2hvcnQ"), "{err}");
        s.key_encryption_key = Some(Secret("!!!".into()));
        assert!(err_text(&s).contains("not base64"));
        let kek = crate::keys::kek::generate();
        s.key_encryption_key = Some(Secret(kek.clone()));
        s.validate().unwrap();
        assert!(s.kek().unwrap().is_some());
        assert!(!format!("{s:?}").contains(&kek), "Debug never shows the KEK");
    }

    fn err_text(s: &Settings) -> String {
        s.validate().unwrap_err().to_string()
    }

    #[test]
    fn the_key_reload_interval_is_between_one_second_and_an_hour() {
        let mut s = Settings::default();
        assert_eq!((s.keys.publish_ahead_secs, s.keys.reload_interval_secs), (600, 30));
        s.keys.reload_interval_secs = 0;
        assert_eq!(s.validate(), Err(SettingsError::Zero("keys.reload_interval_secs")));
        s.keys.reload_interval_secs = 3601;
        assert_eq!(s.validate(), Err(SettingsError::TooLarge("keys.reload_interval_secs", 3600)));
    }

    #[test]
    fn issuer_with_query_or_fragment_is_refused() {
        assert!(matches!(with_issuer("https://id.example.com/?a=b").validate(), Err(SettingsError::IssuerShape(_))));
        assert!(matches!(with_issuer("https://id.example.com/#x").validate(), Err(SettingsError::IssuerShape(_))));
    }
}
