//! One test suite for every backend (memory, SQLite, PostgreSQL, Redis): the session index
//! (BC-RP-14, BC-SEC-06), logged-out markers (lazy ending) and the `jti` replay cache (BC-RP-08).
//! PostgreSQL and Redis come from `ADIEU_TEST_POSTGRES_URL` / `ADIEU_TEST_REDIS_URL`; with
//! `ADIEU_REQUIRE_POSTGRES=1` / `ADIEU_REQUIRE_REDIS=1` (CI) a missing service fails the test.

use crate::index::{LoginRecord, LogoutMarkerStore, SessionIndex};
use crate::replay::ReplayCache;
use crate::testing::{ISS, NOW};
use crate::verify::VerifiedLogoutToken;

fn token(issuer: &str, sub: Option<&str>, sid: Option<&str>, iat: i64) -> VerifiedLogoutToken {
    crate::testing::verified_token(issuer, sub, sid, iat)
}

/// Index: sid ends that session (sub must match when both are given), sub-only ends the user's
/// older sessions only (BC-SEC-06), issuers are separate, forget removes, re-recording replaces.
pub async fn index_conformance(index: &dyn SessionIndex) {
    // A unique issuer per run keeps shared databases (PostgreSQL, Redis in CI) clean between runs.
    let iss = format!("{ISS}/{}", crate::testing::unique());
    let other_iss = format!("{iss}-other");
    let login = |issuer: &str, sub: &str, sid: &str, session: &str, created: i64| LoginRecord {
        issuer: issuer.into(),
        sub: sub.into(),
        sid: Some(sid.into()),
        session_id: format!("{iss}#{session}"),
        created_at: created,
    };
    for l in [
        login(&iss, "alice", "sid-a1", "app-1", NOW - 100),
        login(&iss, "alice", "sid-a2", "app-2", NOW - 50),
        login(&iss, "alice", "sid-a3", "app-3", NOW + 10),
        login(&iss, "bob", "sid-b1", "app-4", NOW - 100),
        login(&other_iss, "alice", "sid-a1", "app-5", NOW - 100),
        LoginRecord { sid: None, ..login(&iss, "dave", "", "app-6", NOW - 100) },
    ] {
        index.record(l).await.unwrap();
    }
    let s = |n: &str| format!("{iss}#{n}");
    assert_eq!(index.sessions_to_end(&token(&iss, None, Some("sid-a1"), NOW)).await.unwrap(), [s("app-1")]);
    assert_eq!(index.sessions_to_end(&token(&iss, Some("alice"), Some("sid-a2"), NOW)).await.unwrap(), [s("app-2")]);
    assert!(
        index.sessions_to_end(&token(&iss, Some("bob"), Some("sid-a2"), NOW)).await.unwrap().is_empty(),
        "BC-RP-10: sub must match too"
    );
    assert!(
        index.sessions_to_end(&token(&iss, None, Some("unknown"), NOW)).await.unwrap().is_empty(),
        "BC-RP-14: an unknown sid is nothing to end, not an error"
    );
    assert_eq!(
        index.sessions_to_end(&token(&iss, Some("alice"), None, NOW)).await.unwrap(),
        [s("app-1"), s("app-2")],
        "BC-SEC-06: not the session created after the token"
    );
    assert_eq!(
        index.sessions_to_end(&token(&iss, Some("dave"), None, NOW)).await.unwrap(),
        [s("app-6")],
        "a login without sid is found by sub"
    );
    index.forget(&[s("app-1")]).await.unwrap();
    assert!(index.sessions_to_end(&token(&iss, None, Some("sid-a1"), NOW)).await.unwrap().is_empty());
    // Re-recording a session id replaces it.
    index.record(login(&iss, "carol", "sid-c1", "app-2", NOW - 10)).await.unwrap();
    assert!(index.sessions_to_end(&token(&iss, None, Some("sid-a2"), NOW)).await.unwrap().is_empty());
    assert!(
        !index.sessions_to_end(&token(&iss, Some("alice"), None, NOW)).await.unwrap().contains(&s("app-2")),
        "the replaced login is not alice's any more"
    );
    assert_eq!(index.sessions_to_end(&token(&iss, Some("carol"), None, NOW)).await.unwrap(), [s("app-2")]);
}

