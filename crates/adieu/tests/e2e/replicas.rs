//! Several real `adieu serve` replicas on one PostgreSQL schema (a fresh schema and role per test,
//! see `postgres::Database`), and the delivery guarantees under faults: a NOTIFY wakes an idle
//! replica, a graceful stop hands its unfinished deliveries over at once, a replica killed with
//! SIGKILL mid fan-out loses nothing, an application that is down for a while gets everything
//! within the retry schedule, and cut database connections heal by themselves.
//!
//! Data is seeded with `adieu-store` before the servers start; logouts go through the management
//! API of a replica (`DELETE /api/v1/sessions/{id}`, `session-revoked`). Every test counts what
//! the receivers got by `(sub, sid, client)` and prints the counts (`--nocapture` shows them).

use crate::binary::{free_port, serve_with};
use crate::postgres::Database;
use crate::support::peek_claims;
use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
use adieu_core::session::Session;
use adieu_core::user::User;
use adieu_core::{Clock, Store, SystemClock};
use adieu_store::{PostgresOptions, PostgresStore};
use adieu_testkit::receiver::{Behavior, Received, Receiver};
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Child;

const ADMIN_TOKEN: &str = "replicas-e2e-admin-token-0123456789abcdef";

/// What a back-channel logout names: `(sub, sid, client)`.
type Key = (String, String, String);

/// One `adieu serve` process on the test's database.
struct Replica {
    name: String,
    base: String,
    log: std::path::PathBuf,
    child: Child,
}

impl Replica {
    /// Starts replica `name` (its `database.replica_id`) with the issuer all replicas share and
    /// extra `ADIEU_…` settings; returns once `/healthz` answers.
    async fn start(dir: &Path, db: &Database, name: &str, issuer: &str, env: &[(&str, &str)]) -> Replica {
        let port = free_port();
        let url = db.url();
        let mut all = vec![
            ("ADIEU_DATABASE_URL", url.as_str()),
            ("ADIEU_DATABASE__REPLICA_ID", name),
            ("ADIEU_DATABASE__MAX_CONNECTIONS", "4"),
            ("ADIEU_ISSUER", issuer),
            ("ADIEU_ADMIN_TOKEN", ADMIN_TOKEN),
            ("ADIEU_DELIVERY__LOGOUT_WAIT_MS", "0"),
        ];
        all.extend_from_slice(env);
        let child = serve_with(dir, port, &all).await;
        Replica {
            name: name.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            log: dir.join(format!("serve-{port}.log")),
            child,
        }
    }

