//! Signing-key rotation shared through the database, and the key-encryption key:
//!
//! - in process (TestOp, ManualClock): a rotation is published at once, ID tokens keep the old kid
//!   until `keys.publish_ahead_secs` passes and then carry the new one, a logout token signed by
//!   the new key verifies at an adieu-rp receiver that had cached the old key set, and a retired
//!   key leaves the JWKS;
//! - two PostgreSQL replicas starting together on an empty schema make one key per algorithm;
//! - the real binary: `adieu keys generate-kek|rotate|list|retire`, refusing to start with
//!   encrypted keys and no or the wrong key-encryption key.

use crate::binary::{command, free_port};
use crate::support::*;
use adieu_core::{Clock, UnixMillis};
use adieu_proto::SigningAlg;
use adieu_rp::axum::BackchannelLogout;
use adieu_rp::discovery::{HttpJwks, Provider};
use adieu_rp::index::{LoginRecord, LogoutMarkers, MemorySessionIndex, SessionIndex};
use adieu_rp::keys::{JwksSource, KeyCache, KeyFetchError};
use adieu_rp::verifier::LogoutVerifier;
use adieu_rp::verify::VerificationPolicy;
use adieu_server::client_metadata::ClientRegistration;
use adieu_server::keys::rotation;
use adieu_testkit::{Browser, TestClient, TestOp};
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The provider's JWKS, fetched over HTTP, counting the fetches.
#[derive(Debug)]
struct CountingJwks {
    inner: HttpJwks,
    fetches: AtomicUsize,
}

#[async_trait::async_trait]
impl JwksSource for CountingJwks {
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch().await
    }
}

