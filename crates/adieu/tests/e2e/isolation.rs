//! Isolation between applications that share a host (issue 11 item 9): 50 applications on one
//! host name (127.0.0.1, one port each), 5 of which accept connections and never answer, and 30
//! logouts back to back. Every healthy application must get all its tokens while the hanging
//! attempts still wait for their 10-second timeout: healthy deliveries are not queued behind
//! hanging ones. (How fast they arrive is a benchmark: `bench`, `docs/benchmarks.md`.)

use adieu_core::id::{SessionId, Sid};
use adieu_core::initiator::{Initiator, InitiatorMode, InitiatorSubscription};
use adieu_core::session::Session;
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{ManualClockExt, TestOp};
use std::time::{Duration, Instant};

/// Proves: hanging applications cannot take the delivery slots their host shares with healthy
/// ones (per-application windows inside the per-host limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_applications_do_not_hold_back_healthy_ones_on_the_same_host() {
    const APPS: usize = 50;
    const HANGING: usize = 5;
    const LOGOUTS: usize = 30;
    let op = TestOp::start_with(|s| {
        s.delivery.request_timeout_ms = 10_000;
        s.delivery.logout_wait_ms = 0;
    })
    .await
    .unwrap();
    let user = op.add_user("alice", None, "correct horse battery").await.unwrap();
    let all = InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: Default::default() };
    let mut receivers = Vec::new();
    for i in 0..APPS {
        let behavior = if i < HANGING { Behavior::Hang } else { Behavior::Status(200) };
        let r = Receiver::start(behavior).await;
        op.add_bc_client(&format!("app{i:02}"), "http://127.0.0.1:9/cb", &r.uri, all.clone()).await.unwrap();
        receivers.push(r);
    }
    let now = op.clock.now_ms();
    let mut sessions = Vec::new();
    for s in 0..LOGOUTS {
        let id = SessionId::new(format!("session-{s}"));
        let session = Session {
            id: id.clone(),
            user_id: user.id.clone(),
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            ended_at: None,
            end_reason: None,
        };
        op.state.store.create_session(&session, &format!("cookie-{s}")).await.unwrap();
        for i in 0..APPS {
            let client = adieu_core::ClientId::new(format!("app{i:02}"));
            op.state.store.ensure_participation(&id, &client, &Sid::new(format!("sid-{s}-{i}")), now).await.unwrap();
        }
        sessions.push(id);
    }
    let start = Instant::now();
    for id in &sessions {
        adieu_server::session_end::end_session(&op.state, id, Initiator::SessionRevoked).await.unwrap();
    }
    let healthy = &receivers[HANGING..];
    let deadline = start + Duration::from_secs(9);
    loop {
        let missing: usize = healthy.iter().map(|r| LOGOUTS.saturating_sub(r.received().len())).sum();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} healthy deliveries still waiting after 9 s: queued behind the hanging applications"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = healthy.iter().flat_map(|r| r.received()).map(|r| r.at).max().unwrap();
    let hanging_seen: usize = receivers[..HANGING].iter().map(|r| r.received().len()).sum();
    println!(
        "{} healthy deliveries of {LOGOUTS} logouts to {} applications done {:?} after the first logout; \
         {hanging_seen} attempts reached the hanging applications meanwhile",
        (APPS - HANGING) * LOGOUTS,
        APPS - HANGING,
        last.duration_since(start)
    );
}
