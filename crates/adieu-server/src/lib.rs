//! The HTTP application of the adieu OpenID Provider.
//!
//! Start at [`router`], which builds the whole app from an [`AppState`]. One module per endpoint
//! group, each with its routes beside its handlers:
//!
//! - [`discovery`]: `/.well-known/openid-configuration` and the JWKS.
//! - [`authorize`]: the authorization endpoint, a pipeline of named checks.
//! - [`login`]: the sign-in page and form; [`sign_in`]: starting an OP session in a browser,
//!   shared by the form and by upstream sign-ins.
//! - [`token`]: the token endpoint (`authorization_code`, `refresh_token`) and client authentication.
//! - [`userinfo`]: claims for a bearer access token.
//! - [`rp_logout`]: RP-Initiated Logout 1.0 (RPI-01..10).
//! - [`session_end`]: the one function that ends a session, whatever the initiator.
//! - [`user_admin`]: users and their sessions (API and CLI): password and email changes, deletion and
//!   revocation end sessions with their initiators.
//! - [`retention`]: prunes finished deliveries and old audit events.
//! - [`sweeper`]: ends expired sessions (`session-expired`), at start and periodically.
//! - [`registration_endpoint`]: dynamic client registration (RFC 7591) with an initial access token.
//! - [`api`]: the management API (`/api/v1`: clients, users, sessions, deliveries, audit log, and
//!   its OpenAPI document).
//! - [`home`]: the provider's own start page.
//! - [`account_page`]: the signed-in user's account page (sessions, sign out everywhere, password, email),
//!   through the same [`user_admin`] functions as the API.
//! - [`health`]: `/healthz` and `/readyz`; [`metrics`]: `/metrics`.
//! - [`detached`]: the store wrapper that runs every operation to completion on its own task
//!   (cancel safety) and tracks whether the database can write (readiness).
//! - [`delivery`]: back-channel logout delivery (workers, outbound policy, logout tokens).
//! - [`upstream`]: signing in through upstream OpenID Providers and their back-channel logouts
//!   (`idp-logout`).
//!
//! Support: [`settings`], [`keys`] (signing, JWKS, rotation shared through the database, the
//! key-encryption key), [`id_token`], [`crypto`], [`password`], [`browser`] (cookies, CSRF),
//! [`ratelimit`], [`pages`] (templates), [`error`], [`client_metadata`] (validation and registration of client metadata), [`provider`] (the one assembly of the running provider).

pub(crate) mod account_page;
pub(crate) mod api;
pub(crate) mod authorize;
pub(crate) mod browser;
pub mod check_rp;
pub mod client_metadata;
pub(crate) mod consent_page;
pub mod crypto;
pub mod delivery;
pub(crate) mod detached;
pub(crate) mod discovery;
pub(crate) mod error;
pub(crate) mod frontchannel;
pub(crate) mod global_revocation;
pub(crate) mod health;
pub(crate) mod home;
pub mod http_server;
pub mod i18n;
pub(crate) mod id_token;
pub mod keys;
pub(crate) mod login;
pub mod metrics;
pub mod pages;
pub mod password;
pub mod provider;
pub(crate) mod ratelimit;
pub(crate) mod registration_endpoint;
pub mod retention;
pub(crate) mod rp_logout;
pub mod session_end;
pub mod settings;
pub(crate) mod sign_in;
pub(crate) mod signed_out;
pub mod startup_hints;
pub mod sweeper;
pub(crate) mod token;
pub(crate) mod token_status;
pub(crate) mod upstream;
pub mod user_admin;
pub(crate) mod userinfo;

use adieu_core::{Clock, SessionLifetime, Store};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use std::sync::Arc;
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;

pub use settings::Settings;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Signing keys: swapped in place when a reload finds a rotation or retirement.
    pub keys: Arc<keys::Keys>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Password hashing.
    pub passwords: password::Passwords,
    /// Sign-in attempt limits.
    pub limiter: Arc<ratelimit::LoginLimiter>,
    /// Cookie names.
    pub cookies: Arc<browser::CookieNames>,
    /// Session lifetimes.
    pub lifetime: SessionLifetime,
    /// `iss` value.
    pub issuer: Arc<str>,
    /// The issuer's origin (`scheme://host[:port]`) for `Origin` checks.
    pub issuer_origin: Arc<str>,
    /// Connects request handlers with the delivery workers.
    pub delivery: Arc<delivery::DeliveryHub>,
    /// Upstream OpenID Providers users may sign in with.
    pub upstreams: Arc<upstream::Upstreams>,
    /// `http.trusted_proxies`, parsed.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Request, sign-in and token counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The page templates with the branding of `[pages]`.
    pub pages: Arc<pages::Pages>,
}

