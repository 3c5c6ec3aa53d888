//! PostgreSQL: a fresh schema per test (so tests run in parallel and leave nothing behind), and the
//! tests that only make sense with several replicas: two stores are two pools with two replica
//! ids on one database, as two `adieu serve` processes would be.

use super::{T0, alice_session_with_a, claim, session};
use adieu_core::Store;
use adieu_core::delivery::DeliveryStatus;
use adieu_core::id::{SessionId, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::session::SessionLifetime;
use adieu_core::store::{Claim, DeliveryStore};
use adieu_core::time::UnixMillis;
use adieu_store::{PostgresOptions, PostgresStore};
use sqlx::{Connection, PgConnection};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The CI database, or `None` (with a loud line) when it is not configured and not required.
fn base_url() -> Option<String> {
    match std::env::var("ADIEU_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert_ne!(
                std::env::var("ADIEU_REQUIRE_POSTGRES").as_deref(),
                Ok("1"),
                "ADIEU_REQUIRE_POSTGRES=1 but ADIEU_TEST_POSTGRES_URL is not set"
            );
            // Straight to the stderr handle, which the test harness does not capture, once per run.
            static LOUD: std::sync::Once = std::sync::Once::new();
            LOUD.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\nSKIPPED: the storage suite did NOT run on PostgreSQL (set ADIEU_TEST_POSTGRES_URL)\n"
                );
            });
            None
        }
    }
}

/// A schema of its own in the CI database, dropped (with everything in it) when this is dropped,
/// also when the test fails.
pub struct Schema {
    base: String,
    name: String,
}

impl Schema {
    /// Creates `test_<random>`; `None` when PostgreSQL is not configured (see [`base_url`]).
    pub async fn create() -> Option<Schema> {
        let base = base_url()?;
        let mut conn = PgConnection::connect(&base).await.expect("PostgreSQL at ADIEU_TEST_POSTGRES_URL is reachable");
        let name: String = sqlx::query_scalar("SELECT 'test_' || replace(gen_random_uuid()::text, '-', '')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
        Some(Schema { base, name })
    }

    /// The database URL with this schema as the search path.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    /// A store (one replica) on this schema.
    pub async fn store(&self, replica: &str) -> PostgresStore {
        let options = PostgresOptions { max_connections: 4, replica_id: Some(replica.into()), ..Default::default() };
        PostgresStore::open(&self.url(), &options).await.expect("the store opens and migrates")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop cannot await: a thread with its own runtime does the work (this one may be inside
        // a runtime, and may be unwinding from a failed assertion).
        let (base, name) = (self.base.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&base).await.ok()?;
                sqlx::query("SET lock_timeout = '10s'").execute(&mut conn).await.ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut conn).await.ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test schema {}", self.name);
        }
    }
}

/// `n` sessions of alice with client `a` (subscribed to everything), all ended at T0: `n` due
/// deliveries.
async fn backlog(s: &Arc<dyn Store>, n: usize) {
    for i in 0..n {
        let name = format!("bulk-{i}");
        alice_session_with_a(s, &name).await.unwrap();
        s.end_session(&SessionId::new(name), Initiator::RpLogout, T0).await.unwrap().expect("ended");
    }
}

/// Proves: replicas that open a fresh database at the same moment both succeed, each migration
/// runs once (advisory lock), and running them again does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let Some(schema) = Schema::create().await else { return };
    let (a, b) = tokio::join!(schema.store("replica-1"), schema.store("replica-2"));
    assert_eq!(a.migrate().await.unwrap(), 0, "already applied");
    assert_eq!(b.migrate().await.unwrap(), 0);
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM adieu_migrations ORDER BY version").fetch_all(a.pool()).await.unwrap();
    let expected: Vec<i64> = adieu_store::migrate::POSTGRES.iter().map(|m| m.version).collect();
    assert_eq!(versions, expected);
    a.pool().close().await;
    b.pool().close().await;
}

