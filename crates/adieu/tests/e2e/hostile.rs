//! Hostile clients against the real `adieu serve` (SQLite and PostgreSQL): for each endpoint that
//! writes, 1,000 requests that the client resets (RST, `SO_LINGER` 0) at a random moment within
//! 0–2 ms of sending them. Afterwards a sign-in, a logout and its back-channel delivery must
//! succeed within 2 s, and `/readyz` must be ready (issue 11: aborted requests used to leave the
//! SQLite writer inside a transaction, and every write answered 500 until a restart).
//!
//! The hostile traffic comes from 127.0.0.2, the checks from 127.0.0.1, so that the per-address
//! limits the hostile traffic runs into do not refuse the checks.

use crate::binary::{free_port, serve_with};
use crate::postgres::Database;
use crate::support::peek_claims;
use adieu_testkit::receiver::{Behavior, Receiver};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::Child;

pub(crate) const ADMIN: &str = "hostile-e2e-admin-token-0123456789abcdef";
pub(crate) const REGISTRATION: &str = "hostile-e2e-registration-token-0123456789";
pub(crate) const PASSWORD: &str = "correct horse battery";
pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/cb";
/// The PKCE verifier of every code the public client asks for.
pub(crate) const VERIFIER: &str = "hostile-verifier-0123456789-0123456789-0123456789";

/// A running `adieu serve` with its clients and users.
pub(crate) struct Op {
    pub(crate) base: String,
    pub(crate) addr: SocketAddr,
    pub(crate) dir: tempfile::TempDir,
    /// The server process (killed when this is dropped).
    pub(crate) child: Child,
    pub(crate) conf_secret: String,
    pub(crate) receiver: Receiver,
    pub(crate) http: reqwest::Client,
    _db: Option<Database>,
}

impl Op {
    /// Starts a provider on SQLite (`db` = `None`) or on the PostgreSQL schema `db`, with extra
    /// `ADIEU_…` settings; registers a public client `pub`, a confidential client `conf`
    /// (back-channel logout to a receiver, every initiator) and the users alice, bob and carol.
    pub(crate) async fn start(db: Option<Database>, env: &[(&str, &str)]) -> Op {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = db.as_ref().map(Database::url);
        let mut all = vec![
            ("ADIEU_ADMIN_TOKEN", ADMIN),
            ("ADIEU_REGISTRATION_TOKEN", REGISTRATION),
            ("ADIEU_LOGIN__MAX_ATTEMPTS_PER_ADDRESS", "100000"),
            ("ADIEU_DELIVERY__LOGOUT_WAIT_MS", "200"),
        ];
        if let Some(u) = &url {
            all.push(("ADIEU_DATABASE_URL", u.as_str()));
        }
        all.extend_from_slice(env);
        let child = serve_with(dir.path(), port, &all).await;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let receiver = Receiver::start(Behavior::Status(200)).await;
        let mut op = Op {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            base,
            dir,
            child,
            conf_secret: String::new(),
            receiver,
            http,
            _db: db,
        };
        op.seed().await;
        op
    }