impl AppState {
    /// Builds the state: loads (or on first start generates) the signing keys.
    pub async fn new(store: Arc<dyn Store>, settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
        settings.validate()?;
        // Every store operation runs to completion whatever the client does (DESIGN.md §5).
        let store: Arc<dyn Store> = Arc::new(detached::DetachedStore::new(store));
        // jsonwebtoken picks its crypto backend at run time; install ours (STACK.md pitfall 1).
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let (keys, _) = keys::Keys::load_or_generate(store.as_ref(), clock.now(), settings.kek()?).await?;
        let trusted_proxies: Arc<[ipnet::IpNet]> = settings.http.proxies()?.into();
        let l = &settings.login;
        let upstreams = upstream::Upstreams::new(&settings, &outbound_client(&settings)?);
        let pages = pages::Pages::new(&settings.pages, settings.issuer.path().trim_end_matches('/'))?;
        Ok(AppState {
            keys: Arc::new(keys),
            passwords: password::Passwords::new(l.hash_concurrency),
            limiter: Arc::new(ratelimit::LoginLimiter::new(
                store.clone(),
                l.max_failures_per_account,
                l.max_attempts_per_address,
                Duration::from_secs(l.window_secs),
            )),
            cookies: Arc::new(browser::CookieNames::for_scheme(settings.issuer.scheme() == "https")),
            lifetime: settings.session_lifetime(),
            issuer: settings.issuer_str().into(),
            issuer_origin: settings.issuer.origin().ascii_serialization().into(),
            settings: Arc::new(settings),
            delivery: Arc::new(delivery::DeliveryHub::default()),
            upstreams: Arc::new(upstreams),
            trusted_proxies,
            metrics: Arc::new(metrics::Metrics::default()),
            pages: Arc::new(pages),
            store,
            clock,
        })
    }

    /// The absolute URL of an endpoint path (`/token` → `{issuer}/token`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// The outbound policy for logout deliveries, from the settings.
    pub fn outbound_policy(&self) -> delivery::outbound::OutboundPolicy {
        outbound_policy(&self.settings)
    }

    /// The outbound client for logout deliveries with the system resolver.
    pub fn outbound(&self) -> anyhow::Result<delivery::outbound::Outbound> {
        outbound_client(&self.settings)
    }

    /// The issuer's path prefix ("" for an issuer at the root), for links on pages.
    pub fn path(&self, path: &str) -> String {
        format!("{}{}", self.settings.issuer.path().trim_end_matches('/'), path)
    }
}

/// The outbound policy (deliveries and calls to upstreams), from the settings.
fn outbound_policy(settings: &Settings) -> delivery::outbound::OutboundPolicy {
    delivery::outbound::OutboundPolicy {
        development: settings.is_development(),
        // Invariant: validated in Settings::validate.
        allow_cidrs: settings.delivery.allow_cidrs().unwrap_or_default(),
        own_host: adieu_core::text::normalize_host(settings.issuer.host_str().unwrap_or_default()),
    }
}

/// An outbound client under that policy with the delivery timeouts and the system resolver.
fn outbound_client(settings: &Settings) -> anyhow::Result<delivery::outbound::Outbound> {
    let d = &settings.delivery;
    let timeouts = delivery::outbound::OutboundTimeouts {
        connect: Duration::from_millis(d.connect_timeout_ms),
        total: Duration::from_millis(d.request_timeout_ms),
    };
    Ok(delivery::outbound::Outbound::new(
        outbound_policy(settings),
        timeouts,
        Arc::new(delivery::outbound::SystemLookup),
    )?)
}

/// The whole application. Routes live beside their handlers; an issuer with a path is served
/// under that path.
pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .merge(discovery::routes())
        .merge(authorize::routes())
        .merge(login::routes())
        .merge(consent_page::routes())
        .merge(token::routes())
        .merge(userinfo::routes())
        .merge(rp_logout::routes())
        .merge(signed_out::routes())
        .merge(token_status::routes())
        .merge(global_revocation::routes())
        .merge(home::routes())
        .merge(account_page::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(registration_endpoint::routes())
        .merge(api::routes())
        .merge(upstream::routes())
        .merge(pages::routes())
        .fallback(home::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), error::brand_error_pages))
        .layer(axum::middleware::from_fn(i18n::negotiate))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::http::track));
    let prefix = state.settings.issuer.path().trim_end_matches('/').to_owned();
    let app = if prefix.is_empty() { app } else { Router::new().nest(&prefix, app) };
    let timeout = Duration::from_secs(state.settings.http.request_timeout_secs);
    app.with_state(state)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        // A handler dropped by the timeout is safe: store operations run detached.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(timeout))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("referrer-policy"),
            // Not `no-referrer`: with it, browsers send `Origin: null` on our own form posts,
            // which the CSRF check cannot tell from a sandboxed attacker's page. `same-origin`
            // still sends nothing to other sites.
            HeaderValue::from_static("same-origin"),
        ))
}
