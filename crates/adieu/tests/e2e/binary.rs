//! The real `adieu` executable: zero-configuration start, signals, and the admin CLI working on
//! the database of a running server.

use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Browser, query_param};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_adieu");

pub(crate) fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("ADIEU_ISSUER")
        .env_remove("ADIEU_DATABASE_URL")
        .env_remove("ADIEU_CONFIG")
        .kill_on_drop(true);
    c
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn serve(dir: &Path, port: u16) -> Child {
    serve_with(dir, port, &[]).await
}

pub(crate) async fn serve_with(dir: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    let child = command(dir)
        .arg("serve")
        .envs(env.iter().copied())
        .env("ADIEU_LISTEN", format!("127.0.0.1:{port}"))
        // Not configuration: must be ignored, not rejected as an unknown key.
        .env("ADIEU_TEST_POSTGRES_URL", "postgres://ignored")
        .stdout(Stdio::null())
        // A file, not a pipe: nobody drains a pipe while the test runs, and a full one blocks the server.
        .stderr(std::fs::File::create(dir.join(format!("serve-{port}.log"))).unwrap())
        .spawn()
        .unwrap();
    assert!(healthy(port).await, "adieu serve did not become healthy");
    child
}

/// Whether a provider on `port` answers `/healthz` within 30 seconds.
pub(crate) async fn healthy(port: u16) -> bool {
    let health = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..300 {
        if reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub(crate) async fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child =
        command(dir).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sigterm(child: &Child) {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

/// Proves: `adieu serve` with no configuration creates `./adieu-data/adieu.db` in WAL mode, answers
/// health and readiness, publishes RS256/ES256/EdDSA keys, says it runs the development profile,
/// and stops cleanly on SIGTERM.
#[tokio::test]
async fn serve_with_zero_configuration_and_graceful_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = serve(dir.path(), port).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(reqwest::get(format!("{base}/readyz")).await.unwrap().text().await.unwrap(), "ready");
    let d: serde_json::Value =
        reqwest::get(format!("{base}/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["issuer"], base.as_str());
    let jwks: serde_json::Value = reqwest::get(format!("{base}/jwks")).await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
    assert!(dir.path().join("adieu-data/adieu.db").exists());
    assert!(dir.path().join("adieu-data/adieu.db-wal").exists(), "WAL mode");

    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("stops on SIGTERM").unwrap();
    assert!(status.success(), "{status}");
    let err = std::fs::read_to_string(dir.path().join(format!("serve-{port}.log"))).unwrap();
    assert!(err.contains("DEVELOPMENT PROFILE"), "{err}");

    // Keys survive a restart (kept in the database).
    let port = free_port();
    let _child = serve(dir.path(), port).await;
    let again: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/jwks")).await.unwrap().json().await.unwrap();
    assert_eq!(again, jwks, "keys changed across restart");
}

#[tokio::test]
async fn non_loopback_http_issuer_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path()).arg("serve").env("ADIEU_ISSUER", "http://id.example.com").output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https"));
}

#[tokio::test]
async fn unknown_configuration_keys_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("adieu.toml"), "listn = \"127.0.0.1:1\"\n").unwrap();
    let (ok, _, err) = run(dir.path(), &["--config", "adieu.toml", "user", "list"], None).await;
    assert!(!ok);
    assert!(err.contains("listn"), "{err}");
}

