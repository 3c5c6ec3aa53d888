//! The real `adieu` executable: zero-configuration start, signals, and the admin CLI working on
//! the database of a running server.

use adieu_testkit::{Browser, query_param};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_adieu");

fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("ADIEU_ISSUER")
        .env_remove("ADIEU_DATABASE_URL")
        .env_remove("ADIEU_CONFIG")
        .kill_on_drop(true);
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn serve(dir: &Path, port: u16) -> Child {
    let child = command(dir)
        .arg("serve")
        .env("ADIEU_LISTEN", format!("127.0.0.1:{port}"))
        // Not configuration: must be ignored, not rejected as an unknown key.
        .env("ADIEU_TEST_POSTGRES_URL", "postgres://ignored")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..300 {
        if reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("adieu serve did not become healthy");
}

async fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
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
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
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

    let (ok, out, _) = run(dir.path(), &["user", "delete", "alice"], None).await;
    assert!(ok && out.contains("deleted user alice"));
    let (ok, out, _) = run(dir.path(), &["user", "list"], None).await;
    assert!(ok && !out.contains("alice"));
}