/// Proves: several claimers on each of two replicas, claiming small batches at the same time,
/// never lease the same delivery twice (FOR UPDATE SKIP LOCKED + lease); every delivery is
/// claimed exactly once, with one attempt counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_claiming_at_once_never_claim_the_same_delivery() {
    const N: usize = 240;
    let Some(schema) = Schema::create().await else { return };
    let (r1, r2) = (schema.store("replica-1").await, schema.store("replica-2").await);
    let s: Arc<dyn Store> = Arc::new(r1.clone());
    backlog(&s, N).await;
    let mut tasks = Vec::new();
    for store in [r1.clone(), r2.clone()] {
        for _ in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                // Until a claim comes back empty (the rest may be locked by the other claimers).
                loop {
                    let batch = store.claim_due(&Claim { limit: 5, ..claim(T0) }).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|d| (d.id, d.attempts, store.replica_id().to_owned())));
                }
            }));
        }
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    // Whatever the concurrent claimers left (rows they skipped because another one held them).
    loop {
        let batch = r2.claim_due(&claim(T0)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        claimed.extend(batch.into_iter().map(|d| (d.id, d.attempts, "drain".to_owned())));
    }
    let distinct: HashSet<&str> = claimed.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(distinct.len(), N, "every delivery claimed");
    assert_eq!(claimed.len(), N, "no delivery claimed twice");
    assert!(claimed.iter().all(|(_, attempts, _)| *attempts == 1), "one attempt counted per claim");
    let owners: HashSet<&str> = claimed.iter().map(|(_, _, r)| r.as_str()).collect();
    eprintln!("claimed by: {owners:?}");
    assert_eq!(r1.queue_stats().await.unwrap().depth, N as u64, "all leased, none finished");
    r1.pool().close().await;
    r2.pool().close().await;
}

/// Proves: a delivery leased by one replica is not claimable by another while the lease is
/// valid; once it has expired (the replica died), the other replica claims it, with the attempt
/// counted, and the first one can no longer claim or release it.
#[tokio::test]
async fn an_expired_lease_is_claimable_by_the_other_replica() {
    let Some(schema) = Schema::create().await else { return };
    let (r1, r2) = (schema.store("replica-1").await, schema.store("replica-2").await);
    let s: Arc<dyn Store> = Arc::new(r1.clone());
    backlog(&s, 3).await;
    let first = r1.claim_due(&claim(T0)).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(r2.claim_due(&claim(T0)).await.unwrap().is_empty(), "leased by replica 1");
    let just_before = UnixMillis(T0.0 + 59_999);
    assert!(r2.claim_due(&claim(just_before)).await.unwrap().is_empty(), "the lease is valid until T0 + 60 s");
    let expired = UnixMillis(T0.0 + 60_000);
    let taken = r2.claim_due(&claim(expired)).await.unwrap();
    assert_eq!(taken.len(), 3, "replica 1 died: replica 2 takes over");
    assert!(taken.iter().all(|d| d.attempts == 2 && d.lease_until == Some(UnixMillis(expired.0 + 60_000))));
    assert!(r1.claim_due(&claim(expired)).await.unwrap().is_empty(), "now leased by replica 2");
    assert_eq!(r1.release_leases().await.unwrap(), 0, "replica 1 holds no lease any more");
    r1.pool().close().await;
    r2.pool().close().await;
}

/// Proves: `release_leases` (run at start-up) releases only the calling replica's leases; a
/// replica restarted under the same replica id gets its own back at once, and a replica with a
/// random id releases nothing.
#[tokio::test]
async fn release_leases_touches_only_this_replicas_leases() {
    let Some(schema) = Schema::create().await else { return };
    let (r1, r2) = (schema.store("replica-1").await, schema.store("replica-2").await);
    let s: Arc<dyn Store> = Arc::new(r1.clone());
    backlog(&s, 4).await;
    let mine = r1.claim_due(&Claim { limit: 2, ..claim(T0) }).await.unwrap();
    let theirs = r2.claim_due(&Claim { limit: 2, ..claim(T0) }).await.unwrap();
    assert_eq!((mine.len(), theirs.len()), (2, 2));

    assert_eq!(r1.release_leases().await.unwrap(), 2);
    for d in &mine {
        assert_eq!(s.delivery(&d.id).await.unwrap().unwrap().0.status, DeliveryStatus::Pending);
    }
    for d in &theirs {
        assert_eq!(s.delivery(&d.id).await.unwrap().unwrap().0.status, DeliveryStatus::Leased, "not ours");
    }
    let anonymous = PostgresStore::open(&schema.url(), &PostgresOptions::default()).await.unwrap();
    assert!(anonymous.replica_id().starts_with("replica-") && anonymous.replica_id().len() > 20);
    assert_eq!(anonymous.release_leases().await.unwrap(), 0, "a random replica id owns nothing");
    let restarted = schema.store("replica-2").await;
    assert_eq!(restarted.release_leases().await.unwrap(), 2, "the same replica id after a restart");
    assert_eq!(s.queue_stats().await.unwrap().depth, 4);
    assert_eq!(s.claim_due(&claim(T0)).await.unwrap().len(), 4, "all claimable again");
    for st in [r1, r2, anonymous, restarted] {
        st.pool().close().await;
    }
}

