//! Retention with the injected clock (issue 11 item 10): a million finished deliveries (with one
//! attempt each) and a million audit events written over ten simulated weeks (100,000 a week),
//! pruned at the end of every week, and five more weeks without new ones;
//! table sizes stay bounded by what the retention ages keep, pending deliveries are never pruned,
//! and a logout that comes while the pruner works through a backlog is not held up by it.

use adieu_core::initiator::Initiator;
use adieu_testkit::{ManualClockExt, TestOp};
use sqlx::{Connection, SqliteConnection};
use std::time::Instant;

const DAY: i64 = 86_400_000;
const ROWS: i64 = 1_000_000;
const WEEKS: i64 = 10;

async fn count(db: &mut SqliteConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut *db).await.unwrap()
}

/// One simulated week's share of the million delivered deliveries, attempts and audit events,
/// finished evenly over the week that starts at `from`.
async fn seed_week(db: &mut SqliteConnection, week: i64, from: i64) {
    let rows = ROWS / WEEKS;
    let step = 7 * DAY / rows;
    for sql in [
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
         INSERT INTO deliveries (id, session_id, client_id, sub, sid, initiator, status, attempts, total_attempts,
           next_attempt_at, lease_until, round_started_at, created_at, finished_at, last_error)
         SELECT ?4 || i, 's-' || i, 'app', 'u', 'sid-' || i, 'rp-logout', 'delivered', 1, 1,
                ?2 + i * ?3, NULL, ?2 + i * ?3, ?2 + i * ?3, ?2 + i * ?3, NULL FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
         INSERT INTO delivery_attempts (delivery_id, number, at, latency_ms, http_status, error)
         SELECT ?4 || i, 1, ?2 + i * ?3, 3, 200, NULL FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
         INSERT INTO audit_log (at, kind, actor, detail) SELECT ?2 + i * ?3, 'session.ended', 'system', json_object('seeded', ?4) FROM n",
    ] {
        let prefix = format!("w{week}-");
        sqlx::query(sql).bind(rows).bind(from).bind(step).bind(&prefix).execute(&mut *db).await.unwrap();
    }
}

/// A delivery that is still being retried, from the very start.
async fn seed_pending(db: &mut SqliteConnection, from: i64) {
    sqlx::query(
        "INSERT INTO deliveries (id, session_id, client_id, sub, sid, initiator, status, attempts, total_attempts,
           next_attempt_at, lease_until, round_started_at, created_at, finished_at, last_error)
         VALUES ('still-pending', 's', 'app', 'u', 'sid', 'rp-logout', 'pending', 3, 3, ?1, NULL, ?1, ?1, NULL, NULL)",
    )
    .bind(from + 400 * DAY)
    .execute(&mut *db)
    .await
    .unwrap();
}

/// Proves: finished deliveries older than 30 days and audit events older than the audit age go,
/// in small batches, week after simulated week; pending deliveries stay; a logout during a
/// pruning run completes before the run does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_deliveries_over_simulated_weeks_stay_bounded() {
    let op = TestOp::start_with(|s| {
        s.retention.audit_days = 14;
        s.retention.interval_secs = 3600; // runs here only when the test says
    })
    .await
    .unwrap();
    let start = op.clock.now_ms().0;
    let path = op.dir.path().join("adieu.db");
    let mut db = SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    seed_pending(&mut db, start).await;
    let user = op.add_user("alice", None, "correct horse battery").await.unwrap();

    for week in 1..=WEEKS + 5 {
        if week <= WEEKS {
            let seeded = Instant::now();
            seed_week(&mut db, week, start + (week - 1) * 7 * DAY).await;
            println!(
                "week {week}: {} more deliveries, attempts and audit events in {:?}",
                ROWS / WEEKS,
                seeded.elapsed()
            );
        }
        op.clock.set(adieu_core::UnixMillis(start + week * 7 * DAY));
        let now = op.clock.now_ms().0;
        let began = Instant::now();
        let run = {
            let state = op.state.clone();
            tokio::spawn(async move { adieu_server::retention::prune_once(&state).await.unwrap() })
        };
        // A logout while the run works through its backlog.
        let session = adieu_core::Session {
            id: adieu_core::SessionId::new(format!("live-{week}")),
            user_id: user.id.clone(),
            auth_time: op.clock.now_ms(),
            created_at: op.clock.now_ms(),
            last_seen_at: op.clock.now_ms(),
            ended_at: None,
            end_reason: None,
        };
        op.state.store.create_session(&session, &format!("cookie-{week}")).await.unwrap();
        let logout_began = Instant::now();
        let ended =
            adieu_server::session_end::end_session(&op.state, &session.id, Initiator::SessionRevoked).await.unwrap();
        let logout = logout_began.elapsed();
        assert!(ended.is_some());
        let run_was_busy = !run.is_finished();
        let pruned = run.await.unwrap();
        let run_took = began.elapsed();
        let deliveries = count(&mut db, "SELECT count(*) FROM deliveries").await;
        let attempts = count(&mut db, "SELECT count(*) FROM delivery_attempts").await;
        let audit = count(&mut db, "SELECT count(*) FROM audit_log").await;
        let oldest_kept =
            count(&mut db, "SELECT coalesce(min(finished_at), 0) FROM deliveries WHERE status = 'delivered'").await;
        println!(
            "week {week}: pruned {} deliveries and {} audit events in {run_took:?}; logout during the run took \
             {logout:?} (run still busy: {run_was_busy}); kept {deliveries} deliveries, {attempts} attempts, {audit} audit events",
            pruned.deliveries, pruned.audit_events
        );
        assert!(
            oldest_kept == 0 || oldest_kept >= now - 30 * DAY,
            "week {week}: a delivery older than 30 days survived"
        );
        // At most 30 days of the evenly spread rows (+1 for rounding), the pending one, and the
        // deliveries of this test's own logouts (none here: the session had no participation).
        let days = |d: i64| (d * ROWS + WEEKS * 7 - 1) / (WEEKS * 7);
        assert!(deliveries <= days(30) + 2, "week {week}: {deliveries} deliveries kept");
        assert!(attempts <= days(30) + 1, "week {week}: {attempts} attempts kept");
        assert!(audit <= days(14) + 64, "week {week}: {audit} audit events kept");
        if pruned.deliveries > 10_000 {
            assert!(run_was_busy, "week {week}: the logout waited for the whole pruning run");
        }
    }
    let pending = count(&mut db, "SELECT count(*) FROM deliveries WHERE id = 'still-pending'").await;
    assert_eq!(pending, 1, "a pending delivery is never pruned");
    let _ = db.close().await;
}
