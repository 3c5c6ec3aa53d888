//! Upstream providers and `idp-logout` (issue 5, item 4; BC-SEND-09).
//!
//! The main test runs a second, real `adieu serve` process as the upstream provider (its own
//! SQLite database, a user made with `adieu user add`, adieu registered there with `adieu client
//! add`/`update`), signs a browser in to two applications of the downstream provider through it,
//! signs out at the upstream, and proves the subscribed application receives a valid logout token
//! for the right `sub`/`sid`, the other nothing, and that the audit log says `idp-logout`.
//!
//! The upstream runs on `localhost` and the downstream on `127.0.0.1`: cookies do not separate
//! ports, so two providers on one host name would overwrite each other's session cookie.
//!
//! The other tests use a small in-process upstream whose tokens the test signs, to show each way
//! a callback or an upstream logout token is refused.

use crate::support::*;
use adieu_core::initiator::{Initiator, InitiatorSubscription};
use adieu_core::store::DeliveryFilter;
use adieu_server::settings::{Secret, UpstreamSettings};
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Browser, TestClient, TestOp, hidden_field, location, query_param};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_adieu");
const ADMIN: &str = "admin-token-for-upstream-tests-0123456789";
const WAIT: Duration = Duration::from_secs(20);
const CAROL_PASSWORD: &str = "carol's long password";

// --- The real upstream: a second `adieu serve` ------------------------------------------------

struct RealUpstream {
    dir: tempfile::TempDir,
    port: u16,
    issuer: String,
    _child: Child,
}

impl RealUpstream {
    fn command(dir: &Path, port: u16) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(dir)
            .env_remove("ADIEU_CONFIG")
            .env_remove("ADIEU_DATABASE_URL")
            .env("ADIEU_LISTEN", format!("127.0.0.1:{port}"))
            // A loopback issuer: the development profile (plain http, loopback logout URIs).
            .env("ADIEU_ISSUER", format!("http://localhost:{port}"))
            .kill_on_drop(true);
        c
    }

    async fn start() -> RealUpstream {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Self::command(dir.path(), port)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
            .spawn()
            .unwrap();
        let health = format!("http://127.0.0.1:{port}/healthz");
        for _ in 0..300 {
            if reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) {
                return RealUpstream { issuer: format!("http://localhost:{port}"), dir, port, _child: child };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the upstream adieu serve did not become healthy");
    }

    /// Runs an admin command on the upstream's database; panics unless it succeeds.
    async fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Self::command(self.dir.path(), self.port)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = child.wait_with_output().await.unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "adieu {args:?} failed: {stderr}");
        stdout.into_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }
}

fn settings_for(id: &str, issuer: &str, secret: &str) -> UpstreamSettings {
    UpstreamSettings {
        id: id.into(),
        issuer: issuer.into(),
        client_id: "downstream".into(),
        client_secret: Some(Secret(secret.into())),
        client_secret_env: None,
        display_name: format!("{id} Corp"),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
    }
}

/// Pulls the first upstream button's link out of the sign-in page.
fn upstream_button(html: &str) -> Option<String> {
    let marker = "class=\"button secondary\" href=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&#x2f;", "/").replace("&amp;", "&").replace("&#x3d;", "=").replace("&#x2b;", "+"))
}