/// Proves: users and clients created with the CLI while the server runs can sign in at once; the
/// client secret is printed once and never stored in clear; `user passwd` ends the user's sessions.
#[tokio::test]
async fn cli_manages_users_and_clients_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = serve(dir.path(), port).await;
    let base = format!("http://127.0.0.1:{port}");

    let (ok, out, err) = run(
        dir.path(),
        &["user", "add", "alice", "--email", "alice@example.com", "--password-stdin"],
        Some("s3cret pass\n"),
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("created user alice"));
    let (ok, _, err) = run(dir.path(), &["user", "add", "ALICE", "--password", "another pass"], None).await;
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(dir.path(), &["user", "add", "bob", "--password", "short"], None).await;
    assert!(!ok && err.contains("at least 8"), "{err}");

    let (ok, out, err) = run(
        dir.path(),
        &[
            "client",
            "add",
            "--name",
            "App A",
            "--client-id",
            "app-a",
            "--redirect-uri",
            "http://127.0.0.1:9001/cb",
            "--backchannel-logout-uri",
            "http://127.0.0.1:9001/bc",
            "--backchannel-logout-initiators",
            "session-expired",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("backchannel_logout_initiators: custom (rp-logout, idp-logout, session-expired)"), "{out}");
    let secret = out.lines().find_map(|l| l.strip_prefix("client_secret: ")).expect("secret printed once").to_owned();
    let (ok, _, err) = run(
        dir.path(),
        &[
            "client",
            "add",
            "--name",
            "Bad",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--backchannel-logout-uri",
            "http://127.0.0.1/bc#frag",
        ],
        None,
    )
    .await;
    assert!(!ok && err.contains("invalid_client_metadata"), "{err}");
    let (ok, out, _) = run(dir.path(), &["client", "show", "app-a"], None).await;
    assert!(ok && !out.contains(&secret) && !out.contains("client_secret:"));

    // Sign in with them on the running server.
    let browser = Browser::new();
    let params = [
        ("client_id", "app-a"),
        ("redirect_uri", "http://127.0.0.1:9001/cb"),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    let loc = browser.authorize_at(&base, &params, "alice", "s3cret pass").await.unwrap();
    let code = query_param(&loc, "code").expect("code");
    let res = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth("app-a", Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:9001/cb")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The secret is nowhere in the database files.
    for f in ["adieu.db", "adieu.db-wal"] {
        let bytes = std::fs::read(dir.path().join("adieu-data").join(f)).unwrap_or_default();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "client secret stored in clear in {f}");
    }

    // Changing the password ends the session.
    let (ok, out, err) =
        run(dir.path(), &["user", "passwd", "alice", "--password-stdin"], Some("new password 1\n")).await;
    assert!(ok, "{err}");
    assert!(out.contains("1 session(s) ended"), "{out}");
    let mut silent = params.to_vec();
    silent.push(("prompt", "none"));
    let loc = browser.authorize_at(&base, &silent, "alice", "unused").await.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));

    // An admin token made by the CLI opens the management API of the running server.
    let (ok, token, err) = run(dir.path(), &["admin-token", "create", "--label", "ops"], None).await;
    assert!(ok, "{err}");
    let token = token.trim();
    let res =
        reqwest::Client::new().get(format!("{base}/api/v1/clients/app-a")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Removing the logout URI with the CLI unsubscribes, and the audit log says so.
    let (ok, out, err) = run(dir.path(), &["client", "update", "app-a", "--no-backchannel-logout-uri"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("backchannel_logout_uri: -"), "{out}");
    let (ok, out, _) = run(dir.path(), &["logs", "--client", "app-a", "--type", "backchannel."], None).await;
    assert!(ok);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["backchannel.unsubscribed", "backchannel.subscribed"]);
    let (ok, _, err) = run(dir.path(), &["deliveries", "retry", "no-such-delivery"], None).await;
    assert!(!ok && err.contains("no delivery"), "{err}");

    let (ok, out, _) = run(dir.path(), &["user", "delete", "alice"], None).await;
    assert!(ok && out.contains("deleted user alice"));
    let (ok, out, _) = run(dir.path(), &["user", "list"], None).await;
    assert!(ok && !out.contains("alice"));
}