async fn published_kids(base: &str) -> Vec<String> {
    let jwks: Value = reqwest::get(format!("{base}/jwks")).await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// Polls the JWKS until `pred` holds (the replica reloads its keys every second in these tests).
async fn wait_for_jwks(base: &str, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let kids = published_kids(base).await;
        if pred(&kids) {
            return kids;
        }
        assert!(tokio::time::Instant::now() < deadline, "the JWKS never {what}: {kids:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kid_of(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

/// Proves: `adieu keys rotate` (the same function, on the same database, not through this
/// replica) is published by the running replica at its next reload; ID tokens keep the old kid
/// until `publish_ahead` passes on the provider's clock, then carry the new one; a logout token
/// signed by the new key verifies at an adieu-rp receiver whose cached key set predates the
/// rotation (it refetches on the unknown kid); the old key can then be retired and leaves the JWKS.
#[tokio::test]
async fn a_rotated_key_is_published_at_once_signs_after_publish_ahead_and_retired_keys_leave_the_jwks() {
    let op = TestOp::start_with(|s| s.keys.reload_interval_secs = 1).await.unwrap();
    op.add_user("alice", None, PASSWORD).await.unwrap();
    let store = op.state.store.clone();
    let ahead = op.state.settings.keys.publish_ahead();

    // An application with an adieu-rp receiver that has fetched (and cached) the key set now.
    let provider = Provider::discover(&op.issuer).await.unwrap();
    let source = Arc::new(CountingJwks { inner: HttpJwks::new(&provider.jwks_uri).unwrap(), fetches: 0.into() });
    // The test moves the provider's clock ahead by publish_ahead; the receiver reads the real one.
    let leeway = ahead + Duration::from_secs(60);
    let policy = VerificationPolicy::new(&provider.issuer, "rot")
        .with_algorithms(&[jsonwebtoken::Algorithm::RS256])
        .unwrap()
        .strict_typ()
        .leeway(leeway);
    let verifier =
        Arc::new(LogoutVerifier::new(policy, KeyCache::with_min_refresh_interval(source.clone(), Duration::ZERO)));
    verifier.keys().current().await.unwrap();
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    let index = Arc::new(MemorySessionIndex::default());
    let markers = Arc::new(LogoutMarkers::default());
    let endpoint = BackchannelLogout::new(verifier, index.clone(), markers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rp_uri = format!("http://{}/backchannel-logout", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().route("/backchannel-logout", endpoint.method_router())).await;
    });
    let (_, secret) = op
        .add_client(ClientRegistration {
            client_id: Some("rot".into()),
            name: "rot".into(),
            redirect_uris: vec!["http://127.0.0.1:9960/cb".into()],
            backchannel_logout_uri: Some(rp_uri),
            backchannel_logout_session_required: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let client = TestClient { id: "rot".into(), secret, redirect_uri: "http://127.0.0.1:9960/cb".into() };

    let old = op.state.keys.signer_kid(SigningAlg::RS256, op.clock.now()).unwrap();
    let new = rotation::rotate(store.as_ref(), SigningAlg::RS256, None, ahead, op.clock.now(), "cli").await.unwrap();
    assert_eq!(new.generation, 2);
    let kids = wait_for_jwks(&op.issuer, "published the new key", |k| k.contains(&new.kid)).await;
    assert!(kids.contains(&old), "the old key stays published");

    // Before publish_ahead passes: the old key signs.
    let early = Browser::new();
    let tokens = exchange(&op, &client, &get_code(&early, &op, &client, &[]).await, &[]).await;
    assert_eq!(kid_of(tokens["id_token"].as_str().unwrap()), old);
    op.clock.advance(ahead - Duration::from_secs(1));
    let refreshed = Browser::new();
    let tokens = exchange(&op, &client, &get_code(&refreshed, &op, &client, &[]).await, &[]).await;
    assert_eq!(kid_of(tokens["id_token"].as_str().unwrap()), old, "one second before publish_ahead passes");

    // From then on: the new key signs.
    op.clock.advance(Duration::from_secs(1));
    let late = Browser::new();
    let tokens = exchange(&op, &client, &get_code(&late, &op, &client, &[]).await, &[]).await;
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&id_token), new.kid);
    let claims = verify_id_token(&op, &id_token, "rot").await;
    index
        .record(LoginRecord {
            issuer: op.issuer.clone(),
            sub: claims["sub"].as_str().unwrap().into(),
            sid: claims["sid"].as_str().map(str::to_owned),
            session_id: "app-session-late".into(),
            created_at: claims["iat"].as_i64().unwrap(),
        })
        .await
        .unwrap();

    // Signing out: the logout token is signed by the new key, unknown to the receiver's cache.
    assert_eq!(op.state.keys.signer_kid(SigningAlg::RS256, op.clock.now()), Some(new.kid.clone()));
    late.http.get(op.url("/logout")).query(&[("id_token_hint", id_token.as_str())]).send().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !markers.is_logged_out("app-session-late") {
        assert!(tokio::time::Instant::now() < deadline, "the receiver did not accept the logout token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2, "the receiver refetched the key set once, for the new kid");

    // Retiring the old key: refused while it signed, allowed now; it leaves the JWKS.
    let before = UnixMillis(op.clock.now().0 - ahead.as_millis() as i64);
    assert!(rotation::retire(store.as_ref(), &old, before, "cli").await.is_err(), "it was the signer then");
    assert!(rotation::retire(store.as_ref(), &new.kid, op.clock.now(), "cli").await.is_err(), "the current signer");
    rotation::retire(store.as_ref(), &old, op.clock.now(), "cli").await.unwrap();
    let kids = wait_for_jwks(&op.issuer, "dropped the retired key", |k| !k.contains(&old)).await;
    assert!(kids.contains(&new.kid));
    assert_eq!(kids.len(), 3, "one key per algorithm again: {kids:?}");
    let audit = store
        .audit_events(&adieu_core::audit::AuditFilter { kind: Some("key.".into()), ..Default::default() })
        .await
        .unwrap();
    let kinds: Vec<(&str, &str)> = audit.iter().map(|e| (e.kind.as_str(), e.actor.as_str())).collect();
    assert_eq!(kinds[..2], [("key.retired", "cli"), ("key.created", "cli")]);
}

/// A schema of its own in the CI database (`ADIEU_TEST_POSTGRES_URL`), dropped at the end; `None`
/// (with a loud line) when PostgreSQL is not configured and not required.
struct Schema {
    admin_url: String,
    name: String,
}

impl Schema {
    async fn create() -> Option<Schema> {
        use sqlx::Connection;
        let Some(admin_url) = std::env::var("ADIEU_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
            assert_ne!(
                std::env::var("ADIEU_REQUIRE_POSTGRES").as_deref(),
                Ok("1"),
                "ADIEU_TEST_POSTGRES_URL is not set"
            );
            use std::io::Write;
            let _ =
                writeln!(std::io::stderr(), "\nSKIPPED: key generation by two replicas was NOT tested on PostgreSQL\n");
            return None;
        };
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        let name: String = sqlx::query_scalar("SELECT 'keys_' || replace(gen_random_uuid()::text, '-', '')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
        Some(Schema { admin_url, name })
    }

    fn url(&self) -> String {
        let mut url = url::Url::parse(&self.admin_url).unwrap();
        url.query_pairs_mut().append_pair("options", &format!("-c search_path={}", self.name));
        url.to_string()
    }

    async fn drop_it(self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name)).execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
    }
}

/// Proves: two replicas starting at the same moment on an empty PostgreSQL schema generate one key
/// per algorithm between them (the unique (alg, generation) decides), and publish the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_starting_on_an_empty_database_generate_one_key_per_algorithm() {
    let Some(db) = Schema::create().await else { return };
    let open = |replica: &str| {
        let options = adieu_store::PostgresOptions { replica_id: Some(replica.into()), ..Default::default() };
        let url = db.url();
        async move { adieu_store::PostgresStore::open(&url, &options).await.unwrap() }
    };
    let (a, b) = tokio::join!(open("replica-1"), open("replica-2"));
    let now = adieu_core::SystemClock.now();
    let (ka, kb) = tokio::join!(
        adieu_server::keys::Keys::load_or_generate(&a, now, None),
        adieu_server::keys::Keys::load_or_generate(&b, now, None)
    );
    let (ka, kb) = (ka.unwrap().0, kb.unwrap().0);
    let stored = adieu_core::store::KeyStore::signing_keys(&a).await.unwrap();
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(ka.published_kids(), kb.published_kids());
    for alg in SigningAlg::ALL {
        assert_eq!(ka.signer_kid(alg, now), kb.signer_kid(alg, now));
    }
    a.pool().close().await;
    b.pool().close().await;
    db.drop_it().await;
}

/// Runs the binary with extra environment; returns (success, stdout, stderr).
async fn adieu(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = command(dir).args(args).envs(env.iter().copied()).stdin(Stdio::null()).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `adieu serve` that must refuse to start: returns its standard error.
async fn serve_refused(dir: &std::path::Path, env: &[(&str, &str)]) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [env, &[("ADIEU_LISTEN", listen.as_str())]].concat();
    let (ok, _, err) =
        tokio::time::timeout(Duration::from_secs(30), adieu(dir, &["serve"], &env)).await.expect("adieu serve exits");
    assert!(!ok, "adieu serve started: {err}");
    err
}

/// Proves, with the real binary: `adieu keys generate-kek` makes a key-encryption key; with it,
/// `adieu keys rotate` stores every new key encrypted (`keys list` says so); `adieu serve` refuses
/// to start without it or with another one, naming the kid and never the key; with it, the server
/// runs, and `keys rotate` / `keys retire` made beside it reach its JWKS without a restart; the
/// current signer cannot be retired.
#[tokio::test]
async fn the_binary_encrypts_keys_with_the_kek_and_refuses_to_start_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, kek, _) = adieu(dir.path(), &["keys", "generate-kek"], &[]).await;
    assert!(ok);
    let kek = kek.trim().to_owned();
    assert_eq!(kek.len(), 44, "base64 of 32 bytes: {kek}");
    let with_kek = [("ADIEU_KEY_ENCRYPTION_KEY", kek.as_str())];

    // A first rotation on an empty database creates one key per algorithm, signing at once.
    let (ok, out, err) = adieu(dir.path(), &["keys", "rotate"], &with_kek).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().filter(|l| l.contains("signs now") && l.contains("encrypted")).count(), 3, "{out}");
    let (ok, list, _) = adieu(dir.path(), &["keys", "list"], &[]).await;
    assert!(ok);
    let rows: Vec<Vec<&str>> = list.lines().skip(1).map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 3, "{list}");
    assert!(rows.iter().all(|r| r[3] == "signing" && r[7] == "encrypted"), "{list}");
    let rs256 = rows.iter().find(|r| r[1] == "RS256").unwrap()[0].to_owned();

    let err = serve_refused(dir.path(), &[]).await;
    assert!(err.contains("is encrypted, but no key_encryption_key is configured"), "{err}");
    assert!(rows.iter().any(|r| err.contains(r[0])), "names the kid: {err}");
    let (_, other, _) = adieu(dir.path(), &["keys", "generate-kek"], &[]).await;
    let err = serve_refused(dir.path(), &[("ADIEU_KEY_ENCRYPTION_KEY", other.trim())]).await;
    assert!(err.contains("was encrypted with another key_encryption_key"), "{err}");
    assert!(!err.contains(&kek) && !err.contains(other.trim()), "never the key: {err}");
    let err = serve_refused(dir.path(), &[("ADIEU_KEY_ENCRYPTION_KEY", "dG9vIHNob3J0")]).await;
    assert!(err.contains("must be 32 bytes") && !err.contains("dG9vIHNob3J0"), "{err}");

    // With the key: the server runs, and rotations made beside it arrive within a reload.
    let port = free_port();
    let _server =
        crate::binary::serve_with(dir.path(), port, &[with_kek[0], ("ADIEU_KEYS__RELOAD_INTERVAL_SECS", "1")]).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(published_kids(&base).await.len(), 3);
    let (ok, _, err) = adieu(dir.path(), &["keys", "rotate", "--alg", "ES256"], &[]).await;
    assert!(!ok && err.contains("is encrypted"), "without the KEK the new key would be stored plain: {err}");
    let (ok, out, err) = adieu(dir.path(), &["keys", "rotate", "--alg", "ES256"], &with_kek).await;
    assert!(ok, "{err}");
    assert!(out.contains("published, signs from") && out.contains("(in 600 s)"), "{out}");
    let pending = out.split('\t').next().unwrap().to_owned();
    wait_for_jwks(&base, "published the rotated key", |k| k.contains(&pending)).await;
    let (_, list, _) = adieu(dir.path(), &["keys", "list"], &[]).await;
    assert!(list.lines().any(|l| l.starts_with(&pending) && l.contains("\tpending (signs in ")), "{list}");
    let (ok, _, err) = adieu(dir.path(), &["keys", "retire", &rs256], &[]).await;
    assert!(!ok && err.contains("last published key"), "{err}");
    // A pending key may be withdrawn; it leaves the JWKS.
    let (ok, _, err) = adieu(dir.path(), &["keys", "retire", &pending], &[]).await;
    assert!(ok, "{err}");
    wait_for_jwks(&base, "dropped the retired key", |k| !k.contains(&pending) && k.len() == 3).await;
    let (_, list, _) = adieu(dir.path(), &["keys", "list"], &[]).await;
    assert!(
        list.lines().any(|l| l.starts_with(&pending) && l.contains("\tretired\t") && l.ends_with("\terased")),
        "{list}"
    );
}
