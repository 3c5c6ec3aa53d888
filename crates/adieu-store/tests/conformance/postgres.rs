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