/// Proves: the expiry sweeper can run on every replica at once: each expired session ends once,
/// with one `session.ended` event and one set of deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweepers_on_two_replicas_end_each_session_once() {
    const N: usize = 40;
    let Some(schema) = Schema::create().await else { return };
    let (r1, r2) = (schema.store("replica-1").await, schema.store("replica-2").await);
    let s: Arc<dyn Store> = Arc::new(r1.clone());
    for i in 0..N {
        alice_session_with_a(&s, &format!("old-{i}")).await.unwrap();
    }
    s.create_session(&session("other-user", "id-bob"), "cookie-bob").await.unwrap();
    let life = SessionLifetime { idle: Duration::from_secs(60), absolute: Duration::from_secs(600) };
    let now = UnixMillis(T0.0 + 61_000);
    let sweep = |st: PostgresStore| async move {
        let mut n = 0;
        loop {
            let ended = adieu_core::store::SessionStore::end_expired_sessions(&st, life, now, 3).await.unwrap();
            n += ended.len();
            if ended.is_empty() {
                return n;
            }
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(sweep(r1.clone())), tokio::spawn(sweep(r2.clone())));
    assert_eq!(a.unwrap() + b.unwrap(), N + 1, "every expired session ended once");
    let log = s
        .audit_events(&adieu_core::audit::AuditFilter {
            kind: Some("session.ended".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), N + 1);
    assert_eq!(s.queue_stats().await.unwrap().depth, N as u64, "one delivery per session of `a`");
    assert!(s.open_sessions_of_user(&UserId::new("id-alice")).await.unwrap().is_empty());
    r1.pool().close().await;
    r2.pool().close().await;
}

/// Most store operations, on names made unique by `n`.
async fn workload(s: &Arc<dyn Store>, n: &str) {
    use adieu_core::delivery::Attempt;
    use adieu_core::delivery::Verdict;
    use adieu_core::store::{DeliveryFilter, StoredSigningKey};
    use adieu_core::upstream::{PendingUpstreamLogin, UpstreamIdentity, UpstreamSessionQuery, UpstreamSignIn};
    use adieu_core::user::{UserChanges, UserQuery};
    let user = |name: &str| adieu_core::user::User {
        id: UserId::new(format!("id-{name}")),
        ..super::user(name, Some(&format!("{name}@example.com")))
    };
    let alice = user(&format!("alice{n}"));
    s.create_user(&alice).await.unwrap();
    assert!(s.user_by_login(&alice.username).await.unwrap().is_some());
    assert!(!s.list_users(&UserQuery::default()).await.unwrap().is_empty());
    let client = super::client_with(&format!("app{n}"), Some("https://a/bc"), Default::default());
    s.create_client(&client, "test").await.unwrap();
    assert!(s.client_by_id(&client.id).await.unwrap().is_some());
    assert!(!s.list_clients().await.unwrap().is_empty());
    assert_eq!(s.clients_by_ids(std::slice::from_ref(&client.id)).await.unwrap().len(), 1);
    s.update_client(&client, "test", T0).await.unwrap().unwrap();
    let sid = SessionId::new(format!("s{n}"));
    s.create_session(
        &adieu_core::session::Session { user_id: alice.id.clone(), ..session(sid.as_str(), "x") },
        &format!("ck{n}"),
    )
    .await
    .unwrap();
    assert!(s.session_by_cookie(&format!("ck{n}")).await.unwrap().is_some());
    s.ensure_participation(&sid, &client.id, &adieu_core::id::Sid::new(format!("sid{n}")), T0).await.unwrap();
    assert_eq!(s.participations_of_sessions(std::slice::from_ref(&sid)).await.unwrap().len(), 1);
    assert!(s.participation_by_sid(&adieu_core::id::Sid::new(format!("sid{n}"))).await.unwrap().is_some());
    let code = adieu_core::grant::AuthCode { code_hash: format!("code{n}"), ..super::code("x") };
    s.insert_code(&code).await.unwrap();
    assert!(matches!(
        s.redeem_code(&code.code_hash, T0).await.unwrap(),
        adieu_core::store::CodeRedemption::Redeemed(_)
    ));
    let rt = super::refresh(&format!("rt{n}"), sid.as_str(), client.id.as_str(), false);
    s.insert_refresh_token(&rt).await.unwrap();
    s.use_refresh_token(&rt.token_hash, &client.id, T0).await.unwrap();
    s.insert_access_token(&super::access(&format!("at{n}"), sid.as_str(), false)).await.unwrap();
    assert!(s.access_token(&format!("at{n}")).await.unwrap().is_some());
    assert!(!s.open_sessions_of_user(&alice.id).await.unwrap().is_empty());
    let email = UserChanges { email: Some(Some(format!("new{n}@example.com"))), ..Default::default() };
    let up = s.update_user(&alice.id, &email, "test", T0).await.unwrap().unwrap();
    assert_eq!(up.ended.len(), 1, "an email change ends the sessions");
    assert!(up.ended[0].deliveries.is_empty(), "the default subscription leaves out email-identifier-changed");
    let ended = s.end_session(&sid, Initiator::RpLogout, T0).await.unwrap();
    assert!(ended.is_none(), "already ended by the email change");
    let sid2 = SessionId::new(format!("t{n}"));
    s.create_session(&session(sid2.as_str(), alice.id.as_str()), &format!("ck2{n}")).await.unwrap();
    s.ensure_participation(&sid2, &client.id, &adieu_core::id::Sid::new(format!("sid2{n}")), T0).await.unwrap();
    let ended = s.end_session(&sid2, Initiator::RpLogout, T0).await.unwrap().unwrap();
    assert_eq!(ended.deliveries.len(), 1);
    let batch = s.claim_due(&Claim { exclude_clients: &[], ..claim(UnixMillis(T0.0 + 1)) }).await.unwrap();
    assert_eq!(batch.len(), 1);
    let attempt = |d: &adieu_core::delivery::Delivery| Attempt {
        delivery_id: d.id.clone(),
        number: 0,
        at: T0,
        latency_ms: 1,
        http_status: Some(404),
        error: None,
    };
    assert!(s.record_attempt(&attempt(&batch[0]), Verdict::Dead { reason: "HTTP 404".into() }).await.unwrap());
    assert!(s.retry_delivery(&batch[0].id, "test", T0).await.unwrap().is_some());
    let again = s.claim_due(&claim(UnixMillis(T0.0 + 2))).await.unwrap();
    assert!(s.record_attempt(&attempt(&again[0]), Verdict::Delivered).await.unwrap());
    assert_eq!(s.delivery(&again[0].id).await.unwrap().unwrap().1.len(), 2);
    assert!(!s.deliveries(&DeliveryFilter::default()).await.unwrap().is_empty());
    s.release_leases().await.unwrap();
    s.next_due().await.unwrap();
    s.queue_stats().await.unwrap();
    assert!(!s.audit_events(&adieu_core::audit::AuditFilter::default()).await.unwrap().is_empty());
    let key = StoredSigningKey {
        kid: format!("k{n}"),
        alg: adieu_proto::SigningAlg::ES256,
        generation: n.parse().unwrap(),
        private_key: vec![1, 2, 3],
        created_at: T0,
        signs_from: T0,
        retired_at: None,
    };
    s.insert_signing_key(&key, "test").await.unwrap();
    assert!(s.signing_keys().await.unwrap().contains(&key));
    if n == "2" {
        s.retire_signing_key("k1", "test", T0).await.unwrap().unwrap();
    }
    let login = PendingUpstreamLogin {
        state_hash: format!("st{n}"),
        upstream_id: "up".into(),
        nonce: "n".into(),
        code_verifier: "v".into(),
        request_id: None,
        created_at: T0,
        expires_at: UnixMillis(T0.0 + 60_000),
    };
    s.put_upstream_login(&login).await.unwrap();
    assert!(s.take_upstream_login(&login.state_hash, T0).await.unwrap().is_some());
    let bob = user(&format!("bob{n}"));
    let identity = UpstreamIdentity { issuer: "https://up".into(), sub: format!("u{n}"), upstream_id: "up".into() };
    s.create_upstream_user(&bob, &identity, "test").await.unwrap();
    assert!(s.user_by_upstream("https://up", &identity.sub).await.unwrap().is_some());
    let sign_in =
        UpstreamSignIn { issuer: "https://up".into(), sub: identity.sub.clone(), sid: Some(format!("us{n}")), at: T0 };
    s.create_upstream_session(&session(&format!("u{n}"), bob.id.as_str()), &format!("ck3{n}"), &sign_in).await.unwrap();
    let q = UpstreamSessionQuery::Session { issuer: "https://up".into(), sid: format!("us{n}"), sub: None };
    assert_eq!(s.upstream_sessions(&q).await.unwrap().len(), 1);
    let life = SessionLifetime { idle: Duration::from_secs(1), absolute: Duration::from_secs(1) };
    assert!(!s.end_expired_sessions(life, UnixMillis(T0.0 + 10_000), 100).await.unwrap().is_empty());
    s.delete_user(&bob.id, "test", T0).await.unwrap().unwrap();
    s.delete_client(&client.id, "test", T0).await.unwrap();
    s.purge_expired(T0).await.unwrap();
}

/// Proves: a running replica keeps working after a newer replica's migration adds columns to its
/// tables (a rolling upgrade): the statements it has prepared and cached name their columns, so
/// their result types do not change under them.
#[tokio::test]
async fn a_running_replica_survives_a_migration_that_adds_columns() {
    let Some(schema) = Schema::create().await else { return };
    // One connection: every statement of the second round runs where the first round cached it.
    let options = PostgresOptions { max_connections: 1, replica_id: Some("old".into()), ..Default::default() };
    let old = PostgresStore::open(&schema.url(), &options).await.unwrap();
    let s: Arc<dyn Store> = Arc::new(old.clone());
    workload(&s, "1").await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(old.pool())
    .await
    .unwrap();
    assert!(tables.len() >= 15, "{tables:?}");
    let mut newer = PgConnection::connect(&schema.url()).await.unwrap();
    for t in &tables {
        sqlx::query(&format!("ALTER TABLE {t} ADD COLUMN added_later TEXT")).execute(&mut newer).await.unwrap();
    }
    let _ = newer.close().await;
    workload(&s, "2").await;
    old.pool().close().await;
}

/// Proves: sign-in limits hold across replicas. Two replicas (two pools) hitting one key at the
/// same moment, 30 times each, get the counts 1 to 60 between them, each once: the upsert is
/// atomic, so N replicas share one budget instead of having N.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_hits_from_two_replicas_share_one_count() {
    const EACH: u32 = 30;
    let Some(schema) = Schema::create().await else { return };
    let (r1, r2) = (schema.store("replica-1").await, schema.store("replica-2").await);
    let window = Duration::from_secs(60);
    let mut tasks = Vec::new();
    for store in [r1.clone(), r2.clone()] {
        for _ in 0..EACH {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                adieu_core::store::RateLimitStore::rate_limit_hit(&store, "account:x", window, T0).await.unwrap().count
            }));
        }
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=2 * EACH).collect::<Vec<_>>());
    let seen = adieu_core::store::RateLimitStore::rate_limit_count(&r2, "account:x", T0).await.unwrap();
    assert_eq!(seen, 2 * EACH, "both replicas see the shared count");
    r1.pool().close().await;
    r2.pool().close().await;
}
