//! Back-channel logout delivery over real HTTP: real receivers on loopback, the real worker, an
//! independent verifier (jsonwebtoken against the published JWKS).

use crate::support::*;
use adieu_core::Clock;
use adieu_core::delivery::DeliveryStatus;
use adieu_core::initiator::{Initiator, InitiatorMode, InitiatorSubscription};
use adieu_core::store::DeliveryFilter;
use adieu_testkit::receiver::{Behavior, Receiver, dead_uri};
use adieu_testkit::{Browser, TestClient, TestOp, location};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn all() -> InitiatorSubscription {
    InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] }
}

struct Bc {
    op: TestOp,
    a: TestClient,
    b: TestClient,
}

/// A provider with alice, app-a → `uri_a` (default subscription) and app-b → `uri_b` (all initiators).
async fn bc_world(uri_a: &str, uri_b: &str, tweak: impl FnOnce(&mut adieu_server::Settings)) -> Bc {
    let op = TestOp::start_with(tweak).await.unwrap();
    op.add_user("alice", Some("alice@example.com"), PASSWORD).await.unwrap();
    let a =
        op.add_bc_client("app-a", "http://127.0.0.1:9001/cb", uri_a, InitiatorSubscription::default()).await.unwrap();
    let b = op.add_bc_client("app-b", "http://127.0.0.1:9002/cb", uri_b, all()).await.unwrap();
    Bc { op, a, b }
}

/// Signs in to both clients in one browser; returns the browser and each ID token.
async fn sign_in_both(bc: &Bc) -> (Browser, String, String) {
    let browser = Browser::new();
    let ta = exchange(&bc.op, &bc.a, &get_code(&browser, &bc.op, &bc.a, &[]).await, &[]).await;
    let tb = exchange(&bc.op, &bc.b, &get_code(&browser, &bc.op, &bc.b, &[]).await, &[]).await;
    (browser, ta["id_token"].as_str().unwrap().to_owned(), tb["id_token"].as_str().unwrap().to_owned())
}

async fn rp_logout(bc: &Bc, browser: &Browser, hint: &str) -> reqwest::Response {
    browser.http.get(bc.op.url("/logout")).query(&[("id_token_hint", hint)]).send().await.unwrap()
}

/// [`crate::support::verify_logout_token`], plus the shape of our tokens: `exp` two minutes after
/// `iat` (BC-LT-08) and a non-empty `jti`.
async fn verify_logout_token(op: &TestOp, token: &str, client_id: &str) -> Value {
    let claims = crate::support::verify_logout_token(op, token, client_id).await;
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120, "BC-LT-08");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    claims
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_of(op: &TestOp, client: &str) -> Vec<DeliveryStatus> {
    let f = DeliveryFilter { client_id: Some(adieu_core::ClientId::new(client)), ..Default::default() };
    op.state.store.deliveries(&f).await.unwrap().iter().map(|d| d.status).collect()
}