    async fn seed(&mut self) {
        let public = json!({
            "client_id": "pub", "client_name": "Public", "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        });
        let (status, _) = self.api(reqwest::Method::POST, "/api/v1/clients", Some(public)).await;
        assert_eq!(status, 201);
        let conf = json!({
            "client_id": "conf", "client_name": "Confidential", "redirect_uris": [REDIRECT],
            "backchannel_logout_uri": self.receiver.uri,
            "backchannel_logout_initiators": {"mode": "all"},
        });
        let (status, body) = self.api(reqwest::Method::POST, "/api/v1/clients", Some(conf)).await;
        assert_eq!(status, 201, "{body}");
        self.conf_secret = body["client_secret"].as_str().unwrap().to_owned();
        for name in ["alice", "bob", "carol"] {
            let user = json!({"username": name, "password": PASSWORD});
            let (status, body) = self.api(reqwest::Method::POST, "/api/v1/users", Some(user)).await;
            assert_eq!(status, 201, "{body}");
        }
    }

    /// A management API call with the admin token.
    pub(crate) async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Signs `user` in through the form; the session cookie's value, or the status if refused.
    pub(crate) async fn sign_in(&self, user: &str, password: &str) -> Result<String, u16> {
        let res = self
            .http
            .post(format!("{}/login", self.base))
            .header("cookie", "adieu_csrf=hostile-csrf")
            .form(&[("csrf", "hostile-csrf"), ("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("adieu_session=").map(|v| v.split(';').next().unwrap_or("").to_owned()));
        cookie.filter(|c| !c.is_empty()).ok_or(res.status().as_u16())
    }

    /// An authorization code for `client` in the session of `cookie`.
    pub(crate) async fn code(&self, cookie: &str, client: &str) -> String {
        let challenge = adieu_server::crypto::pkce_s256(VERIFIER);
        let res = self
            .http
            .get(format!("{}/authorize", self.base))
            .query(&[
                ("client_id", client),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "openid offline_access"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .header("cookie", format!("adieu_session={cookie}"))
            .send()
            .await
            .unwrap();
        let mut loc = res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        // `offline_access` is granted after consent: the user allows it the first time.
        if let Some(request) = loc.strip_prefix("/consent?request=") {
            let form = [("csrf", "hostile-csrf"), ("request", request), ("decision", "allow")];
            let res = self
                .http
                .post(format!("{}/consent", self.base))
                .header("cookie", format!("adieu_session={cookie}; adieu_csrf=hostile-csrf"))
                .form(&form)
                .send()
                .await
                .unwrap();
            loc = res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        }
        adieu_testkit::query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {} {loc}", res.status()))
    }

    /// Redeems a code of `conf`: the token response.
    pub(crate) async fn exchange(&self, code: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth("conf", Some(&self.conf_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    /// Signs alice in, in a new session, to `conf` (code and tokens): the session cookie and the
    /// `sid` of `conf` in it. `what` names the step in a failure.
    pub(crate) async fn sign_in_to_conf(&self, what: &str) -> (String, String) {
        let cookie = self.sign_in("alice", PASSWORD).await.unwrap_or_else(|s| panic!("{what}: sign-in answered {s}"));
        let code = self.code(&cookie, "conf").await;
        let (status, tokens) = self.exchange(&code).await;
        assert_eq!(status, 200, "{what}: token endpoint: {tokens}");
        let sid = peek_claims(tokens["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
        (cookie, sid)
    }

    /// Confirms the logout of the session of `cookie`.
    pub(crate) async fn log_out(&self, cookie: &str) -> u16 {
        self.http
            .post(format!("{}/logout/confirm", self.base))
            .header("cookie", format!("adieu_session={cookie}; adieu_csrf=hostile-csrf"))
            .form(&[("csrf", "hostile-csrf"), ("confirm", "yes")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// `/readyz`'s status.
    pub(crate) async fn readyz(&self) -> u16 {
        match self.http.get(format!("{}/readyz", self.base)).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Proves the provider works: a sign-in, a code for `conf` and its tokens, a logout, and the
    /// logout's back-channel delivery (the token names the session's `sid`), with `/readyz`
    /// ready. Returns how long it took.
    pub(crate) async fn works(&self, what: &str) -> Duration {
        let start = Instant::now();
        assert_eq!(self.readyz().await, 200, "{what}: /readyz");
        let (cookie, sid) = self.sign_in_to_conf(what).await;
        assert_eq!(self.log_out(&cookie).await, 200, "{what}: logout");
        let deadline = start + Duration::from_secs(10);
        loop {
            let got = self.receiver.received().iter().any(|r| peek_claims(r.logout_token())["sid"] == sid.as_str());
            if got {
                return start.elapsed();
            }
            assert!(Instant::now() < deadline, "{what}: the logout was not delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A small PRNG (xorshift), enough to spread reset moments.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Sends `raw` from 127.0.0.2 and resets the connection `delay` after the request went out.
pub(crate) async fn send_and_reset(addr: SocketAddr, raw: Arc<Vec<u8>>, delay: Duration) {
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else { return };
    if sock.bind("127.0.0.2:0".parse().unwrap()).is_err() {
        return;
    }
    let Ok(mut s) = sock.connect(addr).await else { return };
    if s.write_all(&raw).await.is_err() {
        return;
    }
    let sent = Instant::now();
    if delay >= Duration::from_millis(1) {
        tokio::time::sleep(delay).await;
    } else {
        while sent.elapsed() < delay {
            tokio::task::yield_now().await;
        }
    }
    let _ = s.set_zero_linger();
    drop(s);
}

/// Sends every request of `requests` with a reset 0–2 ms after it, 50 at a time.
pub(crate) async fn reset_flood(addr: SocketAddr, requests: Vec<Vec<u8>>, seed: u64) {
    let mut rng = Rng::new(seed);
    let sem = Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = Vec::with_capacity(requests.len());
    for raw in requests {
        let delay = Duration::from_micros(rng.next() % 2001);
        let permit = sem.clone().acquire_owned().await.unwrap();
        let raw = Arc::new(raw);
        tasks.push(tokio::spawn(async move {
            send_and_reset(addr, raw, delay).await;
            drop(permit);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// An HTTP/1.1 request as bytes.
pub(crate) fn raw(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The hostile batches, one per endpoint group that writes, each followed by the check.
async fn hostile_suite(op: Op, label: &str) {
    const N: usize = 1000;
    let base_time = Instant::now();
    op.works(&format!("{label}: before")).await;
    // Sessions and codes the hostile requests use.
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(op.sign_in("alice", PASSWORD).await.unwrap());
    }
    let mut pub_codes = Vec::new();
    let mut conf_codes = Vec::new();
    for (i, s) in sessions.iter().cycle().take(200).enumerate() {
        if i % 2 == 0 {
            pub_codes.push(op.code(s, "pub").await);
        } else {
            conf_codes.push(op.code(s, "conf").await);
        }
    }
    let mut refresh = Vec::new();
    for c in conf_codes.drain(..20) {
        let (status, t) = op.exchange(&c).await;
        assert_eq!(status, 200, "{t}");
        refresh.push(t["refresh_token"].as_str().unwrap().to_owned());
    }
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("conf:{}", op.conf_secret))
    );
    let bearer_admin = format!("Bearer {ADMIN}");
    let bearer_reg = format!("Bearer {REGISTRATION}");
    let challenge = adieu_server::crypto::pkce_s256(VERIFIER);
    let carol: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(op.sign_in("carol", PASSWORD).await.unwrap());
        }
        v
    };

    type Batch<'a> = (&'a str, Box<dyn Fn(usize) -> Vec<u8> + 'a>);
    let batches: Vec<Batch<'_>> = vec![
        (
            "token (public client)",
            Box::new(|i| {
                let code = &pub_codes[i % pub_codes.len()];
                let body = form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", "pub"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ]);
                raw("POST", "/token", &[FORM], &body)
            }),
        ),
        (
            "token (confidential client)",
            Box::new(|i| {
                let body = if i % 2 == 0 {
                    form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh[i % refresh.len()])])
                } else {
                    form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &conf_codes[i % conf_codes.len()]),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", VERIFIER),
                    ])
                };
                raw("POST", "/token", &[FORM, ("Authorization", &basic)], &body)
            }),
        ),
        (
            "authorize with a session",
            Box::new(|i| {
                let q = form(&[
                    ("client_id", if i % 2 == 0 { "conf" } else { "pub" }),
                    ("redirect_uri", REDIRECT),
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ]);
                let cookie = format!("adieu_session={}", sessions[i % sessions.len()]);
                raw("GET", &format!("/authorize?{q}"), &[("Cookie", &cookie)], "")
            }),
        ),
        (
            "login",
            Box::new(|i| {
                let body = form(&[("csrf", "c"), ("username", "bob"), ("password", &format!("wrong {i}"))]);
                raw("POST", "/login", &[FORM, ("Cookie", "adieu_csrf=c")], &body)
            }),
        ),
        (
            "account forms",
            Box::new(|i| {
                let cookie = format!("adieu_session={}; adieu_csrf=c", carol[i % carol.len()]);
                let (path, body) = match i % 3 {
                    0 => (
                        "/account/email",
                        form(&[("csrf", "c"), ("email", "c@example.com"), ("current_password", "no")]),
                    ),
                    1 => ("/account/sessions/revoke", form(&[("csrf", "c"), ("session", "no-such-session")])),
                    _ => ("/account/sign-out-everywhere", form(&[("csrf", "c")])),
                };
                raw("POST", path, &[FORM, ("Cookie", &cookie)], &body)
            }),
        ),
        (
            "management API",
            Box::new(|i| {
                if i % 2 == 0 {
                    let body = json!({"client_name": format!("H{i}"), "redirect_uris": [REDIRECT]}).to_string();
                    raw("POST", "/api/v1/clients", &[JSON, ("Authorization", &bearer_admin)], &body)
                } else {
                    raw("DELETE", "/api/v1/users/no-such-user/sessions", &[("Authorization", &bearer_admin)], "")
                }
            }),
        ),
        (
            "register",
            Box::new(|i| {
                let body = json!({"client_name": format!("R{i}"), "redirect_uris": [REDIRECT]}).to_string();
                raw("POST", "/register", &[JSON, ("Authorization", &bearer_reg)], &body)
            }),
        ),
        (
            "logout confirmation",
            Box::new(|i| {
                let cookie = format!("adieu_session={}; adieu_csrf=c", sessions[i % sessions.len()]);
                raw(
                    "POST",
                    "/logout/confirm",
                    &[FORM, ("Cookie", &cookie)],
                    &form(&[("csrf", "c"), ("confirm", "yes")]),
                )
            }),
        ),
    ];
    for (seed, (name, make)) in batches.iter().enumerate() {
        let requests: Vec<Vec<u8>> = (0..N).map(make).collect();
        let sent = Instant::now();
        reset_flood(op.addr, requests, seed as u64 + 7).await;
        let flood = sent.elapsed();
        let took = op.works(&format!("{label}: after {N} reset requests to {name}")).await;
        println!("{label}: {N} reset requests to {name} in {flood:?}; then sign-in, logout and delivery in {took:?}");
        assert!(
            took < Duration::from_secs(2),
            "{label}: after resets to {name}, sign-in + logout + delivery took {took:?} (over 2 s)"
        );
    }
    println!("{label}: whole suite {:?}", base_time.elapsed());
    let log = std::fs::read_to_string(op.dir.path().join(format!("serve-{}.log", op.addr.port()))).unwrap_or_default();
    assert!(!log.contains("non-zero transaction depth"), "{label}: the writer was left inside a transaction");
}

/// Proves (SQLite): no endpoint that writes can be wedged by clients that reset their requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_requests_never_wedge_the_store_sqlite() {
    hostile_suite(Op::start(None, &[]).await, "sqlite").await;
}

/// Proves (PostgreSQL): the same against a PostgreSQL schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_requests_never_wedge_the_store_postgres() {
    let Some(db) = Database::create().await else { return };
    hostile_suite(Op::start(Some(db), &[]).await, "postgres").await;
}