/// From the downstream's authorization endpoint for `app` to the upstream button's redirect:
/// returns the upstream authorization URL the browser is sent to.
async fn go_to_upstream(browser: &Browser, down: &TestOp, app: &TestClient) -> String {
    let mut url = url::Url::parse(&down.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(auth_params(app, &[]));
    let res = browser.http.get(url).send().await.unwrap();
    let login = location(&res).unwrap();
    assert!(login.contains("/login?request="), "{login}");
    let html = browser.get(&down.issuer, &login).await.unwrap().text().await.unwrap();
    let href = upstream_button(&html).expect("the sign-in page offers the upstream");
    assert!(html.contains("Sign in with"), "{html}");
    let res = browser.get(&down.issuer, &href).await.unwrap();
    location(&res).unwrap()
}

/// Signs in at the real upstream's own sign-in page and returns the redirect back to the
/// downstream's callback.
async fn sign_in_at_real_upstream(browser: &Browser, up: &RealUpstream, authorize_url: &str) -> String {
    let res = browser.http.get(authorize_url).send().await.unwrap();
    let login = location(&res).unwrap();
    let html = browser.get(&up.issuer, &login).await.unwrap().text().await.unwrap();
    let csrf = hidden_field(&html, "csrf").unwrap();
    let request = hidden_field(&html, "request").unwrap();
    let res = browser
        .http
        .post(format!("{}/login", up.issuer))
        .form(&[("username", "carol"), ("password", CAROL_PASSWORD), ("csrf", &csrf), ("request", &request)])
        .send()
        .await
        .unwrap();
    location(&res).unwrap()
}

/// Proves (issue 5, "What must be shown"): signing in through a real upstream `adieu serve`, then
/// signing out there, reaches the downstream's application subscribed to `idp-logout` with a
/// valid logout token for the right `sub` and `sid` (BC-SEND-09), reaches nothing else, and the
/// downstream's audit log names `idp-logout`.
#[tokio::test]
async fn bc_send_09_sign_out_at_a_real_upstream_reaches_the_downstream_applications() {
    let up = RealUpstream::start().await;
    up.cli(
        &["user", "add", "carol", "--email", "carol@corp.example", "--password-stdin"],
        Some(&format!("{CAROL_PASSWORD}\n")),
    )
    .await;
    let out = up
        .cli(
            &[
                "client",
                "add",
                "--name",
                "Downstream adieu",
                "--client-id",
                "downstream",
                "--redirect-uri",
                "http://127.0.0.1:1/placeholder",
            ],
            None,
        )
        .await;
    let secret = out.lines().find_map(|l| l.strip_prefix("client_secret: ")).expect("client secret").to_owned();

    let upstream_issuer = up.issuer.clone();
    let down = TestOp::start_with(|s| {
        s.admin_token = Some(Secret(ADMIN.into()));
        s.delivery.logout_wait_ms = 0;
        s.upstreams = vec![settings_for("corp", &upstream_issuer, &secret)];
    })
    .await
    .unwrap();
    // Now that the downstream's address is known: its callback and back-channel endpoint.
    let callback = down.url("/upstream/corp/callback");
    let backchannel = down.url("/upstream/corp/backchannel-logout");
    up.cli(
        &[
            "client",
            "update",
            "downstream",
            "--redirect-uri",
            &callback,
            "--backchannel-logout-uri",
            &backchannel,
            "--backchannel-logout-session-required",
            "true",
        ],
        None,
    )
    .await;

    // App A subscribes to idp-logout (every `custom` subscription does); app B has no logout URI.
    let r_a = Receiver::start(Behavior::Status(200)).await;
    let app_a = down
        .add_bc_client("app-a", "http://127.0.0.1:9201/cb", &r_a.uri, InitiatorSubscription::default())
        .await
        .unwrap();
    let app_b = down.add_simple_client("app-b", "http://127.0.0.1:9202/cb").await.unwrap();

    // Sign in to app A through the upstream (its own password page), then app B by SSO.
    let browser = Browser::new();
    let to_upstream = go_to_upstream(&browser, &down, &app_a).await;
    assert!(to_upstream.starts_with(&format!("{}/authorize?", up.issuer)), "{to_upstream}");
    for (k, v) in [("code_challenge_method", "S256"), ("client_id", "downstream"), ("redirect_uri", callback.as_str())]
    {
        assert_eq!(query_param(&to_upstream, k).as_deref(), Some(v), "{k}");
    }
    assert!(query_param(&to_upstream, "nonce").is_some() && query_param(&to_upstream, "state").is_some());
    let back = sign_in_at_real_upstream(&browser, &up, &to_upstream).await;
    assert!(back.starts_with(&callback), "{back}");
    let res = browser.http.get(&back).send().await.unwrap();
    let to_app = location(&res).unwrap_or_else(|e| panic!("callback failed: {e}; upstream log: {}", up.log()));
    assert!(to_app.starts_with(&app_a.redirect_uri), "{to_app}");
    let t_a = exchange(&down, &app_a, &query_param(&to_app, "code").unwrap(), &[]).await;
    let code_b = get_code(&browser, &down, &app_b, &[]).await;
    let t_b = exchange(&down, &app_b, &code_b, &[]).await;
    let claims_a = verify_id_token(&down, t_a["id_token"].as_str().unwrap(), "app-a").await;
    let sid_b = peek_claims(t_b["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();

    // The downstream made a local account for carol: no password, linked to the upstream account.
    let carol = down.state.store.user_by_login("carol").await.unwrap().expect("local user from the upstream");
    assert_eq!(claims_a["sub"], carol.id.as_str());
    assert_eq!(carol.password_hash, adieu_core::upstream::NO_PASSWORD);

    // Sign out at the upstream (RP-Initiated Logout there, confirmed by the user).
    let html = browser.get(&up.issuer, "/logout").await.unwrap().text().await.unwrap();
    let csrf = hidden_field(&html, "csrf").expect("the upstream asks to confirm");
    let res = browser
        .http
        .post(format!("{}/logout/confirm", up.issuer))
        .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The upstream's back-channel logout ended carol's downstream session; app A is told.
    let got = r_a.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "app A receives a logout token; upstream log: {}", up.log());
    let lt = verify_logout_token(&down, got[0].logout_token(), "app-a").await;
    assert_eq!(lt["sub"], carol.id.as_str(), "the downstream's sub for carol");
    assert_eq!(lt["sid"], claims_a["sid"], "BC-SID-03: the sid of app A's ID token");
    assert!(!signed_in(&browser, &down).await, "the downstream session ended");

    // Nothing for app B: once the queue is empty, no delivery names its sid.
    let deadline = tokio::time::Instant::now() + WAIT;
    while down.state.store.queue_stats().await.unwrap().depth > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the delivery queue did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliveries = down.state.store.deliveries(&DeliveryFilter::default()).await.unwrap();
    assert!(deliveries.iter().all(|d| d.sid.as_str() != sid_b), "no delivery for app B");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].initiator, Initiator::IdpLogout);

    // The audit log says idp-logout, and records the upstream logout.
    let logs: Value = reqwest::Client::new()
        .get(down.url("/api/v1/logs?type=session.ended"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ended = logs.as_array().or_else(|| logs["events"].as_array()).expect("a list of events").clone();
    assert_eq!(ended.len(), 1, "{logs}");
    assert_eq!(ended[0]["detail"]["initiator"], "idp-logout");
    let logs: Value = reqwest::Client::new()
        .get(down.url("/api/v1/logs?type=upstream.logout"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ev = logs.as_array().or_else(|| logs["events"].as_array()).expect("a list of events").clone();
    assert_eq!(
        (ev[0]["detail"]["upstream"].as_str(), ev[0]["detail"]["sessions_ended"].as_u64()),
        (Some("corp"), Some(1))
    );

    // Signing in again through the upstream finds the same local user (linked, not duplicated).
    let browser = Browser::new();
    let to_upstream = go_to_upstream(&browser, &down, &app_a).await;
    let back = sign_in_at_real_upstream(&browser, &up, &to_upstream).await;
    let to_app = location(&browser.http.get(&back).send().await.unwrap()).unwrap();
    let t = exchange(&down, &app_a, &query_param(&to_app, "code").unwrap(), &[]).await;
    assert_eq!(peek_claims(t["id_token"].as_str().unwrap())["sub"], carol.id.as_str());
}

// --- An in-process upstream whose tokens the test signs -----------------------------------------

/// A fixed Ed25519 key (PKCS#8 v1: a fixed prefix, then the 32-byte seed).
fn ed_key(seed: u8) -> EncodingKey {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(&[seed; 32]);
    EncodingKey::from_ed_der(&der)
}

/// A token request: its `Authorization` header and its form.
type TokenRequest = (Option<String>, Vec<(String, String)>);

#[derive(Default)]
struct FakeInner {
    /// Claims of the next ID token the token endpoint issues.
    id_token: Mutex<Value>,
    /// Each token request.
    token_requests: Mutex<Vec<TokenRequest>>,
    /// Sign the next ID tokens with a key the upstream does not publish (same `kid`).
    forge: std::sync::atomic::AtomicBool,
}

struct FakeUpstream {
    issuer: String,
    key: EncodingKey,
    inner: Arc<FakeInner>,
}

impl FakeUpstream {
    async fn start() -> FakeUpstream {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let key = ed_key(7);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).unwrap();
        jwk.common.key_id = Some("fake-1".into());
        let inner = Arc::new(FakeInner::default());
        let doc = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        });
        let jwks = json!({ "keys": [jwk] });
        let token_key = key.clone();
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(move || async move { axum::Json(doc) }))
            .route("/jwks", get(move || async move { axum::Json(jwks) }))
            .route(
                "/token",
                post(move |State(inner): State<Arc<FakeInner>>, headers: HeaderMap, body: String| async move {
                    let form = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    inner.token_requests.lock().unwrap().push((auth, form));
                    let claims = inner.id_token.lock().unwrap().clone();
                    let forged = inner.forge.load(std::sync::atomic::Ordering::SeqCst);
                    let key = if forged { ed_key(9) } else { token_key.clone() };
                    let id_token = sign(&key, &claims, None);
                    axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}))
                }),
            )
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeUpstream { issuer, key, inner }
    }

    /// ID token claims for `sub` with `nonce`, valid now.
    fn id_claims(&self, sub: &str, sid: &str, nonce: &str) -> Value {
        let now = now_secs();
        json!({"iss": self.issuer, "aud": "downstream", "sub": sub, "sid": sid, "nonce": nonce,
               "iat": now, "exp": now + 300, "preferred_username": "dana", "email": "dana@fake.example",
               "email_verified": true})
    }

    /// Logout token claims, valid now.
    fn logout_claims(&self, sub: Option<&str>, sid: Option<&str>, iat: i64) -> Value {
        let mut c = json!({"iss": self.issuer, "aud": "downstream", "iat": iat, "exp": iat + 120,
                           "jti": adieu_server::crypto::random_id(),
                           "events": {"http://schemas.openid.net/event/backchannel-logout": {}}});
        if let Some(s) = sub {
            c["sub"] = json!(s);
        }
        if let Some(s) = sid {
            c["sid"] = json!(s);
        }
        c
    }
}