/// Proves: both applications of a session get a token an independent verifier accepts, whose `sid`
/// equals the one in that application's ID token; the POST is a form with only `logout_token` and
/// keeps the URI's query (BC-SEND-01/02, BC-REG-02); a client in another session gets nothing; the
/// logout page says who confirmed.
#[tokio::test]
async fn both_applications_of_the_session_receive_valid_tokens_and_others_nothing() {
    let (ra, rb, rc) = (
        Receiver::start(Behavior::Status(200)).await,
        Receiver::start(Behavior::Status(204)).await,
        Receiver::start(Behavior::Status(200)).await,
    );
    let bc = bc_world(&ra.uri, &rb.uri, |_| {}).await;
    let c = bc.op.add_bc_client("app-c", "http://127.0.0.1:9003/cb", &rc.uri, all()).await.unwrap();
    // Someone else's session with app-c.
    bc.op.add_user("bob", None, PASSWORD).await.unwrap();
    let other = Browser::new();
    let loc = other.authorize(&bc.op, &auth_params(&c, &[]), "bob", PASSWORD).await.unwrap();
    assert!(loc.contains("code="));

    let (browser, id_a, id_b) = sign_in_both(&bc).await;
    let res = rp_logout(&bc, &browser, &id_a).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();

    for (r, client, id_token) in [(&ra, "app-a", &id_a), (&rb, "app-b", &id_b)] {
        let got = r.wait_for(1, WAIT).await;
        assert_eq!(got.len(), 1, "{client} receives exactly one token");
        let req = &got[0];
        assert_eq!(req.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        assert_eq!(
            req.form.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["logout_token"],
            "BC-SEND-02: only logout_token"
        );
        assert_eq!(req.query.as_deref(), Some("tenant=t1"), "BC-REG-02: the URI's query is kept");
        let claims = verify_logout_token(&bc.op, req.logout_token(), client).await;
        let id_claims = peek_claims(id_token);
        assert_eq!(claims["sid"], id_claims["sid"], "BC-SID-03: sid equals the ID token's");
        assert_eq!(claims["sub"], id_claims["sub"]);
    }
    wait_until("both delivered", || async {
        status_of(&bc.op, "app-a").await == [DeliveryStatus::Delivered]
            && status_of(&bc.op, "app-b").await == [DeliveryStatus::Delivered]
    })
    .await;
    assert!(rc.received().is_empty(), "a client of another session receives nothing");
    assert!(page.contains("App app-a") && page.contains("<span class=\"badge ok\">Signed out</span>"), "{page}");
}

/// Proves: one application that never answers does not delay another (BC-SEND-05).
#[tokio::test]
async fn a_hanging_receiver_does_not_delay_a_live_one() {
    let (hang, live) = (Receiver::start(Behavior::Hang).await, Receiver::start(Behavior::Status(200)).await);
    let bc = bc_world(&hang.uri, &live.uri, |s| s.delivery.logout_wait_ms = 0).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    rp_logout(&bc, &browser, &id_a).await;
    assert_eq!(live.wait_for(1, WAIT).await.len(), 1);
    hang.wait_for(1, WAIT).await;
    wait_until("live delivered", || async { status_of(&bc.op, "app-b").await == [DeliveryStatus::Delivered] }).await;
    assert_eq!(status_of(&bc.op, "app-a").await, [DeliveryStatus::Leased], "the hanging one is still in flight");
}

/// Proves: a receiver that never answers times out and the delivery is scheduled again.
#[tokio::test]
async fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let hang = Receiver::start(Behavior::Hang).await;
    let bc = bc_world(&hang.uri, &dead_uri(), |s| s.delivery.request_timeout_ms = 300).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    rp_logout(&bc, &browser, &id_a).await;
    let op = &bc.op;
    wait_until("timeout recorded", || async {
        let d = op.state.store.deliveries(&DeliveryFilter::default()).await.unwrap();
        let a = d.iter().find(|d| d.client_id.as_str() == "app-a").unwrap();
        a.status == DeliveryStatus::Pending && a.last_error.as_deref().is_some_and(|e| e.contains("timed out"))
    })
    .await;
}

/// Proves: 5xx then 200 is retried after the backoff (injected clock) and delivered, with a fresh
/// token (new jti) per attempt.
#[tokio::test]
async fn bc_send_06_5xx_then_200_is_retried_and_delivered() {
    let ra = Receiver::start(Behavior::Status(200)).await;
    ra.script([Behavior::Status(503)]);
    let bc = bc_world(&ra.uri, &dead_uri(), |_| {}).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    rp_logout(&bc, &browser, &id_a).await;
    ra.wait_for(1, WAIT).await;
    wait_until("retry scheduled", || async { status_of(&bc.op, "app-a").await == [DeliveryStatus::Pending] }).await;
    // Not before the backoff: waking without moving the clock changes nothing.
    bc.op.wake_workers();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ra.received().len(), 1);
    bc.op.clock.advance(Duration::from_secs(2));
    bc.op.wake_workers();
    let got = ra.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    wait_until("delivered", || async { status_of(&bc.op, "app-a").await == [DeliveryStatus::Delivered] }).await;
    let (j1, j2) =
        (peek_claims(got[0].logout_token())["jti"].clone(), peek_claims(got[1].logout_token())["jti"].clone());
    assert_ne!(j1, j2, "a fresh token per attempt");
}

