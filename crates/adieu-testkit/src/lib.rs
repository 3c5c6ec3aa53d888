//! Test helpers for adieu (not published).
//!
//! - [`TestOp`]: the real provider (router, SQLite file, keys and their reloader, delivery worker,
//!   session sweeper) served on `127.0.0.1:0` in this process, with a [`ManualClock`] the test
//!   moves; it can be stopped and started again on the same database ([`TestOp::stop`], [`TestOp::start_in`]).
//! - [`Browser`]: a cookie-keeping HTTP client that does not follow redirects, with helpers to
//!   sign in through the real login form and run the code flow.
//! - [`pkce_pair`]: a PKCE verifier and its S256 challenge.
//! - [`receiver`]: a recording back-channel logout receiver with scripted answers.
//! - [`interop`]: node `oidc-provider`, a provider we did not write, for interoperability tests.

pub mod interop;
pub mod receiver;

use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::id::UserId;
use adieu_core::user::User;
use adieu_core::{Clock, ManualClock, Store};
use adieu_server::client_metadata::{ClientRegistration, UriPolicy, register};
use adieu_server::{AppState, Settings};
use adieu_store::SqliteStore;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use url::Url;

/// A provider running in this process on an ephemeral loopback port.
#[derive(Debug)]
pub struct TestOp {
    /// The issuer, e.g. `http://127.0.0.1:43123`.
    pub issuer: String,
    /// The application state (store, keys, settings).
    pub state: AppState,
    /// The clock the provider reads; move it to test expiry.
    pub clock: ManualClock,
    /// The SQLite file lives here.
    pub dir: tempfile::TempDir,
    provider: Option<adieu_server::provider::Provider>,
}

/// What is left of a stopped [`TestOp`]: its database directory and its clock.
#[derive(Debug)]
pub struct Stopped {
    /// The directory holding `adieu.db`.
    pub dir: tempfile::TempDir,
    /// The clock (move it while the provider is down).
    pub clock: ManualClock,
    /// The address it listened on (a restart tries to listen there again, keeping the issuer).
    pub addr: SocketAddr,
}

impl TestOp {
    /// Starts a provider with default settings.
    pub async fn start() -> anyhow::Result<TestOp> {
        Self::start_with(|_| {}).await
    }