/// Signs a fresh browser in to `client_id` on a running server and logs it out through the
/// confirmation form (RP-initiated logout without a hint): one committed logout.
pub(crate) async fn sign_in_and_log_out(base: &str, client_id: &str, redirect_uri: &str, password: &str) {
    let browser = Browser::new();
    let params =
        [("client_id", client_id), ("redirect_uri", redirect_uri), ("response_type", "code"), ("scope", "openid")];
    let loc = browser.authorize_at(base, &params, "alice", password).await.unwrap();
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    let page = browser.http.get(format!("{base}/logout")).send().await.unwrap().text().await.unwrap();
    let csrf = adieu_testkit::hidden_field(&page, "csrf").expect("confirmation form");
    let res = browser
        .http
        .post(format!("{base}/logout/confirm"))
        .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

pub(crate) fn count_lines(out: &str, status: &str) -> usize {
    out.lines().filter(|l| l.split('\t').nth(1) == Some(status)).count()
}

/// Proves crash safety with the real binary: logouts are committed while the receiver is down,
/// the server is killed with SIGKILL, restarted, the receiver comes up, and every logout is
/// delivered. N logouts in, N distinct deliveries out, none lost.
#[tokio::test]
async fn crash_safety_sigkill_then_restart_delivers_every_committed_logout() {
    const N: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let receiver_port = free_port();
    let bc_uri = format!("http://127.0.0.1:{receiver_port}/backchannel?tenant=t1");
    let (ok, _, err) = run(dir.path(), &["user", "add", "alice", "--password", "crash test pw"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        dir.path(),
        &[
            "client",
            "add",
            "--name",
            "Crash",
            "--client-id",
            "crash",
            "--redirect-uri",
            "http://127.0.0.1:9900/cb",
            "--backchannel-logout-uri",
            &bc_uri,
            "--id-token-signed-response-alg",
            "ES256",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");

    let port = free_port();
    let mut server = serve_with(
        dir.path(),
        port,
        &[
            ("ADIEU_DELIVERY__INITIAL_BACKOFF_MS", "200"),
            ("ADIEU_DELIVERY__MAX_BACKOFF_SECS", "1"),
            ("ADIEU_DELIVERY__LOGOUT_WAIT_MS", "0"),
        ],
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..N {
        sign_in_and_log_out(&base, "crash", "http://127.0.0.1:9900/cb", "crash test pw").await;
    }
    // Every logout is committed and has failed at least once against the dead receiver.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = run(dir.path(), &["deliveries", "list", "--limit", "1000"], None).await;
        let failing = out.lines().skip(1).filter(|l| l.contains("connection failed")).count();
        if failing == N {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "deliveries did not all fail once: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill().await.unwrap(); // SIGKILL: no graceful shutdown, leases left behind.
    let _ = server.wait().await;

    let receiver = Receiver::start_at(receiver_port, Behavior::Status(200)).await;
    let port = free_port();
    let _server = serve_with(
        dir.path(),
        port,
        &[("ADIEU_DELIVERY__INITIAL_BACKOFF_MS", "200"), ("ADIEU_DELIVERY__MAX_BACKOFF_SECS", "1")],
    )
    .await;
    let got = receiver.wait_for(N, Duration::from_secs(60)).await;
    assert!(got.len() >= N, "only {} of {N} logouts arrived", got.len());
    let sids: std::collections::HashSet<String> =
        got.iter().map(|r| crate::support::peek_claims(r.logout_token())["sid"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        sids.len(),
        N,
        "every committed logout arrives: N in, N distinct out (duplicates: {})",
        got.len() - sids.len()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = run(dir.path(), &["deliveries", "list", "--limit", "1000"], None).await;
        if count_lines(&out, "delivered") == N {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all recorded as delivered: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out, _) = run(dir.path(), &["logs", "--type", "session.ended"], None).await;
    assert!(ok);
    assert_eq!(out.lines().count(), N);
}

/// Follows redirects (resolving relative locations) until a page; returns its final URL and body.
async fn follow(browser: &Browser, mut url: String) -> (String, String) {
    for _ in 0..10 {
        let res = browser.http.get(&url).send().await.unwrap();
        if let Some(loc) = res.headers().get("location") {
            url = url::Url::parse(&url).unwrap().join(loc.to_str().unwrap()).unwrap().to_string();
            continue;
        }
        return (url, res.text().await.unwrap());
    }
    panic!("too many redirects");
}

/// Proves the README tour with the real `adieu demo`: sign in to App A and App B, sign out of A,
/// and B's page shows the user signed out (back-channel logout through adieu-rp).
#[tokio::test]
async fn adieu_demo_tour_signing_out_of_one_app_signs_out_of_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (op, a, b) = (free_port(), free_port(), free_port());
    let _demo = command(dir.path())
        .args(["demo", "--port", &op.to_string(), "--app-a-port", &a.to_string(), "--app-b-port", &b.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("demo.log")).unwrap())
        .spawn()
        .unwrap();
    let (app_a, app_b) = (format!("http://127.0.0.1:{a}"), format!("http://127.0.0.1:{b}"));
    let mut ready = false;
    for _ in 0..300 {
        if reqwest::get(&app_b).await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "demo did not start: {}", std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default());
    let browser = Browser::new();

    // Sign in to App A through the provider's login form.
    let (url, page) = follow(&browser, format!("{app_a}/login")).await;
    assert!(url.contains("/login?request="), "{url}");
    let csrf = adieu_testkit::hidden_field(&page, "csrf").unwrap();
    let request = adieu_testkit::hidden_field(&page, "request").unwrap();
    let res = browser
        .http
        .post(format!("http://127.0.0.1:{op}/login"))
        .form(&[
            ("username", "demo"),
            ("password", "demo-password"),
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let (_, page) = follow(&browser, res.headers().get("location").unwrap().to_str().unwrap().to_owned()).await;
    assert!(page.contains("You are signed in as <strong id=user>demo</strong>"), "{page}");

    // App B: single sign-on, no form.
    let (_, page) = follow(&browser, format!("{app_b}/login")).await;
    assert!(page.contains("You are signed in as"), "{page}");
    let (_, page_a) = follow(&browser, format!("{app_a}/")).await;
    assert!(page_a.contains("You are signed in as"), "A keeps its own session: {page_a}");

    // Sign out of App A (RP-initiated logout); App B is told over the back channel.
    let res = browser.http.post(format!("{app_a}/logout")).send().await.unwrap();
    let (url, page) = follow(&browser, res.headers().get("location").unwrap().to_str().unwrap().to_owned()).await;
    assert!(url.starts_with(&format!("{app_a}/?state=")), "{url}");
    assert!(page.contains("You are signed out"), "{page}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, page_b) = follow(&browser, format!("{app_b}/")).await;
        if page_b.contains("You are signed out") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "App B still signed in: {page_b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