/// Proves: 400 is final (BC-SEND-06): rejected, never retried, audited.
#[tokio::test]
async fn bc_send_06_400_is_not_retried() {
    let ra = Receiver::start(Behavior::Status(400)).await;
    let bc = bc_world(&ra.uri, &dead_uri(), |_| {}).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    rp_logout(&bc, &browser, &id_a).await;
    wait_until("rejected", || async { status_of(&bc.op, "app-a").await == [DeliveryStatus::Rejected] }).await;
    bc.op.clock.advance(Duration::from_secs(3600));
    bc.op.wake_workers();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ra.received().len(), 1);
    let log = bc
        .op
        .state
        .store
        .audit_events(&adieu_core::audit::AuditFilter { kind: Some("delivery.rejected".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
}

/// Proves: a redirect is never followed; the delivery is dead with the reason.
#[tokio::test]
async fn a_redirect_is_not_followed() {
    let target = Receiver::start(Behavior::Status(200)).await;
    let ra = Receiver::start(Behavior::Redirect(target.uri.clone())).await;
    let bc = bc_world(&ra.uri, &dead_uri(), |_| {}).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    rp_logout(&bc, &browser, &id_a).await;
    wait_until("dead", || async { status_of(&bc.op, "app-a").await == [DeliveryStatus::Dead] }).await;
    assert!(target.received().is_empty(), "the redirect target was never called");
    let d = bc.op.state.store.deliveries(&DeliveryFilter::default()).await.unwrap();
    let a = d.iter().find(|d| d.client_id.as_str() == "app-a").unwrap();
    assert!(a.last_error.as_deref().unwrap().contains("redirects are not followed"));
}

/// Proves the retry schedule and dead-lettering with the injected clock: attempts back off
/// exponentially (with jitter within [½, 1] of the step) and stop after `max_attempts`.
#[tokio::test]
async fn retry_schedule_backs_off_and_dead_letters_after_max_attempts() {
    let ra = Receiver::start(Behavior::Status(500)).await;
    let bc = bc_world(&ra.uri, &dead_uri(), |s| s.delivery.max_attempts = 4).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    rp_logout(&bc, &browser, &id_a).await;
    let op = &bc.op;
    let mut seen = 1;
    ra.wait_for(1, WAIT).await;
    for step_ms in [1000i64, 2000, 4000] {
        let d = loop {
            let d = op
                .state
                .store
                .deliveries(&DeliveryFilter::default())
                .await
                .unwrap()
                .into_iter()
                .find(|d| d.client_id.as_str() == "app-a")
                .unwrap();
            if d.status == DeliveryStatus::Pending && d.attempts as usize == seen {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let now = op.clock.now();
        let delay = d.next_attempt_at.0 - now.0;
        assert!((step_ms / 2..=step_ms).contains(&delay), "attempt {seen}: delay {delay} ms for step {step_ms} ms");
        op.clock.advance(Duration::from_millis(u64::try_from(delay).unwrap()));
        op.wake_workers();
        seen += 1;
        assert_eq!(ra.wait_for(seen, WAIT).await.len(), seen);
    }
    wait_until("dead", || async { status_of(op, "app-a").await == [DeliveryStatus::Dead] }).await;
    let (d, attempts) = op
        .state
        .store
        .delivery(
            &op.state
                .store
                .deliveries(&DeliveryFilter::default())
                .await
                .unwrap()
                .into_iter()
                .find(|d| d.client_id.as_str() == "app-a")
                .unwrap()
                .id,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|a| a.http_status == Some(500)));
    assert!(d.last_error.unwrap().contains("gave up after 4 attempt(s)"));
    // An operator's retry starts a new round.
    assert!(op.state.store.retry_delivery(&d.id, "test", op.clock.now()).await.unwrap().is_some());
    ra.set_default(Behavior::Status(200));
    op.wake_workers();
    wait_until("delivered after retry", || async { status_of(op, "app-a").await == [DeliveryStatus::Delivered] }).await;
}

/// Proves: with `max_attempts = 1` (Auth0's behaviour) a failure is final.
#[tokio::test]
async fn one_attempt_means_no_retry() {
    let ra = Receiver::start(Behavior::Status(503)).await;
    let bc = bc_world(&ra.uri, &dead_uri(), |s| s.delivery.max_attempts = 1).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    rp_logout(&bc, &browser, &id_a).await;
    wait_until("dead", || async { status_of(&bc.op, "app-a").await == [DeliveryStatus::Dead] }).await;
}

/// Proves: `custom` subscriptions are honoured and `all` gets every initiator; the audit log names
/// the initiator.
#[tokio::test]
async fn initiator_subscriptions_custom_versus_all() {
    let (ra, rb) = (Receiver::start(Behavior::Status(200)).await, Receiver::start(Behavior::Status(200)).await);
    let bc = bc_world(&ra.uri, &rb.uri, |_| {}).await;
    sign_in_both(&bc).await;
    let user = bc.op.state.store.user_by_login("alice").await.unwrap().unwrap();
    let session = bc.op.state.store.open_sessions_of_user(&user.id).await.unwrap().remove(0);
    adieu_server::session_end::end_session(&bc.op.state, &session.id, Initiator::SessionRevoked).await.unwrap();
    assert_eq!(rb.wait_for(1, WAIT).await.len(), 1, "`all` receives session-revoked");
    wait_until("b delivered", || async { status_of(&bc.op, "app-b").await == [DeliveryStatus::Delivered] }).await;
    assert!(ra.received().is_empty(), "default `custom` does not receive session-revoked");
    assert!(status_of(&bc.op, "app-a").await.is_empty());
    let log = bc
        .op
        .state
        .store
        .audit_events(&adieu_core::audit::AuditFilter { kind: Some("session.ended".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(log[0].detail["initiator"], "session-revoked");
    assert_eq!(log[0].detail["deliveries"], 1);
}

/// Proves: removing a client's logout URI unsubscribes it: its pending deliveries are discarded
/// and that is audited.
#[tokio::test]
async fn unsubscribing_discards_pending_deliveries() {
    let bc = bc_world(&dead_uri(), &dead_uri(), |s| s.delivery.logout_wait_ms = 0).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    rp_logout(&bc, &browser, &id_a).await;
    wait_until("a failed once", || async { status_of(&bc.op, "app-a").await == [DeliveryStatus::Pending] }).await;
    let mut a = bc.op.state.store.client_by_id(&adieu_core::ClientId::new("app-a")).await.unwrap().unwrap();
    a.backchannel_logout_uri = None;
    a.backchannel_logout_session_required = false;
    bc.op.state.store.update_client(&a, "test", bc.op.clock.now()).await.unwrap();
    assert_eq!(status_of(&bc.op, "app-a").await, [DeliveryStatus::Discarded]);
    let log = bc
        .op
        .state
        .store
        .audit_events(&adieu_core::audit::AuditFilter { client_id: Some("app-a".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(log[0].kind, "delivery.discarded");
    assert_eq!(log[1].kind, "backchannel.unsubscribed");
}

/// Proves: RP-initiated logout with a `post_logout_redirect_uri` notifies first (BC-SEND-08), then redirects.
#[tokio::test]
async fn bc_send_08_applications_are_notified_before_the_post_logout_redirect() {
    let (ra, rb) = (Receiver::start(Behavior::Status(200)).await, Receiver::start(Behavior::Status(200)).await);
    let bc = bc_world(&ra.uri, &rb.uri, |_| {}).await;
    let (browser, id_a, _) = sign_in_both(&bc).await;
    let bye = format!("{}/bye", bc.a.redirect_uri);
    let res = browser
        .http
        .get(bc.op.url("/logout"))
        .query(&[("id_token_hint", id_a.as_str()), ("post_logout_redirect_uri", &bye)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res).unwrap(), bye);
    assert_eq!(ra.received().len(), 1, "notified before the redirect was answered");
    assert_eq!(rb.received().len(), 1);
}

/// Proves: the delivery policy refuses, at connect time, a name that resolves to a loopback or
/// private address when the development profile is off, even though the URI itself looks public.
#[tokio::test]
async fn outbound_policy_refuses_names_resolving_to_forbidden_addresses() {
    use adieu_server::delivery::outbound::{NameLookup, Outbound, OutboundPolicy, OutboundTimeouts};
    use std::net::IpAddr;
    #[derive(Debug)]
    struct Fixed(Vec<IpAddr>);
    impl NameLookup for Fixed {
        fn lookup(
            &self,
            _host: String,
        ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            let v = self.0.clone();
            Box::pin(async move { Ok(v) })
        }
    }
    let timeouts = OutboundTimeouts { connect: Duration::from_secs(2), total: Duration::from_secs(5) };
    for addr in ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1", "fd00::1", "::ffff:192.168.1.1", "100.64.0.1"] {
        let policy = OutboundPolicy { development: false, allow_cidrs: vec![], own_host: "id.example.test".into() };
        let client = Outbound::new(policy, timeouts, std::sync::Arc::new(Fixed(vec![addr.parse().unwrap()]))).unwrap();
        match client.send_logout_token("https://rp.example.test/backchannel", "t").await {
            adieu_core::delivery::Response::Failed { recoverable: false, reason } => {
                assert!(reason.contains("refused"), "{addr}: {reason}")
            }
            other => panic!("{addr}: expected a refusal, got {other:?}"),
        }
    }
    // Literal addresses never reach the resolver and are refused before any connection.
    let client = Outbound::new(
        OutboundPolicy { development: false, allow_cidrs: vec![], own_host: "id.example.test".into() },
        timeouts,
        std::sync::Arc::new(Fixed(vec![])),
    )
    .unwrap();
    for uri in ["https://127.0.0.1/bc", "https://[::1]/bc", "http://rp.example.test/bc"] {
        assert!(
            matches!(
                client.send_logout_token(uri, "t").await,
                adieu_core::delivery::Response::Failed { recoverable: false, .. }
            ),
            "{uri}"
        );
    }
}

/// `adieu_delivery_handed_over_total` from `/metrics`.
async fn handed_over(op: &TestOp) -> u64 {
    let text = reqwest::get(op.url("/metrics")).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("adieu_delivery_handed_over_total ")).expect("the metric");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Proves the hand-off (adieu_core::handoff): a logout's deliveries go straight to this replica's
/// worker, up to its free slots, and the rest through the queue; each application is told once.
#[tokio::test]
async fn a_logout_hands_its_deliveries_to_the_worker_up_to_its_free_slots() {
    for (slots, expect_handed) in [(256, 2), (1, 1)] {
        let (ra, rb) = (Receiver::start(Behavior::Status(200)).await, Receiver::start(Behavior::Status(200)).await);
        let bc = bc_world(&ra.uri, &rb.uri, |s| s.delivery.global_concurrency = slots).await;
        let (browser, id_a, _) = sign_in_both(&bc).await;
        assert_eq!(rp_logout(&bc, &browser, &id_a).await.status(), 200);
        assert_eq!(ra.wait_for(1, WAIT).await.len(), 1);
        assert_eq!(rb.wait_for(1, WAIT).await.len(), 1);
        wait_until("both delivered", || async {
            status_of(&bc.op, "app-a").await == [DeliveryStatus::Delivered]
                && status_of(&bc.op, "app-b").await == [DeliveryStatus::Delivered]
        })
        .await;
        assert_eq!(handed_over(&bc.op).await, expect_handed, "with {slots} slot(s)");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!((ra.received().len(), rb.received().len()), (1, 1), "each told once");
    }
}