    /// Starts a provider; `tweak` may change the settings (the issuer is set to the bound port).
    pub async fn start_with(tweak: impl FnOnce(&mut Settings)) -> anyhow::Result<TestOp> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(tempfile::tempdir()?, ManualClock::starting_now(), listener, tweak).await
    }

    /// Starts a provider on the database and clock a stopped one left, on its address if that is
    /// free (else on a new port, and so a new issuer). Like `adieu serve`, it releases old leases
    /// and sweeps expired sessions at once.
    pub async fn start_in(stopped: Stopped, tweak: impl FnOnce(&mut Settings)) -> anyhow::Result<TestOp> {
        let listener = match tokio::net::TcpListener::bind(stopped.addr).await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        };
        Self::serve(stopped.dir, stopped.clock, listener, tweak).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        clock: ManualClock,
        listener: tokio::net::TcpListener,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<TestOp> {
        let url = format!("sqlite://{}", dir.path().join("adieu.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await?);
        let addr = listener.local_addr()?;
        let mut settings = Settings { issuer: Url::parse(&format!("http://{addr}"))?, ..Settings::default() };
        tweak(&mut settings);
        // The production assembly, on a manual clock.
        let provider = adieu_server::provider::start(store, settings, Arc::new(clock.clone()), listener).await?;
        let state = provider.state.clone();
        let issuer = state.issuer.to_string();
        Ok(TestOp { issuer, state, clock, dir, provider: Some(provider) })
    }

    /// Stops the provider (server, worker, sweeper) and keeps its database and clock.
    pub fn stop(mut self) -> anyhow::Result<Stopped> {
        let addr =
            Url::parse(&self.issuer)?.socket_addrs(|| None)?.into_iter().next().context("the issuer has no address")?;
        self.halt();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir()?);
        Ok(Stopped { dir, clock: self.clock.clone(), addr })
    }

    fn halt(&mut self) {
        self.provider = None;
    }

    /// Runs one sweep of expired sessions now, at the clock's time (the same function the sweeper
    /// task runs every `session.sweep_interval_secs`); returns how many sessions it ended.
    pub async fn sweep_now(&self) -> anyhow::Result<usize> {
        Ok(adieu_server::sweeper::sweep_once(&self.state).await?)
    }

    /// The absolute URL of a path on the provider.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// Creates a user with a password.
    pub async fn add_user(&self, username: &str, email: Option<&str>, password: &str) -> anyhow::Result<User> {
        let now = self.clock.now();
        let user = User {
            id: UserId::new(adieu_server::crypto::random_id()),
            username: username.to_owned(),
            email: email.map(str::to_owned),
            password_hash: self.state.passwords.hash(password).await?,
            created_at: now,
            updated_at: now,
        };
        self.state.store.create_user(&user).await?;
        Ok(user)
    }

    /// Registers a client through the same validation as the CLI; returns it and its secret.
    pub async fn add_client(&self, reg: ClientRegistration) -> anyhow::Result<(Client, Option<String>)> {
        let policy = UriPolicy::for_settings(&self.state.settings);
        Ok(register(self.state.store.as_ref(), reg, &policy, self.clock.now(), "test").await?)
    }

    /// Wakes the delivery worker (after moving the clock).
    ///
    /// See also [`ManualClockExt::now_ms`] for reading the clock without importing the trait.
    pub fn wake_workers(&self) {
        self.state.delivery.wake();
    }

    /// Registers a confidential client `id` with a back-channel logout URI.
    pub async fn add_bc_client(
        &self,
        id: &str,
        redirect_uri: &str,
        backchannel_logout_uri: &str,
        initiators: adieu_core::initiator::InitiatorSubscription,
    ) -> anyhow::Result<TestClient> {
        let (client, secret) = self
            .add_client(ClientRegistration {
                client_id: Some(id.to_owned()),
                name: format!("App {id}"),
                redirect_uris: vec![redirect_uri.to_owned()],
                post_logout_redirect_uris: vec![format!("{redirect_uri}/bye")],
                backchannel_logout_uri: Some(backchannel_logout_uri.to_owned()),
                backchannel_logout_session_required: true,
                backchannel_logout_initiators: initiators,
                ..Default::default()
            })
            .await?;
        Ok(TestClient { id: client.id.to_string(), secret, redirect_uri: redirect_uri.to_owned() })
    }

    /// Registers a confidential client `id` with `redirect_uri` and a post-logout URI `{redirect_uri}/bye`.
    pub async fn add_simple_client(&self, id: &str, redirect_uri: &str) -> anyhow::Result<TestClient> {
        let (client, secret) = self
            .add_client(ClientRegistration {
                client_id: Some(id.to_owned()),
                name: format!("App {id}"),
                redirect_uris: vec![redirect_uri.to_owned()],
                post_logout_redirect_uris: vec![format!("{redirect_uri}/bye")],
                token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
                ..Default::default()
            })
            .await?;
        Ok(TestClient { id: client.id.to_string(), secret, redirect_uri: redirect_uri.to_owned() })
    }
}

impl Drop for TestOp {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Reads a [`ManualClock`] without importing [`Clock`].
pub trait ManualClockExt {
    /// The clock's current time.
    fn now_ms(&self) -> adieu_core::UnixMillis;
}

impl ManualClockExt for ManualClock {
    fn now_ms(&self) -> adieu_core::UnixMillis {
        self.now()
    }
}

/// A registered client as a test sees it.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// client_id.
    pub id: String,
    /// client_secret (None for public clients).
    pub secret: Option<String>,
    /// The registered redirect URI.
    pub redirect_uri: String,
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = adieu_server::crypto::random_secret();
    let challenge = adieu_server::crypto::pkce_s256(&verifier);
    (verifier, challenge)
}

