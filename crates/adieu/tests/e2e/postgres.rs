//! The real `adieu` executable on PostgreSQL: `database_url = "postgres://…"` in a fresh schema of
//! the CI database (`ADIEU_TEST_POSTGRES_URL`; required when `ADIEU_REQUIRE_POSTGRES=1`), with a
//! role of its own so the test can take the database away from the running server.

use crate::binary::{count_lines, free_port, run, serve_with, sign_in_and_log_out};
use adieu_testkit::receiver::{Behavior, Receiver};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// A schema and a login role, both `e2e_<random>`, owned by the role and dropped (with every
/// object in them) when this is dropped, also when the test fails.
pub(crate) struct Database {
    pub(crate) admin_url: String,
    pub(crate) name: String,
}

impl Database {
    pub(crate) async fn create() -> Option<Database> {
        let admin_url = match std::env::var("ADIEU_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert_ne!(
                    std::env::var("ADIEU_REQUIRE_POSTGRES").as_deref(),
                    Ok("1"),
                    "ADIEU_REQUIRE_POSTGRES=1 but ADIEU_TEST_POSTGRES_URL is not set"
                );
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\nSKIPPED: the binary was NOT tested on PostgreSQL (set ADIEU_TEST_POSTGRES_URL)\n"
                );
                return None;
            }
        };
        let mut conn = PgConnection::connect(&admin_url).await.expect("PostgreSQL at ADIEU_TEST_POSTGRES_URL");
        let name: String = sqlx::query_scalar("SELECT 'e2e_' || replace(gen_random_uuid()::text, '-', '')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        // A password too, in case the CI database does not trust local connections.
        for sql in [
            format!("CREATE ROLE {name} LOGIN PASSWORD '{name}'"),
            format!("CREATE SCHEMA {name} AUTHORIZATION {name}"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        let _ = conn.close().await;
        Some(Database { admin_url, name })
    }

    /// The URL adieu is given: this role, this schema as the search path.
    pub(crate) fn url(&self) -> String {
        let mut url = url::Url::parse(&self.admin_url).unwrap();
        url.set_username(&self.name).unwrap();
        url.set_password(Some(&self.name)).unwrap();
        url.query_pairs_mut().append_pair("options", &format!("-c search_path={}", self.name));
        url.to_string()
    }

    pub(crate) async fn admin(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
    }

    /// Cuts the server off: the role may no longer log in, and its connections are closed.
    async fn take_away(&self) {
        self.admin(&format!("ALTER ROLE {} NOLOGIN", self.name)).await;
        self.admin(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'", self.name))
            .await;
    }

    async fn give_back(&self) {
        self.admin(&format!("ALTER ROLE {} LOGIN", self.name)).await;
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&url).await.ok()?;
                for sql in [
                    "SET lock_timeout = '10s'".to_owned(),
                    format!("ALTER ROLE {name} NOLOGIN"),
                    format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"),
                    format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
                    format!("DROP ROLE IF EXISTS {name}"),
                ] {
                    sqlx::query(&sql).execute(&mut conn).await.ok()?;
                }
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(done, Ok(Some(()))) {
            eprintln!("could not drop the test schema and role {}", self.name);
        }
    }
}

/// Verifies a logout token as an RP would, with the provider's published keys.
async fn verify_logout_token(base: &str, token: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: JwkSet = reqwest::get(format!("{base}/jwks")).await.unwrap().json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("published key");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[base]);
    v.set_audience(&[client_id]);
    v.set_required_spec_claims(&["iss", "aud", "exp", "iat"]);
    let claims: Value = jsonwebtoken::decode(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap().claims;
    assert_eq!(claims["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    claims
}

async fn readyz(base: &str) -> (u16, String) {
    match reqwest::get(format!("{base}/readyz")).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Waits until `/readyz` answers `status`.
async fn wait_ready(base: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (got, body) = readyz(base).await;
        if got == status {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz stayed {got} {body:?}, expected {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Proves: with `database_url = "postgres://…"` the real binary migrates (`adieu migrate`, twice),
/// the CLI and the server share the database, a user signs in and out, and the application gets
/// a verified back-channel logout token recorded as delivered; nothing is written to SQLite;
/// `/readyz` says 503 while the database is unreachable and recovers by itself after.
#[tokio::test]
async fn the_binary_works_end_to_end_on_postgresql() {
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config =
        format!("database_url = {:?}\n\n[database]\nmax_connections = 4\nreplica_id = \"e2e-replica-1\"\n", db.url());
    std::fs::write(dir.path().join("adieu.toml"), config).unwrap();
    let run_cli = async |args: &[&str], stdin: Option<&str>| {
        let args: Vec<&str> = ["--config", "adieu.toml"].iter().chain(args).copied().collect();
        run(dir.path(), &args, stdin).await
    };

    let (ok, out, err) = run_cli(&["migrate"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied to postgres://"), "{out}");
    let (ok, _, err) = run_cli(&["migrate"], None).await;
    assert!(ok, "a second migrate is a no-op: {err}");
    let mut conn = PgConnection::connect(&db.url()).await.unwrap();
    let versions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM adieu_migrations").fetch_one(&mut conn).await.unwrap();
    assert_eq!(versions, adieu_store::migrate::POSTGRES.len() as i64);

    let receiver = Receiver::start(Behavior::Status(200)).await;
    let bc_uri = receiver.uri.clone();
    let (ok, _, err) = run_cli(&["user", "add", "alice", "--password-stdin"], Some("postgres e2e pw\n")).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run_cli(
        &[
            "client",
            "add",
            "--name",
            "PG App",
            "--client-id",
            "pg-app",
            "--redirect-uri",
            "http://127.0.0.1:9900/cb",
            "--backchannel-logout-uri",
            &bc_uri,
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");

    let port = free_port();
    let _server = serve_with(dir.path(), port, &[("ADIEU_CONFIG", "adieu.toml")]).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(readyz(&base).await, (200, "ready".to_owned()));
    sign_in_and_log_out(&base, "pg-app", "http://127.0.0.1:9900/cb", "postgres e2e pw").await;

    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "one logout, one back-channel token");
    let claims = verify_logout_token(&base, got[0].logout_token(), "pg-app").await;
    let sub: String =
        sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'").fetch_one(&mut conn).await.unwrap();
    assert_eq!(claims["sub"], sub.as_str());
    let sid: String = sqlx::query_scalar("SELECT sid FROM participations WHERE client_id = 'pg-app'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(claims["sid"], sid.as_str(), "the sid of the application's ID token");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out, _) = run_cli(&["deliveries", "list"], None).await;
        if count_lines(&out, "delivered") == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not recorded as delivered: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out, _) = run_cli(&["logs", "--type", "session.ended"], None).await;
    assert!(ok && out.lines().count() == 1 && out.contains("rp-logout"), "{out}");
    assert!(!dir.path().join("adieu-data").exists(), "nothing went to SQLite");
    let _ = conn.close().await;

    // Readiness follows the database.
    db.take_away().await;
    wait_ready(&base, 503).await;
    db.give_back().await;
    wait_ready(&base, 200).await;
}