fn sign(key: &EncodingKey, claims: &Value, typ: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("fake-1".into());
    h.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

#[allow(clippy::disallowed_methods)] // the fake upstream signs on the wall clock, as a real one does
fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct FakeScene {
    fake: FakeUpstream,
    down: TestOp,
    app: TestClient,
    r_app: Receiver,
}

async fn fake_scene() -> FakeScene {
    let fake = FakeUpstream::start().await;
    let issuer = fake.issuer.clone();
    let down = TestOp::start_with(|s| {
        s.admin_token = Some(Secret(ADMIN.into()));
        s.delivery.logout_wait_ms = 0;
        s.upstreams = vec![settings_for("fake", &issuer, "fake secret/with:odd chars")];
    })
    .await
    .unwrap();
    let r_app = Receiver::start(Behavior::Status(200)).await;
    let app = down
        .add_bc_client("app-a", "http://127.0.0.1:9301/cb", &r_app.uri, InitiatorSubscription::default())
        .await
        .unwrap();
    FakeScene { fake, down, app, r_app }
}

/// What the downstream sent the browser to the fake upstream with.
struct Started {
    state: String,
    nonce: String,
    challenge: String,
}

async fn start_at_fake(browser: &Browser, s: &FakeScene) -> Started {
    let url = go_to_upstream(browser, &s.down, &s.app).await;
    assert!(url.starts_with(&format!("{}/authorize?", s.fake.issuer)), "{url}");
    Started {
        state: query_param(&url, "state").unwrap(),
        nonce: query_param(&url, "nonce").unwrap(),
        challenge: query_param(&url, "code_challenge").unwrap(),
    }
}

async fn callback(browser: &Browser, s: &FakeScene, state: &str) -> reqwest::Response {
    let mut url = url::Url::parse(&s.down.url("/upstream/fake/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("code", "the-code")
        .append_pair("state", state)
        .append_pair("iss", &s.fake.issuer);
    browser.http.get(url).send().await.unwrap()
}

/// Signs a browser in through the fake upstream as `sub` in upstream session `sid`; returns the
/// browser and the code for the application.
async fn signed_in_through_fake(s: &FakeScene, sub: &str, sid: &str) -> (Browser, String) {
    let browser = Browser::new();
    let st = start_at_fake(&browser, s).await;
    *s.fake.inner.id_token.lock().unwrap() = s.fake.id_claims(sub, sid, &st.nonce);
    let res = callback(&browser, s, &st.state).await;
    let to_app = location(&res).unwrap();
    assert!(to_app.starts_with(&s.app.redirect_uri), "{to_app}");
    (browser, query_param(&to_app, "code").unwrap())
}

async fn post_logout_token(s: &FakeScene, id: &str, token: &str) -> (u16, Option<String>) {
    let res = reqwest::Client::new()
        .post(s.down.url(&format!("/upstream/{id}/backchannel-logout")))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let cc = res.headers().get("cache-control").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (res.status().as_u16(), cc)
}

/// A completed sign-in: the code exchange used PKCE S256 and client_secret_basic with the
/// form-encoded secret (RFC 6749 §2.3.1); the new local user comes from the ID token's claims,
/// with its verified email; the session records where the browser signed in from, as a password
/// sign-in does.
#[tokio::test]
async fn upstream_sign_in_uses_pkce_and_client_secret_basic_and_creates_the_user() {
    let s = fake_scene().await;
    let browser = Browser::with_user_agent(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 \
         Safari/605.1.15",
    );
    let st = start_at_fake(&browser, &s).await;
    *s.fake.inner.id_token.lock().unwrap() = s.fake.id_claims("up-dana", "up-sid-1", &st.nonce);
    let res = callback(&browser, &s, &st.state).await;
    assert!(location(&res).unwrap().starts_with(&s.app.redirect_uri));
    let (auth, form) = s.fake.inner.token_requests.lock().unwrap()[0].clone();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(adieu_server::crypto::pkce_s256(&field("code_verifier").unwrap()), st.challenge, "PKCE S256");
    assert_eq!(field("redirect_uri").unwrap(), s.down.url("/upstream/fake/callback"));
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .decode(auth.unwrap().strip_prefix("Basic ").unwrap())
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap();
    assert_eq!(basic, "downstream:fake+secret%2Fwith%3Aodd+chars");
    let dana = s.down.state.store.user_by_upstream(&s.fake.issuer, "up-dana").await.unwrap().unwrap();
    assert_eq!((dana.username.as_str(), dana.email.as_deref()), ("dana", Some("dana@fake.example")));
    assert!(signed_in(&browser, &s.down).await);
    let sessions = s.down.state.store.open_sessions_of_user(&dana.id).await.unwrap();
    let devices = s.down.state.store.session_devices(std::slice::from_ref(&sessions[0].id)).await.unwrap();
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0].1.describe(), "Safari on macOS \u{b7} 127.0.0.1");
}

/// The state must be this browser's: a wrong state, or the right state from another browser
/// (login CSRF), is refused without a session; the rightful browser can still finish.
#[tokio::test]
async fn upstream_callback_state_mismatch_is_refused() {
    let s = fake_scene().await;
    let browser = Browser::new();
    let st = start_at_fake(&browser, &s).await;
    *s.fake.inner.id_token.lock().unwrap() = s.fake.id_claims("up-dana", "sid-x", &st.nonce);
    let res = callback(&browser, &s, "not-the-state").await;
    assert_eq!(res.status(), 400);
    let attacker_victim = Browser::new();
    let res = callback(&attacker_victim, &s, &st.state).await;
    assert_eq!(res.status(), 400, "a state this browser was not given");
    assert!(!signed_in(&attacker_victim, &s.down).await);
    assert!(s.fake.inner.token_requests.lock().unwrap().is_empty(), "no code was exchanged");
    // The state cookie survives only in its own browser; start again and finish there.
    let st = start_at_fake(&browser, &s).await;
    *s.fake.inner.id_token.lock().unwrap() = s.fake.id_claims("up-dana", "sid-x", &st.nonce);
    assert!(location(&callback(&browser, &s, &st.state).await).unwrap().starts_with(&s.app.redirect_uri));
}

/// A callback works once: replaying it (the same state and code) is refused.
#[tokio::test]
async fn upstream_callback_replay_is_refused() {
    let s = fake_scene().await;
    let browser = Browser::new();
    let st = start_at_fake(&browser, &s).await;
    *s.fake.inner.id_token.lock().unwrap() = s.fake.id_claims("up-dana", "sid-x", &st.nonce);
    let first = callback(&browser, &s, &st.state).await;
    assert!(first.status().is_redirection());
    // Even with the state cookie put back, the pending sign-in is gone.
    let replay = Browser::new();
    let cookie = format!("adieu_upstream={}", st.state);
    let mut url = url::Url::parse(&s.down.url("/upstream/fake/callback")).unwrap();
    url.query_pairs_mut().append_pair("code", "the-code").append_pair("state", &st.state);
    let res = replay.http.get(url).header("cookie", cookie).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(s.fake.inner.token_requests.lock().unwrap().len(), 1, "the code was exchanged once");
}

/// Core §3.1.3.7: an ID token with another nonce (injected or replayed), from another issuer, for
/// another audience, or signed by a key the upstream does not publish is refused, and no session
/// or user is made. An `iss` parameter naming another issuer (RFC 9207 mix-up) is refused too.
#[tokio::test]
async fn upstream_id_token_nonce_issuer_audience_and_signature_are_checked() {
    let s = fake_scene().await;
    let cases = [
        ("nonce", "nonce", json!("another-sign-ins-nonce")),
        ("issuer", "iss", json!("https://evil.example")),
        ("audience", "aud", json!("another-client")),
        ("expired", "exp", json!(now_secs() - 3600)),
    ];
    for (what, claim, value) in cases {
        let browser = Browser::new();
        let st = start_at_fake(&browser, &s).await;
        let mut claims = s.fake.id_claims("up-eve", "sid", &st.nonce);
        claims[claim] = value;
        *s.fake.inner.id_token.lock().unwrap() = claims;
        let res = callback(&browser, &s, &st.state).await;
        assert_eq!(res.status(), 400, "{what}");
        assert!(!signed_in(&browser, &s.down).await, "{what}");
    }
    // Signed by a key the upstream does not publish.
    s.fake.inner.forge.store(true, std::sync::atomic::Ordering::SeqCst);
    let browser = Browser::new();
    let st = start_at_fake(&browser, &s).await;
    *s.fake.inner.id_token.lock().unwrap() = s.fake.id_claims("up-eve", "sid", &st.nonce);
    assert_eq!(callback(&browser, &s, &st.state).await.status(), 400, "forged signature");
    s.fake.inner.forge.store(false, std::sync::atomic::Ordering::SeqCst);
    // RFC 9207: the response says it comes from another issuer.
    let browser = Browser::new();
    let st = start_at_fake(&browser, &s).await;
    *s.fake.inner.id_token.lock().unwrap() = s.fake.id_claims("up-eve", "sid", &st.nonce);
    let mut url = url::Url::parse(&s.down.url("/upstream/fake/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("code", "c")
        .append_pair("state", &st.state)
        .append_pair("iss", "https://evil.example");
    assert_eq!(browser.http.get(url).send().await.unwrap().status(), 400, "mix-up");
    assert!(s.down.state.store.user_by_upstream(&s.fake.issuer, "up-eve").await.unwrap().is_none());
}

/// BC-RP-02/12: a logout token with a forged signature is refused with 400 and ends nothing; a
/// valid one naming the session's upstream `sid` ends it with `idp-logout` and the application is
/// told (BC-SEND-09), and a resource server introspecting the application's access token sees it
/// inactive (issue 16); a replay is refused (BC-RP-08).
#[tokio::test]
async fn bc_rp_02_forged_upstream_logout_token_is_400_and_a_valid_one_ends_the_session() {
    let s = fake_scene().await;
    let (browser, code) = signed_in_through_fake(&s, "up-dana", "up-sid-1").await;
    let t = exchange(&s.down, &s.app, &code, &[]).await;
    let sid = peek_claims(t["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
    let rs = s.down.add_simple_client("resource-server", "http://127.0.0.1:9302/cb").await.unwrap();
    let introspect = || async {
        let req = reqwest::Client::new().post(s.down.url("/introspect")).basic_auth(&rs.id, rs.secret.as_deref());
        let res = req.form(&[("token", t["access_token"].as_str().unwrap())]).send().await.unwrap();
        res.json::<Value>().await.unwrap()["active"].clone()
    };
    assert_eq!(introspect().await, true);

    let claims = s.fake.logout_claims(Some("up-dana"), Some("up-sid-1"), now_secs());
    let forged = sign(&ed_key(9), &claims, Some("logout+jwt"));
    assert_eq!(post_logout_token(&s, "fake", &forged).await, (400, Some("no-store".into())));
    assert!(signed_in(&browser, &s.down).await, "a forged token ends nothing");
    // Another upstream session's sid ends nothing either, but is a success (BC-RP-14).
    let other = sign(&s.fake.key, &s.fake.logout_claims(Some("up-dana"), Some("up-sid-2"), now_secs()), None);
    assert_eq!(post_logout_token(&s, "fake", &other).await.0, 200);
    assert!(signed_in(&browser, &s.down).await);

    let valid = sign(&s.fake.key, &claims, Some("logout+jwt"));
    assert_eq!(post_logout_token(&s, "fake", &valid).await, (200, Some("no-store".into())));
    assert!(!signed_in(&browser, &s.down).await);
    assert_eq!(introspect().await, false, "idp-logout ends the access token with the session");
    let got = s.r_app.wait_for(1, WAIT).await;
    let lt = verify_logout_token(&s.down, got[0].logout_token(), "app-a").await;
    assert_eq!(lt["sid"], sid.as_str());
    let d = s.down.state.store.deliveries(&DeliveryFilter::default()).await.unwrap();
    assert_eq!(d[0].initiator, Initiator::IdpLogout);
    assert_eq!(post_logout_token(&s, "fake", &valid).await.0, 400, "BC-RP-08: replayed jti");
}

/// BC-LT-01 and BC-SEC-06: a token with only `sub` ends every session of that upstream account
/// signed in before it was issued, and not one signed in after.
#[tokio::test]
async fn bc_sec_06_a_sub_only_upstream_logout_spares_sessions_signed_in_after_its_iat() {
    let s = fake_scene().await;
    let (old_browser, _) = signed_in_through_fake(&s, "up-dana", "up-sid-1").await;
    let (other_browser, _) = signed_in_through_fake(&s, "up-dana", "up-sid-2").await;
    // A token issued before these sign-ins (a late delivery) ends none of them.
    let stale = sign(
        &s.fake.key,
        &s.fake.logout_claims(
            Some("up-dana"),
            None,
            adieu_testkit::ManualClockExt::now_ms(&s.down.clock).as_secs() - 30,
        ),
        None,
    );
    assert_eq!(post_logout_token(&s, "fake", &stale).await.0, 200);
    assert!(signed_in(&old_browser, &s.down).await && signed_in(&other_browser, &s.down).await);
    // One issued now ends both.
    s.down.clock.advance(Duration::from_secs(2));
    let fresh = sign(
        &s.fake.key,
        &s.fake.logout_claims(Some("up-dana"), None, adieu_testkit::ManualClockExt::now_ms(&s.down.clock).as_secs()),
        None,
    );
    assert_eq!(post_logout_token(&s, "fake", &fresh).await.0, 200);
    assert!(!signed_in(&old_browser, &s.down).await && !signed_in(&other_browser, &s.down).await);
}

/// An upstream id that is not configured: 404 at every upstream route.
#[tokio::test]
async fn unknown_upstream_is_404() {
    let s = fake_scene().await;
    let b = Browser::new();
    assert_eq!(b.get(&s.down.issuer, "/upstream/nope/start").await.unwrap().status(), 404);
    assert_eq!(b.get(&s.down.issuer, "/upstream/nope/callback?state=x&code=y").await.unwrap().status(), 404);
    let token = sign(&s.fake.key, &s.fake.logout_claims(Some("u"), None, now_secs()), None);
    assert_eq!(post_logout_token(&s, "nope", &token).await.0, 404);
}

/// A bad request to the back-channel endpoint answers like adieu-rp's: 400 without a token,
/// 415 for another media type.
#[tokio::test]
async fn upstream_backchannel_answers_like_the_sdk() {
    let s = fake_scene().await;
    let url = s.down.url("/upstream/fake/backchannel-logout");
    let http = reqwest::Client::new();
    let res = http.post(&url).form(&[("other", "x")]).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_request");
    let res = http.post(&url).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(res.status(), 415);
    // A logout token of another issuer's shape (wrong audience) is 400 too (BC-RP-04).
    let mut c = s.fake.logout_claims(Some("u"), None, now_secs());
    c["aud"] = json!("someone-else");
    assert_eq!(post_logout_token(&s, "fake", &sign(&s.fake.key, &c, None)).await.0, 400);
}

/// Configuration through the real binary: `client_secret_env` names an environment variable that
/// must be set; an http upstream that is not on a loopback host is refused at start.
#[tokio::test]
async fn upstream_configuration_is_validated_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[[upstreams]]\nid = \"corp\"\nissuer = \"http://localhost:1\"\nclient_id = \"adieu\"\n\
                client_secret_env = \"ADIEU_TEST_CORP_SECRET\"\ndisplay_name = \"Corp\"\n";
    std::fs::write(dir.path().join("adieu.toml"), toml).unwrap();
    let run = |env: Option<&'static str>| {
        let mut c = Command::new(BIN);
        c.current_dir(dir.path())
            .env_remove("ADIEU_ISSUER")
            .env_remove("ADIEU_DATABASE_URL")
            .env_remove("ADIEU_TEST_CORP_SECRET")
            .args(["--config", "adieu.toml", "user", "list"]);
        if let Some(v) = env {
            c.env("ADIEU_TEST_CORP_SECRET", v);
        }
        c.output()
    };
    let out = run(None).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ADIEU_TEST_CORP_SECRET"));
    let out = run(Some("from-the-environment")).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.path().join("adieu.toml"), toml.replace("http://localhost:1", "http://corp.example")).unwrap();
    let out = run(Some("x")).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https"));
}