/// A browser: keeps cookies, never follows redirects.
#[derive(Debug, Clone)]
pub struct Browser {
    /// The underlying client.
    pub http: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// The `Location` of a redirect response, or an error.
pub fn location(res: &reqwest::Response) -> anyhow::Result<String> {
    anyhow::ensure!(res.status().is_redirection(), "expected a redirect, got {}", res.status());
    Ok(res.headers().get("location").context("no Location header")?.to_str()?.to_owned())
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Pulls `name="…" value="…"` of a hidden input out of a page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&#x2f;", "/").replace("&amp;", "&").replace("&#x3d;", "=").replace("&#x2b;", "+"))
}

impl Browser {
    /// A fresh browser with an empty cookie jar. It sends no `User-Agent`.
    pub fn new() -> Self {
        Self::build(reqwest::Client::builder())
    }

    /// [`Browser::new`] that sends `user_agent` as its `User-Agent` on every request.
    pub fn with_user_agent(user_agent: &str) -> Self {
        Self::build(reqwest::Client::builder().user_agent(user_agent))
    }

    fn build(builder: reqwest::ClientBuilder) -> Self {
        let http = builder
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client builds");
        Browser { http }
    }

    /// GET, resolving a relative URL against `base`.
    pub async fn get(&self, base: &str, url: &str) -> anyhow::Result<reqwest::Response> {
        let abs = Url::parse(base)?.join(url)?;
        Ok(self.http.get(abs).send().await?)
    }

    /// Starts the code flow and signs in through the login form if asked; returns the final
    /// redirect back to the client (with `code` or `error`).
    pub async fn authorize(
        &self,
        op: &TestOp,
        params: &[(&str, &str)],
        username: &str,
        password: &str,
    ) -> anyhow::Result<String> {
        self.authorize_at(&op.issuer, params, username, password).await
    }

    /// [`Browser::authorize`] against any provider given by its issuer URL.
    pub async fn authorize_at(
        &self,
        issuer: &str,
        params: &[(&str, &str)],
        username: &str,
        password: &str,
    ) -> anyhow::Result<String> {
        let mut url = Url::parse(&format!("{issuer}/authorize"))?;
        url.query_pairs_mut().extend_pairs(params);
        let res = self.http.get(url).send().await?;
        let loc = location(&res)?;
        if loc.contains("/consent?request=") {
            return self.answer_consent(issuer, &loc, true).await;
        }
        if !loc.contains("/login?request=") {
            return Ok(loc);
        }
        let page = self.get(issuer, &loc).await?;
        anyhow::ensure!(page.status() == 200, "login page answered {}", page.status());
        let html = page.text().await?;
        let csrf = hidden_field(&html, "csrf").context("no csrf field")?;
        let request = hidden_field(&html, "request").context("no request field")?;
        let res = self
            .http
            .post(format!("{issuer}/login"))
            .form(&[("username", username), ("password", password), ("csrf", &csrf), ("request", &request)])
            .send()
            .await?;
        let loc = location(&res).with_context(|| format!("login did not redirect (status {})", res.status()))?;
        if loc.contains("/consent?request=") {
            return self.answer_consent(issuer, &loc, true).await;
        }
        Ok(loc)
    }

    /// Answers the consent screen at `consent` (a path from the provider's redirect): "Allow" if
    /// `allow`, otherwise "Deny". Returns where the provider sends the browser next.
    /// [`Browser::authorize`] allows whenever it is asked, as a user who wants to sign in would.
    pub async fn answer_consent(&self, issuer: &str, consent: &str, allow: bool) -> anyhow::Result<String> {
        let page = self.get(issuer, consent).await?;
        anyhow::ensure!(page.status() == 200, "consent page answered {}", page.status());
        let html = page.text().await?;
        let csrf = hidden_field(&html, "csrf").context("no csrf field on the consent page")?;
        let request = hidden_field(&html, "request").context("no request field on the consent page")?;
        let decision = if allow { "allow" } else { "deny" };
        let res = self
            .http
            .post(format!("{issuer}/consent"))
            .form(&[("csrf", csrf.as_str()), ("request", request.as_str()), ("decision", decision)])
            .send()
            .await?;
        location(&res).with_context(|| format!("consent did not redirect (status {})", res.status()))
    }
}