    /// The replica's log so far, without colour codes.
    fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ parameters final-byte
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Waits (bounded) until the log contains `line`.
    async fn wait_log(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(line) {
            assert!(Instant::now() < deadline, "{}: no {line:?} in the log:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Revokes `session` through this replica's management API (`session-revoked`).
    async fn revoke(&self, session: &str) {
        revoke(reqwest::Client::new(), self.base.clone(), session.to_owned()).await;
    }

    /// Revokes every session, `parallel` requests at a time.
    async fn revoke_all(&self, sessions: &[String], parallel: usize) {
        let http = reqwest::Client::new();
        let mut running = tokio::task::JoinSet::new();
        for s in sessions {
            if running.len() >= parallel {
                running.join_next().await.unwrap().unwrap();
            }
            running.spawn(revoke(http.clone(), self.base.clone(), s.clone()));
        }
        while let Some(done) = running.join_next().await {
            done.unwrap();
        }
    }

    fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    async fn sigterm(&mut self) -> std::process::ExitStatus {
        let ok = std::process::Command::new("kill").args(["-TERM", &self.pid()]).status().unwrap().success();
        assert!(ok, "kill -TERM");
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop after SIGTERM:\n{}", self.name, self.log()))
            .unwrap()
    }

    async fn sigkill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

async fn revoke(http: reqwest::Client, base: String, session: String) {
    let res = http.delete(format!("{base}/api/v1/sessions/{session}")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200, "{base}: revoking {session}");
}

/// Users, sessions and applications written with `adieu-store` before the replicas start.
struct Seeded {
    sessions: Vec<String>,
    expected: HashSet<Key>,
}

/// `users` users with `per_user` open sessions each, every application taking part in every
/// session; the applications (`(client id, logout URI)`) subscribe to every initiator.
async fn seed(db: &Database, users: usize, per_user: usize, apps: &[(&str, &str)]) -> Seeded {
    let options = PostgresOptions { max_connections: 4, replica_id: Some("seed".into()), ..Default::default() };
    let pg = PostgresStore::open(&db.url(), &options).await.expect("the store opens and migrates");
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    let now = SystemClock.now();
    for (id, uri) in apps {
        let client = Client {
            id: ClientId::new(*id),
            name: (*id).into(),
            secret_hash: Some("not-used".into()),
            redirect_uris: vec![format!("http://127.0.0.1:9/{id}/cb")],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: Some((*uri).into()),
            backchannel_logout_session_required: true,
            backchannel_logout_initiators: InitiatorSubscription {
                mode: InitiatorMode::All,
                selected_initiators: vec![],
            },
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            id_token_signed_response_alg: adieu_proto::SigningAlg::ES256,
            frontchannel_logout_uri: None,
            frontchannel_logout_session_required: false,
            third_party: false,
            created_at: now,
            updated_at: now,
        };
        store.create_client(&client, "test").await.unwrap();
    }
    let mut seeded = Seeded { sessions: Vec::new(), expected: HashSet::new() };
    for u in 0..users {
        let user = User {
            id: UserId::new(format!("user-{u}")),
            username: format!("user{u}"),
            email: None,
            password_hash: "$argon2id$not-used".into(),
            created_at: now,
            updated_at: now,
        };
        store.create_user(&user).await.unwrap();
        for s in 0..per_user {
            let id = format!("s-{u}-{s}");
            let session = Session {
                id: SessionId::new(id.clone()),
                user_id: user.id.clone(),
                auth_time: now,
                created_at: now,
                last_seen_at: now,
                ended_at: None,
                end_reason: None,
            };
            store.create_session(&session, &format!("cookie-{id}")).await.unwrap();
            for (app, _) in apps {
                let sid = format!("sid-{id}-{app}");
                store
                    .ensure_participation(&session.id, &ClientId::new(*app), &Sid::new(sid.clone()), now)
                    .await
                    .unwrap();
                seeded.expected.insert((user.id.as_str().to_owned(), sid, (*app).to_owned()));
            }
            seeded.sessions.push(id);
        }
    }
    pg.pool().close().await;
    seeded
}

fn key_of(r: &Received) -> Key {
    let c = peek_claims(r.logout_token());
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    (s("sub"), s("sid"), s("aud"))
}

/// How often each `(sub, sid, client)` arrived at `receivers`.
fn arrivals(receivers: &[&Receiver]) -> HashMap<Key, usize> {
    arrivals_since(receivers, None)
}

/// The same, counting only requests that arrived at or after `since`.
fn arrivals_since(receivers: &[&Receiver], since: Option<Instant>) -> HashMap<Key, usize> {
    let mut n = HashMap::new();
    for r in receivers {
        for got in r.received() {
            if since.is_none_or(|t| got.at >= t) {
                *n.entry(key_of(&got)).or_insert(0) += 1;
            }
        }
    }
    n
}

/// Waits (bounded) until every expected key arrived; returns the arrivals.
async fn wait_all_arrive(receivers: &[&Receiver], expected: &HashSet<Key>, within: Duration) -> HashMap<Key, usize> {
    wait_all_arrive_since(receivers, expected, within, None).await
}

/// Waits (bounded) until every expected key arrived at or after `since`; returns those arrivals.
async fn wait_all_arrive_since(
    receivers: &[&Receiver],
    expected: &HashSet<Key>,
    within: Duration,
    since: Option<Instant>,
) -> HashMap<Key, usize> {
    let deadline = Instant::now() + within;
    loop {
        let got = arrivals_since(receivers, since);
        let missing = expected.iter().filter(|k| !got.contains_key(*k)).count();
        if missing == 0 {
            return got;
        }
        assert!(Instant::now() < deadline, "{missing} of {} deliveries never arrived", expected.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deliveries by status.
async fn statuses(db: &Database) -> BTreeMap<String, i64> {
    let mut conn = PgConnection::connect(&db.url()).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetch_all(&mut conn).await.unwrap();
    let _ = conn.close().await;
    rows.into_iter().collect()
}

/// Waits (bounded) until `n` deliveries are `delivered` and none is pending or leased.
async fn wait_all_delivered(db: &Database, n: usize, within: Duration) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + within;
    loop {
        let s = statuses(db).await;
        if s.get("delivered").copied().unwrap_or(0) == n as i64 && s.len() == 1 {
            return s;
        }
        assert!(Instant::now() < deadline, "not all recorded as delivered: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The deliveries leased by `replica`, as keys.
async fn leased_by(db: &Database, replica: &str) -> HashSet<Key> {
    let mut conn = PgConnection::connect(&db.url()).await.unwrap();
    let rows: Vec<Key> =
        sqlx::query_as("SELECT sub, sid, client_id FROM deliveries WHERE status = 'leased' AND lease_owner = $1")
            .bind(replica)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let _ = conn.close().await;
    rows.into_iter().collect()
}

/// Proves (issue 6, LISTEN/NOTIFY): a logout committed through replica 1, which runs no worker
/// (`delivery.worker = false`), is sent by replica 2 at once, although replica 2 polls the queue
/// only every 60 seconds: the commit's NOTIFY wakes it. Five logouts, each delivered well within
/// the poll interval.
#[tokio::test]
async fn an_idle_replica_sends_a_logout_committed_by_another_at_once() {
    const POLL_MS: u64 = 60_000;
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(Behavior::Status(200)).await;
    let seeded = seed(&db, 1, 5, &[("app", receiver.uri.as_str())]).await;
    let issuer_port = free_port();
    let issuer = format!("http://127.0.0.1:{issuer_port}");
    let api_only = Replica::start(dir.path(), &db, "api-only", &issuer, &[("ADIEU_DELIVERY__WORKER", "false")]).await;
    let poll = POLL_MS.to_string();
    let sender =
        Replica::start(dir.path(), &db, "sender", &issuer, &[("ADIEU_DELIVERY__POLL_INTERVAL_MS", poll.as_str())])
            .await;
    api_only.wait_log("delivery.worker = false").await;
    sender.wait_log("listening for deliveries written by other replicas").await;
    assert!(!api_only.log().contains("listening for deliveries"), "an API-only replica does not listen");

    let mut latencies = Vec::new();
    for (i, session) in seeded.sessions.iter().enumerate() {
        let before = Instant::now();
        api_only.revoke(session).await;
        let got = receiver.wait_for(i + 1, Duration::from_millis(POLL_MS / 2)).await;
        assert_eq!(got.len(), i + 1, "logout {i} was not delivered within half the poll interval");
        latencies.push(got[i].at.duration_since(before));
    }
    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "NOTIFY: {} logouts through the API-only replica, delivered by the other after {:?} (poll interval {} s)",
        latencies.len(),
        latencies,
        POLL_MS / 1000
    );
    assert!(worst < Duration::from_millis(POLL_MS / 12), "a NOTIFY wakes the idle replica at once: {latencies:?}");
    let got: HashSet<Key> = receiver.received().iter().map(key_of).collect();
    assert_eq!(got, seeded.expected, "each logout once, with its sub and sid");
    wait_all_delivered(&db, seeded.expected.len(), Duration::from_secs(30)).await;
}

/// Proves (issue 6, graceful shutdown): deliveries in flight to an application that never answers
/// when replica 1 gets SIGTERM are released as it stops (pending at once, although their 10-minute
/// lease is far from over), and replica 2, started afterwards, sends them all.
#[tokio::test]
async fn sigterm_releases_the_deliveries_in_flight_for_another_replica() {
    const N: usize = 10;
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(Behavior::Hang).await;
    let seeded = seed(&db, 2, N / 2, &[("app", receiver.uri.as_str())]).await;
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let slow_settings = [
        ("ADIEU_DELIVERY__LEASE_SECS", "600"),
        ("ADIEU_DELIVERY__REQUEST_TIMEOUT_MS", "600000"),
        ("ADIEU_DELIVERY__SHUTDOWN_GRACE_SECS", "1"),
        // All N in flight at once to the one application (its window starts at N slots).
        ("ADIEU_DELIVERY__PER_CLIENT_CONCURRENCY", "10"),
    ];
    let mut first = Replica::start(dir.path(), &db, "first", &issuer, &slow_settings).await;
    first.revoke_all(&seeded.sessions, 8).await;
    let hanging = receiver.wait_for(N, Duration::from_secs(30)).await;
    assert_eq!(hanging.len(), N, "every delivery is in flight");
    assert_eq!(leased_by(&db, "first").await.len(), N);

    let stopping = Instant::now();
    let status = first.sigterm().await;
    let took = stopping.elapsed();
    assert!(status.success(), "{status}\n{}", first.log());
    let after_stop = statuses(&db).await;
    eprintln!("SIGTERM: stopped in {took:?} with {N} deliveries in flight; then {after_stop:?}");
    assert_eq!(after_stop.get("pending").copied(), Some(N as i64), "released at once: {after_stop:?}");
    assert!(leased_by(&db, "first").await.is_empty());
    let log = first.log();
    assert!(log.contains("abandoned=10") && log.contains("released=10"), "{log}");

    receiver.set_default(Behavior::Status(200));
    let restarted = Instant::now();
    let _second = Replica::start(dir.path(), &db, "second", &issuer, &[]).await;
    let got = wait_all_arrive_since(&[&receiver], &seeded.expected, Duration::from_secs(60), Some(restarted)).await;
    eprintln!(
        "SIGTERM: the second replica sent all {N} within {:?} of starting (lease 600 s); {} requests from it",
        restarted.elapsed(),
        got.values().sum::<usize>()
    );
    wait_all_delivered(&db, N, Duration::from_secs(30)).await;
}

/// Proves (issue 6, graceful shutdown): attempts in flight at SIGTERM that finish within the grace
/// period (an application answering after 1.5 s; grace 10 s) are recorded as delivered before the
/// process exits: nothing is released, and nothing is sent twice.
#[tokio::test]
async fn sigterm_lets_attempts_in_flight_finish_and_records_them() {
    const N: usize = 6;
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(Behavior::Slow(200, Duration::from_millis(1500))).await;
    let seeded = seed(&db, 1, N, &[("app", receiver.uri.as_str())]).await;
    let issuer = format!("http://127.0.0.1:{}", free_port());
    // All N in flight at once: the application's window starts at N slots.
    let settings = [("ADIEU_DELIVERY__SHUTDOWN_GRACE_SECS", "10"), ("ADIEU_DELIVERY__PER_CLIENT_CONCURRENCY", "6")];
    let mut only = Replica::start(dir.path(), &db, "only", &issuer, &settings).await;
    only.revoke_all(&seeded.sessions, N).await;
    assert_eq!(receiver.wait_for(N, Duration::from_secs(30)).await.len(), N, "all in flight");
    let stopping = Instant::now();
    let status = only.sigterm().await;
    let took = stopping.elapsed();
    assert!(status.success(), "{status}\n{}", only.log());
    let after = statuses(&db).await;
    eprintln!("SIGTERM: {N} attempts in flight finished within the grace period; stopped in {took:?}; then {after:?}");
    assert_eq!(after.get("delivered").copied(), Some(N as i64), "{after:?}");
    assert_eq!(after.len(), 1, "none pending or leased: {after:?}");
    assert!(only.log().contains(&format!("in_flight={N} abandoned=0 released=0")), "{}", only.log());
    assert_eq!(receiver.received().len(), N, "nothing sent twice");
}

/// Proves (issue 6, fault a): 200 sessions × 2 applications revoked through replica 1, whose
/// worker and replica 2's share the fan-out (slow applications: 300 ms each, 8 at a time per
/// host); replica 1 is killed with SIGKILL a quarter of the way. Replica 2 takes over replica 1's
/// deliveries when their 5-second leases end. Every expected `(sub, sid, client)` arrives; the
/// duplicates are all deliveries replica 1 held a lease on when it died, and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_fan_out_loses_nothing() {
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let slow = Behavior::Slow(200, Duration::from_millis(300));
    let (a, b) = (Receiver::start(slow.clone()).await, Receiver::start(slow).await);
    let seeded = seed(&db, 20, 10, &[("app-a", a.uri.as_str()), ("app-b", b.uri.as_str())]).await;
    let total = seeded.expected.len();
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let settings = [("ADIEU_DELIVERY__LEASE_SECS", "5"), ("ADIEU_DELIVERY__PER_HOST_CONCURRENCY", "8")];
    let mut r1 = Replica::start(dir.path(), &db, "r1", &issuer, &settings).await;
    let _r2 = Replica::start(dir.path(), &db, "r2", &issuer, &settings).await;

    let started = Instant::now();
    r1.revoke_all(&seeded.sessions, 16).await;
    let committed = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals(&[&a, &b]).values().sum::<usize>() < total / 4 {
        assert!(Instant::now() < deadline, "the fan-out did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    r1.sigkill().await;
    let killed_at = started.elapsed();
    let before_kill = arrivals(&[&a, &b]).values().sum::<usize>();
    let in_flight = leased_by(&db, "r1").await;

    let got = wait_all_arrive(&[&a, &b], &seeded.expected, Duration::from_secs(120)).await;
    let finished = started.elapsed();
    wait_all_delivered(&db, total, Duration::from_secs(30)).await;
    let requests: usize = got.values().sum();
    let duplicated: Vec<&Key> = got.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k).collect();
    let extra: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "SIGKILL: {total} deliveries ({} sessions × 2 applications) committed through r1 in {committed:?}; \
         r1 killed at {killed_at:?} after {before_kill} requests had arrived, holding {} leases; \
         all {total} arrived by {finished:?}: {requests} requests, {} distinct, {extra} duplicates \
         (on {} deliveries, all among r1's {} leases)",
        seeded.sessions.len(),
        in_flight.len(),
        got.len(),
        duplicated.len(),
        in_flight.len()
    );
    assert!(!in_flight.is_empty(), "r1 died mid fan-out, holding leases");
    assert_eq!(got.keys().cloned().collect::<HashSet<Key>>(), seeded.expected, "nothing lost, nothing unexpected");
    for k in &duplicated {
        assert!(
            in_flight.contains(*k),
            "{k:?} arrived twice but r1 held no lease on it: only a lost lease explains a duplicate"
        );
        assert_eq!(got[*k], 2, "{k:?}: one lost lease, one extra send");
    }
    assert!(extra <= in_flight.len());
}

/// Proves (issue 6, fault b): application A refuses connections and application B answers 503
/// while 30 sessions are revoked, until every delivery has failed five times (a short retry
/// schedule: 200 ms doubling to the 2 s cap, jittered, 30 attempts); then both come back (A on
/// the same port). Every delivery arrives within one backoff cap of the return, none dead.
#[tokio::test]
async fn an_application_down_for_a_while_gets_every_logout_within_the_retry_schedule() {
    const MAX_BACKOFF: Duration = Duration::from_secs(2);
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let a_port = free_port();
    let a_uri = format!("http://127.0.0.1:{a_port}/backchannel?tenant=t1");
    let b = Receiver::start(Behavior::Status(503)).await;
    let seeded = seed(&db, 3, 10, &[("app-a", a_uri.as_str()), ("app-b", b.uri.as_str())]).await;
    let total = seeded.expected.len();
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let retry = [
        ("ADIEU_DELIVERY__INITIAL_BACKOFF_MS", "200"),
        ("ADIEU_DELIVERY__MAX_BACKOFF_SECS", "2"),
        ("ADIEU_DELIVERY__MAX_ATTEMPTS", "30"),
    ];
    let r1 = Replica::start(dir.path(), &db, "r1", &issuer, &retry).await;
    let _r2 = Replica::start(dir.path(), &db, "r2", &issuer, &retry).await;
    r1.revoke_all(&seeded.sessions, 8).await;

    // Down for a while: every delivery has failed at least five times (its backoff has reached the cap).
    let mut conn = PgConnection::connect(&db.url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let failing: i64 = sqlx::query_scalar(
            // total_attempts counts a claim: a leased delivery's latest attempt is still in flight.
            "SELECT COUNT(*) FROM deliveries WHERE (status = 'pending' AND total_attempts >= 5)
               OR (status = 'leased' AND total_attempts >= 6)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if failing == total as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "only {failing} of {total} deliveries failed five times");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Requests from here on are answered 200 (a request counted just before may still have got
    // a 503; it is retried, and the final check below finds every delivery recorded as delivered).
    let back = Instant::now();
    let a = Receiver::start_at(a_port, Behavior::Status(200)).await;
    b.set_default(Behavior::Status(200));
    // The next attempt of each is at most one backoff cap (2 s) away; 3 s more for claiming.
    let within = MAX_BACKOFF + Duration::from_secs(3);
    let got = wait_all_arrive_since(&[&a, &b], &seeded.expected, within, Some(back)).await;
    let last = a.received().iter().chain(b.received().iter()).map(|r| r.at).max().unwrap();
    let s = wait_all_delivered(&db, total, Duration::from_secs(30)).await;
    let attempts: Vec<i64> =
        sqlx::query_scalar("SELECT total_attempts FROM deliveries").fetch_all(&mut conn).await.unwrap();
    let failed_requests = b.received().iter().filter(|r| r.at < back).count();
    eprintln!(
        "DOWN: {total} deliveries; while down, app-b answered 503 to {failed_requests} requests and app-a \
         refused connections; after the return all arrived within {:?} ({} requests then); attempts per \
         delivery {}..{}; statuses {s:?}",
        last.duration_since(back),
        got.values().sum::<usize>(),
        attempts.iter().min().unwrap(),
        attempts.iter().max().unwrap()
    );
    assert!(attempts.iter().all(|n| (6..=30).contains(n)), "{attempts:?}");
    let _ = conn.close().await;
}

/// Proves (issue 6, fault c): while 100 sessions × 2 applications are being sent by two replicas,
/// every database connection of both replicas is cut three times (`pg_terminate_backend` on the
/// backends whose `application_name` is `adieu <replica>`, the PostgreSQL server itself keeps
/// running). The replicas recover by themselves: every committed delivery arrives and is recorded
/// as delivered, r2 listens for NOTIFY again, a logout committed after the cuts is sent, and both
/// replicas are ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_database_connections_heal_and_nothing_committed_is_lost() {
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let slow = Behavior::Slow(200, Duration::from_millis(200));
    let (a, b) = (Receiver::start(slow.clone()).await, Receiver::start(slow).await);
    let seeded = seed(&db, 10, 11, &[("app-a", a.uri.as_str()), ("app-b", b.uri.as_str())]).await;
    let (late, sessions) = seeded.sessions.split_last().unwrap();
    let late_keys: HashSet<Key> =
        seeded.expected.iter().filter(|k| k.1.starts_with(&format!("sid-{late}-"))).cloned().collect();
    let early: HashSet<Key> = seeded.expected.difference(&late_keys).cloned().collect();
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let settings = [("ADIEU_DELIVERY__LEASE_SECS", "5"), ("ADIEU_DELIVERY__PER_HOST_CONCURRENCY", "8")];
    let r1 = Replica::start(dir.path(), &db, "r1", &issuer, &settings).await;
    let r2 = Replica::start(
        dir.path(),
        &db,
        "r2",
        &issuer,
        &[("ADIEU_DELIVERY__POLL_INTERVAL_MS", "60000"), settings[0], settings[1]],
    )
    .await;
    r2.wait_log("listening for deliveries written by other replicas").await;
    r1.revoke_all(sessions, 16).await;

    let cut = format!(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND usename = '{}' AND application_name IN ('adieu r1', 'adieu r2')",
        db.name
    );
    let mut admin = PgConnection::connect(&db.admin_url).await.unwrap();
    let mut terminated = Vec::new();
    for round in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while arrivals(&[&a, &b]).values().sum::<usize>() < early.len() * round / 5 {
            assert!(Instant::now() < deadline, "the fan-out stalled before cut {round}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let n: i64 = sqlx::query_scalar(&cut).fetch_one(&mut admin).await.unwrap();
        terminated.push(n);
    }
    let _ = admin.close().await;
    assert!(terminated.iter().all(|n| *n > 0), "connections were cut each time: {terminated:?}");

    let got = wait_all_arrive(&[&a, &b], &early, Duration::from_secs(120)).await;
    // Recovered by themselves: r2's listener came back (a new LISTEN, or the listener's own
    // reconnection), and a new logout committed through r1 is sent.
    let relistened = r2.log().matches("listening for deliveries written by other replicas").count() - 1
        + r2.log().matches("listening connection was lost and re-established").count();
    assert!(relistened >= 1, "r2 listens again after the cuts:\n{}", r2.log());
    let before = Instant::now();
    r1.revoke(late).await;
    let all = wait_all_arrive(&[&a, &b], &seeded.expected, Duration::from_secs(30)).await;
    let late_latency = before.elapsed();
    wait_all_delivered(&db, seeded.expected.len(), Duration::from_secs(60)).await;
    let extra: usize = all.values().map(|n| n - 1).sum();
    let logs = r1.log() + &r2.log();
    let seen = |what: &str| logs.matches(what).count();
    eprintln!(
        "CUT: {} deliveries in flight while every connection of both replicas was terminated 3 times \
         ({terminated:?} backends); all arrived: {} requests, {} distinct, {extra} duplicates; a logout \
         after the cuts arrived within {late_latency:?}; r2's listener came back {relistened} times; \
         the replicas logged {} failed claims, {} recordings tried again, {} given up",
        early.len(),
        got.values().sum::<usize>(),
        got.len(),
        seen("claiming deliveries failed"),
        seen("recording attempts failed; trying again"),
        seen("their leases will expire and they will be retried"),
    );
    assert_eq!(all.keys().cloned().collect::<HashSet<Key>>(), seeded.expected, "nothing committed is lost");
    for r in [&r1, &r2] {
        let ready = reqwest::get(format!("{}/readyz", r.base)).await.unwrap();
        assert_eq!(ready.status(), 200, "{} is ready again", r.name);
    }
}

/// One wrong password for `username` at `base`'s sign-in form; returns the status.
async fn wrong_password(base: &str, username: &str) -> u16 {
    let browser = adieu_testkit::Browser::new();
    let page = browser.http.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = adieu_testkit::hidden_field(&page, "csrf").expect("sign-in form");
    let form = [("username", username), ("password", "not the password"), ("csrf", csrf.as_str())];
    browser.http.post(format!("{base}/login")).form(&form).send().await.unwrap().status().as_u16()
}

/// Proves (issue 6, limits across replicas): with `login.max_failures_per_account = 3`, two wrong
/// passwords through replica 1 and one through replica 2 lock the account on both; counted per
/// replica, replica 1 would still allow a third try.
#[tokio::test]
async fn sign_in_limits_hold_across_replicas() {
    let Some(db) = Database::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    seed(&db, 1, 0, &[]).await;
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let limits = [("ADIEU_LOGIN__MAX_FAILURES_PER_ACCOUNT", "3")];
    let r1 = Replica::start(dir.path(), &db, "r1", &issuer, &limits).await;
    let r2 = Replica::start(dir.path(), &db, "r2", &issuer, &limits).await;
    assert_eq!(wrong_password(&r1.base, "user0").await, 401);
    assert_eq!(wrong_password(&r1.base, "USER0").await, 401);
    assert_eq!(wrong_password(&r2.base, "user0").await, 401);
    let (on_r1, on_r2) = (wrong_password(&r1.base, "user0").await, wrong_password(&r2.base, "user0").await);
    eprintln!("LIMITS: failures 2 on r1 + 1 on r2, limit 3: the next attempt gets {on_r1} on r1 and {on_r2} on r2");
    assert_eq!((on_r1, on_r2), (429, 429), "one budget for the account across both replicas");
    assert_eq!(wrong_password(&r1.base, "someone-else").await, 401, "other accounts are not affected");
}