/// Markers: an ended session is logged out, others are not; ending twice or ending nothing succeeds.
pub async fn marker_conformance(markers: &dyn LogoutMarkerStore) {
    let u = crate::testing::unique();
    let (a, b) = (format!("m-{u}-a"), format!("m-{u}-b"));
    assert!(!markers.is_logged_out(&a).await.unwrap());
    markers.end_sessions(std::slice::from_ref(&a)).await.unwrap();
    markers.end_sessions(std::slice::from_ref(&a)).await.unwrap();
    markers.end_sessions(&[]).await.unwrap();
    assert!(markers.is_logged_out(&a).await.unwrap());
    assert!(!markers.is_logged_out(&b).await.unwrap());
}

/// Replay cache (BC-RP-08): a remembered jti is seen until its limit, per issuer.
pub async fn replay_conformance(cache: &dyn ReplayCache) {
    let iss = format!("{ISS}/{}", crate::testing::unique());
    let now = crate::wall_clock_secs();
    assert!(!cache.seen(&iss, "j1", now).await.unwrap());
    cache.remember(&iss, "j1", now + 100, now).await.unwrap();
    assert!(cache.seen(&iss, "j1", now).await.unwrap());
    assert!(cache.seen(&iss, "j1", now + 100).await.unwrap());
    assert!(!cache.seen(&iss, "j1", now + 101).await.unwrap(), "past its limit the jti is forgotten");
    assert!(!cache.seen(&format!("{iss}-other"), "j1", now).await.unwrap(), "issuers are separate");
    assert!(!cache.seen(&iss, "j2", now).await.unwrap());
}

/// The URL of a service for the tests, or `None` (skip) when it is not configured and not required.
#[cfg(any(feature = "postgres", feature = "redis"))]
pub fn service_url(var: &str, require_var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(std::env::var(require_var).as_deref() != Ok("1"), "{require_var}=1 but {var} is not set");
            eprintln!("skipped: set {var} to run this backend's tests");
            None
        }
    }
}

#[tokio::test]
async fn memory_backend_passes_the_suite() {
    use crate::index::{LogoutMarkers, MemorySessionIndex};
    use crate::replay::MemoryReplayCache;
    index_conformance(&MemorySessionIndex::default()).await;
    marker_conformance(&LogoutMarkers::default()).await;
    replay_conformance(&MemoryReplayCache::default()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_backend_passes_the_suite() {
    let path = std::env::temp_dir().join(format!("adieu-rp-index-{}.db", crate::testing::unique()));
    let b =
        crate::index_sql::SqliteSessionIndex::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    index_conformance(&b).await;
    marker_conformance(&b).await;
    replay_conformance(&b).await;
    // A second connection to the same file (another replica) sees the markers and jtis.
    let other = crate::index_sql::SqliteSessionIndex::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    crate::index::SessionEnder::end_sessions(&b, &["shared".into()]).await.unwrap();
    assert!(LogoutMarkerStore::is_logged_out(&other, "shared").await.unwrap());
    let _ = std::fs::remove_file(path);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_backend_passes_the_suite() {
    let Some(url) = service_url("ADIEU_TEST_POSTGRES_URL", "ADIEU_REQUIRE_POSTGRES") else { return };
    let b = crate::index_sql::PostgresSessionIndex::connect(&url).await.expect("PostgreSQL is reachable");
    index_conformance(&b).await;
    marker_conformance(&b).await;
    replay_conformance(&b).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_backend_passes_the_suite() {
    let Some(url) = service_url("ADIEU_TEST_REDIS_URL", "ADIEU_REQUIRE_REDIS") else { return };
    let prefix = format!("adieu-rp-test:{}:", crate::testing::unique());
    let b = crate::index_redis::RedisSessionIndex::connect(&url)
        .await
        .expect("Redis is reachable")
        .with_prefix(&prefix)
        .with_session_ttl(std::time::Duration::from_secs(300))
        .with_marker_ttl(std::time::Duration::from_secs(300));
    index_conformance(&b).await;
    marker_conformance(&b).await;
    replay_conformance(&b).await;
    // Another replica (its own connection) sees the markers.
    let other =
        crate::index_redis::RedisSessionIndex::connect(&url).await.expect("Redis is reachable").with_prefix(&prefix);
    crate::index::SessionEnder::end_sessions(&b, &["shared".into()]).await.unwrap();
    assert!(LogoutMarkerStore::is_logged_out(&other, "shared").await.unwrap());
}
