//! Every way a session ends through its public interface (issue 5): the management API, the real
//! `adieu` binary, and the clock. Each test signs one browser in to two applications, one subscribed
//! to the initiator under test and one whose `custom` subscription names every *other* initiator; it
//! proves the subscribed one receives a logout token an independent verifier accepts, naming the
//! right `sub` and `sid`, that the other receives nothing (checked once the queue is empty, not by
//! sleeping), and that the audit log records the initiator.

use crate::support::*;
use adieu_core::initiator::{Initiator, InitiatorMode, InitiatorSubscription};
use adieu_core::store::DeliveryFilter;
use adieu_server::settings::Secret;
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Browser, TestClient, TestOp};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &str = "admin-token-for-initiator-tests-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// A provider with alice, app `sub` subscribed to the initiator and app `unsub` not, both signed in
/// through one browser session.
struct Scene {
    op: TestOp,
    subscribed: TestClient,
    unsubscribed: TestClient,
    r_sub: Receiver,
    r_unsub: Receiver,
    browser: Browser,
    /// alice's `sub`.
    sub: String,
    /// The `sid` in each application's ID token.
    sid_sub: String,
    sid_unsub: String,
}

fn settings(s: &mut adieu_server::Settings) {
    s.admin_token = Some(Secret(ADMIN.into()));
    s.delivery.logout_wait_ms = 0;
}

/// `all` when `mode_all`, else `custom` with only `initiator`.
fn subscribed_to(initiator: Initiator, mode_all: bool) -> InitiatorSubscription {
    if mode_all {
        InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] }
    } else {
        InitiatorSubscription { mode: InitiatorMode::Custom, selected_initiators: vec![initiator] }
    }
}

/// `custom` with every initiator except `initiator`.
fn not_subscribed_to(initiator: Initiator) -> InitiatorSubscription {
    let others = Initiator::ALL.into_iter().filter(|i| *i != initiator && !i.is_always_subscribed()).collect();
    InitiatorSubscription { mode: InitiatorMode::Custom, selected_initiators: others }
}

async fn scene(initiator: Initiator, mode_all: bool, tweak: impl FnOnce(&mut adieu_server::Settings)) -> Scene {
    let op = TestOp::start_with(|s| {
        settings(s);
        tweak(s);
    })
    .await
    .unwrap();
    let user = op.add_user("alice", Some("alice@example.com"), PASSWORD).await.unwrap();
    let (r_sub, r_unsub) = (Receiver::start(Behavior::Status(200)).await, Receiver::start(Behavior::Status(200)).await);
    let subscribed = op
        .add_bc_client("app-sub", "http://127.0.0.1:9101/cb", &r_sub.uri, subscribed_to(initiator, mode_all))
        .await
        .unwrap();
    let unsubscribed = op
        .add_bc_client("app-unsub", "http://127.0.0.1:9102/cb", &r_unsub.uri, not_subscribed_to(initiator))
        .await
        .unwrap();
    let browser = Browser::new();
    let t_sub = exchange(&op, &subscribed, &get_code(&browser, &op, &subscribed, &[]).await, &[]).await;
    let t_unsub = exchange(&op, &unsubscribed, &get_code(&browser, &op, &unsubscribed, &[]).await, &[]).await;
    let sid = |t: &Value| peek_claims(t["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
    Scene {
        sid_sub: sid(&t_sub),
        sid_unsub: sid(&t_unsub),
        sub: user.id.to_string(),
        op,
        subscribed,
        unsubscribed,
        r_sub,
        r_unsub,
        browser,
    }
}

/// The subscribed application got exactly one valid token for alice's session; once nothing is
/// left in the queue, the other application has no delivery and received nothing; the audit log
/// has `session.ended` with `initiator` by `actor`.
async fn assert_only_subscribed_notified(s: &Scene, initiator: Initiator, actor: &str) {
    let got = s.r_sub.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "the subscribed application receives one logout token");
    let claims = verify_logout_token(&s.op, got[0].logout_token(), &s.subscribed.id).await;
    assert_eq!(claims["sub"], s.sub.as_str(), "the token names the user's sub");
    assert_eq!(claims["sid"], s.sid_sub.as_str(), "BC-SID-03: the sid of that application's ID token");
    assert_eq!(claims["initiator"], initiator.as_str(), "the token says why the session ended");

    let deadline = tokio::time::Instant::now() + WAIT;
    while s.op.state.store.queue_stats().await.unwrap().depth > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the delivery queue did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = s.op.state.store.deliveries(&DeliveryFilter::default()).await.unwrap();
    let ours: Vec<_> = all.iter().filter(|d| d.sid.as_str() == s.sid_sub || d.sid.as_str() == s.sid_unsub).collect();
    assert_eq!(ours.len(), 1, "one delivery, for the subscribed application only: {ours:?}");
    assert_eq!((ours[0].client_id.as_str(), ours[0].initiator), (s.subscribed.id.as_str(), initiator));
    assert!(s.r_unsub.received().is_empty(), "the unsubscribed application ({}) receives nothing", s.unsubscribed.id);

    let (status, log) = api(&s.op, Method::GET, "/api/v1/logs?type=session.ended", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let ended: Vec<&Value> = log.as_array().unwrap().iter().filter(|e| e["user_id"] == s.sub.as_str()).collect();
    assert_eq!(ended.len(), 1, "{log}");
    assert_eq!(ended[0]["detail"]["initiator"], initiator.as_str());
    assert_eq!(ended[0]["detail"]["deliveries"], 1);
    assert_eq!(ended[0]["actor"], actor);
}

/// Proves: `PATCH /api/v1/users/{id}` with a password ends the session as `password-changed`, and
/// every refresh token of the user is revoked, the `offline_access` one too.
#[tokio::test]
async fn password_changed_through_the_api_notifies_only_subscribers_and_revokes_offline_tokens() {
    let s = scene(Initiator::PasswordChanged, false, |_| {}).await;
    // An offline grant of the subscribed application, in the same session.
    let code = get_code(&s.browser, &s.op, &s.subscribed, &[("scope", "openid offline_access")]).await;
    let offline = exchange(&s.op, &s.subscribed, &code, &[]).await;
    let rt = offline["refresh_token"].as_str().unwrap().to_owned();

    let path = format!("/api/v1/users/{}", s.sub);
    let (status, body) =
        api(&s.op, Method::PATCH, &path, Some(ADMIN), Some(json!({"password": "a brand new password"}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("password_hash").is_none() && body.get("password").is_none());
    assert_only_subscribed_notified(&s, Initiator::PasswordChanged, "admin-api").await;

    let (status, err) =
        token_error(&s.op, &s.subscribed, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!((status, err.as_str()), (400, "invalid_grant"), "the offline_access refresh token is revoked");
    assert!(!signed_in(&s.browser, &s.op).await);
    // The new password works, the old one does not (the login form answers 401).
    let old = Browser::new().authorize(&s.op, &auth_params(&s.subscribed, &[]), "alice", PASSWORD).await;
    assert!(old.is_err_and(|e| e.to_string().contains("401")), "the old password is refused");
    let loc = Browser::new()
        .authorize(&s.op, &auth_params(&s.subscribed, &[]), "alice", "a brand new password")
        .await
        .unwrap();
    assert!(loc.contains("code="), "{loc}");
    let (_, log) = api(&s.op, Method::GET, "/api/v1/logs?type=user.updated", Some(ADMIN), None).await;
    assert_eq!(log[0]["detail"]["initiator"], "password-changed");
    assert_eq!(log[0]["actor"], "admin-api");
}

/// Proves: changing the email identifier through the API ends the session as
/// `email-identifier-changed` (subscriber in `all` mode); the new email signs in.
#[tokio::test]
async fn email_identifier_changed_through_the_api_notifies_only_subscribers() {
    let s = scene(Initiator::EmailIdentifierChanged, true, |_| {}).await;
    let path = format!("/api/v1/users/{}", s.sub);
    let (status, body) =
        api(&s.op, Method::PATCH, &path, Some(ADMIN), Some(json!({"email": "Alice@New.example"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "alice@new.example");
    assert_only_subscribed_notified(&s, Initiator::EmailIdentifierChanged, "admin-api").await;
    assert!(!signed_in(&s.browser, &s.op).await);
}

/// Proves: deleting the account through the API ends the session as `account-deleted`; the token
/// still names the deleted account's `sub`; the account and its sessions are gone from the API.
#[tokio::test]
async fn account_deleted_through_the_api_notifies_only_subscribers_with_the_sub() {
    let s = scene(Initiator::AccountDeleted, false, |_| {}).await;
    let path = format!("/api/v1/users/{}", s.sub);
    let (status, told) = api(&s.op, Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(status, 200, "{told}");
    assert_eq!((&told["sessions_ended"], &told["notified_clients"]), (&json!(1), &json!(["app-sub"])), "{told}");
    assert_eq!(told["not_notified_clients"], json!(["app-unsub"]), "the answer says who is not told: {told}");
    assert_only_subscribed_notified(&s, Initiator::AccountDeleted, "admin-api").await;
    assert_eq!(api(&s.op, Method::GET, &path, Some(ADMIN), None).await.0, 404);
    let (status, err) = api(&s.op, Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!((status, err["error"].as_str()), (404, Some("invalid_request")), "deleting twice: {err}");
    let (_, log) = api(&s.op, Method::GET, "/api/v1/logs?type=user.deleted", Some(ADMIN), None).await;
    assert_eq!((log[0]["user_id"].as_str(), log[0]["actor"].as_str()), (Some(s.sub.as_str()), Some("admin-api")));
}

/// Proves: the API lists the user's session with both applications and their `sid`s, and
/// `DELETE /api/v1/sessions/{id}` ends it as `session-revoked`; revoking it again is a 409.
#[tokio::test]
async fn session_revoked_through_the_api_notifies_only_subscribers() {
    let s = scene(Initiator::SessionRevoked, false, |_| {}).await;
    let (status, sessions) =
        api(&s.op, Method::GET, &format!("/api/v1/users/{}/sessions", s.sub), Some(ADMIN), None).await;
    assert_eq!(status, 200, "{sessions}");
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    let session = &sessions[0];
    let apps: Vec<(&str, &str, &str)> = session["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["client_id"].as_str().unwrap(), a["client_name"].as_str().unwrap(), a["sid"].as_str().unwrap()))
        .collect();
    assert_eq!(
        apps,
        [("app-sub", "App app-sub", s.sid_sub.as_str()), ("app-unsub", "App app-unsub", s.sid_unsub.as_str())]
    );
    let id = session["id"].as_str().unwrap();
    assert_ne!(id, s.sid_sub, "the session id is not a sid");
    let path = format!("/api/v1/sessions/{id}");
    let (status, told) = api(&s.op, Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(status, 200, "{told}");
    assert_eq!((&told["session_ids"], &told["notified_clients"]), (&json!([id]), &json!(["app-sub"])), "{told}");
    assert_eq!(told["not_notified_clients"], json!(["app-unsub"]), "the answer says who is not told: {told}");
    assert_only_subscribed_notified(&s, Initiator::SessionRevoked, "admin-api").await;
    let (status, err) = api(&s.op, Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(status, 409, "{err}");
    assert!(err["error_description"].as_str().unwrap().contains("session-revoked"), "{err}");
    let (_, after) = api(&s.op, Method::GET, &format!("/api/v1/users/{}/sessions", s.sub), Some(ADMIN), None).await;
    assert_eq!(after, json!([]));
    assert!(!signed_in(&s.browser, &s.op).await);
}

/// Proves: "sign out everywhere" through the API ends every session of the user as
/// `session-revoked` (two browsers here) and only the subscribed application hears of both.
#[tokio::test]
async fn revoking_all_sessions_through_the_api_ends_every_session_of_the_user() {
    let s = scene(Initiator::SessionRevoked, true, |_| {}).await;
    let second = Browser::new();
    get_code(&second, &s.op, &s.subscribed, &[]).await;
    let path = format!("/api/v1/users/{}/sessions", s.sub);
    let (status, body) = api(&s.op, Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!((status, body["sessions_ended"].as_u64()), (200, Some(2)), "{body}");
    // The answer says which applications are told and which are not subscribed.
    assert_eq!(
        (body["notified_clients"].clone(), body["not_notified_clients"].clone()),
        (json!(["app-sub"]), json!(["app-unsub"])),
        "{body}"
    );
    assert_eq!(s.r_sub.wait_for(2, WAIT).await.len(), 2);
    assert!(!signed_in(&s.browser, &s.op).await && !signed_in(&second, &s.op).await);
    let (_, body) = api(&s.op, Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(body["sessions_ended"], 0, "nothing left to end");
}

const BIN: &str = env!("CARGO_BIN_EXE_adieu");

/// Runs the real `adieu` binary on the test provider's database.
async fn cli(op: &TestOp, args: &[&str]) -> (bool, String, String) {
    let db = format!("sqlite://{}", op.dir.path().join("adieu.db").display());
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env("ADIEU_DATABASE_URL", db)
        .env_remove("ADIEU_CONFIG")
        .env_remove("ADIEU_ISSUER")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Proves: `adieu user sessions` lists the session with its applications and `adieu session
/// revoke` (another process, the same database) ends it as `session-revoked`, audited as `cli`;
/// the running provider's worker delivers it.
#[tokio::test]
async fn session_revoked_through_the_cli_notifies_only_subscribers() {
    let s = scene(Initiator::SessionRevoked, false, |_| {}).await;
    let (ok, out, err) = cli(&s.op, &["user", "sessions", "alice"]).await;
    assert!(ok, "{err}");
    let line = out.lines().nth(1).expect("one session line");
    assert!(line.contains(&format!("app-sub={}", s.sid_sub)) && line.contains("app-unsub="), "{out}");
    let id = line.split('\t').next().unwrap();
    let (ok, out, err) = cli(&s.op, &["session", "revoke", id]).await;
    assert!(ok, "{err}");
    assert!(out.contains("session-revoked"), "{out}");
    // The command says exactly which applications are told and which are not.
    assert!(out.contains("applications told: app-sub;") && out.ends_with("this initiator): app-unsub\n"), "{out}");
    // The CLI stamps the delivery with the system clock; bring the provider's test clock past it.
    s.op.clock.advance(Duration::from_secs(60));
    s.op.wake_workers();
    assert_only_subscribed_notified(&s, Initiator::SessionRevoked, "cli").await;
    let (ok, _, err) = cli(&s.op, &["session", "revoke", id]).await;
    assert!(!ok && err.contains("already ended"), "{err}");
}

/// Proves: `adieu user passwd` and `adieu user update --email` go through the same functions as
/// the API (audited as `cli`), and `user list --filter` / `user show` find the account.
#[tokio::test]
async fn cli_user_commands_share_the_apis_rules() {
    let s = scene(Initiator::EmailIdentifierChanged, false, |_| {}).await;
    let (ok, out, _) = cli(&s.op, &["user", "list", "--filter", "EXAMPLE.com"]).await;
    assert!(ok && out.contains("alice\talice@example.com"), "{out}");
    let (ok, out, _) = cli(&s.op, &["user", "list", "--filter", "nobody"]).await;
    assert!(ok && out == "id\tusername\temail\n", "only the header: {out}");
    let (ok, out, _) = cli(&s.op, &["user", "show", &s.sub]).await;
    assert!(ok && out.contains("username: alice"), "{out}");
    let (ok, _, err) = cli(&s.op, &["user", "update", "alice", "--email", "not-an-email"]).await;
    assert!(!ok && err.contains("not an email address"), "{err}");
    let (ok, out, err) = cli(&s.op, &["user", "update", "alice", "--email", "alice@cli.example"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("sessions_ended: 1") && out.contains("initiator: email-identifier-changed"), "{out}");
    s.op.clock.advance(Duration::from_secs(60));
    s.op.wake_workers();
    assert_only_subscribed_notified(&s, Initiator::EmailIdentifierChanged, "cli").await;
    let (_, log) = api(&s.op, Method::GET, "/api/v1/logs?type=user.updated", Some(ADMIN), None).await;
    assert_eq!(log[0]["actor"], "cli");
    assert_eq!(log[0]["detail"]["email"]["new"], "alice@cli.example");
    let (ok, _, err) = cli(&s.op, &["user", "passwd", "alice", "--password", "short"]).await;
    assert!(!ok && err.contains("at least 8"), "{err}");
}

/// Proves: moving the clock past the idle lifetime and sweeping ends the session as
/// `session-expired` (a sweep just before ends nothing); the ended session is refused at the
/// cookie check.
#[tokio::test]
async fn session_expired_by_the_clock_notifies_only_subscribers() {
    let s = scene(Initiator::SessionExpired, false, |st| st.session.idle_timeout_secs = 600).await;
    s.op.clock.advance(Duration::from_secs(599));
    assert_eq!(s.op.sweep_now().await.unwrap(), 0, "not yet expired");
    s.op.clock.advance(Duration::from_secs(1));
    assert_eq!(s.op.sweep_now().await.unwrap(), 1);
    assert_only_subscribed_notified(&s, Initiator::SessionExpired, "system").await;
    let session =
        s.op.state
            .store
            .session_by_id(&s.op.state.store.deliveries(&DeliveryFilter::default()).await.unwrap()[0].session_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(session.end_reason, Some(Initiator::SessionExpired));
    // Moving the clock back cannot revive it: the cookie check refuses an ended session.
    s.op.clock.set(session.last_seen_at);
    assert!(!signed_in(&s.browser, &s.op).await, "an ended session is refused at the cookie check");
    let loc = s
        .browser
        .authorize(&s.op, &auth_params(&s.subscribed, &[("prompt", "none")]), "alice", PASSWORD)
        .await
        .unwrap();
    assert!(loc.contains("error=login_required"), "{loc}");
}

/// Proves: a session that expired while the provider was stopped is ended at start-up (the
/// sweeper's first run; its interval is an hour here, so no periodic sweep can do it), and the
/// subscribed application is told.
#[tokio::test]
async fn session_expired_while_stopped_is_swept_at_start() {
    let s = scene(Initiator::SessionExpired, true, |st| st.session.idle_timeout_secs = 600).await;
    let Scene { op, subscribed, unsubscribed, r_sub, r_unsub, browser, sub, sid_sub, sid_unsub } = s;
    let stopped = op.stop().unwrap();
    stopped.clock.advance(Duration::from_secs(601));
    let op = TestOp::start_in(stopped, |st| {
        settings(st);
        st.session.idle_timeout_secs = 600;
        st.session.sweep_interval_secs = 3600;
    })
    .await
    .unwrap();
    let s = Scene { op, subscribed, unsubscribed, r_sub, r_unsub, browser, sub, sid_sub, sid_unsub };
    assert_only_subscribed_notified(&s, Initiator::SessionExpired, "system").await;
}

/// Proves the API's refusals: no or a wrong token is 401; an unknown user or session 404; bad
/// input 400 with a description that says what is wrong; a taken username 409.
#[tokio::test]
async fn users_api_refuses_bad_requests_clearly() {
    let op = TestOp::start_with(settings).await.unwrap();
    let alice = op.add_user("alice", Some("alice@example.com"), PASSWORD).await.unwrap();
    let alice_path = format!("/api/v1/users/{}", alice.id);
    for (m, p) in [
        (Method::GET, "/api/v1/users".to_owned()),
        (Method::POST, "/api/v1/users".to_owned()),
        (Method::PATCH, alice_path.clone()),
        (Method::DELETE, alice_path.clone()),
        (Method::GET, format!("{alice_path}/sessions")),
        (Method::DELETE, format!("{alice_path}/sessions")),
        (Method::DELETE, "/api/v1/sessions/x".to_owned()),
    ] {
        assert_eq!(api(&op, m.clone(), &p, None, Some(json!({}))).await.0, 401, "{m} {p} without a token");
        assert_eq!(api(&op, m.clone(), &p, Some("wrong"), Some(json!({}))).await.0, 401, "{m} {p} wrong token");
    }
    assert!(op.state.store.user_by_id(&alice.id).await.unwrap().is_some(), "nothing happened without a token");

    for (m, p) in [
        (Method::GET, "/api/v1/users/nobody"),
        (Method::PATCH, "/api/v1/users/nobody"),
        (Method::DELETE, "/api/v1/users/nobody"),
        (Method::GET, "/api/v1/users/nobody/sessions"),
        (Method::DELETE, "/api/v1/users/nobody/sessions"),
        (Method::DELETE, "/api/v1/sessions/nobody"),
    ] {
        let (status, err) = api(&op, m.clone(), p, Some(ADMIN), Some(json!({"username": "x"}))).await;
        assert_eq!((status, err["error"].as_str()), (404, Some("invalid_request")), "{m} {p}: {err}");
    }

    for (body, needle) in [
        (json!({"username": "bob"}), "username and password are required"),
        (json!({"username": "bob", "password": "short"}), "at least 8"),
        (json!({"username": "b o b", "password": PASSWORD}), "without spaces"),
        (json!({"username": "bob", "password": PASSWORD, "email": "bob"}), "not an email address"),
        (json!({"username": "bob", "password": PASSWORD, "pasword": "x"}), "unknown member \"pasword\""),
        (json!({"username": 7, "password": PASSWORD}), "username must be a string"),
        (json!(["bob"]), "must be a JSON object"),
    ] {
        let (status, err) = api(&op, Method::POST, "/api/v1/users", Some(ADMIN), Some(body.clone())).await;
        let d = err["error_description"].as_str().unwrap_or_default();
        assert_eq!((status, err["error"].as_str()), (400, Some("invalid_request")), "{body}: {err}");
        assert!(d.contains(needle), "{body}: {d:?} should say {needle:?}");
    }
    let res = reqwest::Client::new().post(op.url("/api/v1/users")).bearer_auth(ADMIN).body("{").send().await.unwrap();
    assert_eq!(res.status(), 400);
    for (body, needle) in [
        (json!({}), "nothing to change"),
        (json!({"email": 3}), "email must be a string or null"),
        (json!({"password": null}), "password must be a string"),
    ] {
        let (status, err) = api(&op, Method::PATCH, &alice_path, Some(ADMIN), Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(err["error_description"].as_str().unwrap().contains(needle), "{err}");
    }
    let (status, _) = api(&op, Method::GET, "/api/v1/users?cursor=%%%", Some(ADMIN), None).await;
    assert_eq!(status, 400);
    let (status, _) = api(&op, Method::GET, "/api/v1/users?limit=lots", Some(ADMIN), None).await;
    assert_eq!(status, 400);

    let (status, err) =
        api(&op, Method::POST, "/api/v1/users", Some(ADMIN), Some(json!({"username": "ALICE", "password": PASSWORD})))
            .await;
    assert_eq!(status, 409, "{err}");
    assert!(err["error_description"].as_str().unwrap().contains("already exists"), "{err}");
    let (status, _) =
        api(&op, Method::PATCH, &alice_path, Some(ADMIN), Some(json!({"email": "ALICE@example.com"}))).await;
    assert_eq!(status, 200, "the same email again is no conflict");
}

/// Proves: users are created, read, renamed, listed in pages with a filter, and deleted through
/// the API, each change audited as `admin-api`; the OpenAPI document is served and every path it
/// describes is a real route that wants a token.
#[tokio::test]
async fn users_crud_paging_and_the_openapi_document() {
    let op = TestOp::start_with(settings).await.unwrap();
    for (name, email) in [("dave", None), ("carol", Some("carol@corp.example")), ("bob", Some("bob@corp.example"))] {
        let mut body = json!({"username": name, "password": PASSWORD});
        if let Some(e) = email {
            body["email"] = json!(e);
        }
        let (status, u) = api(&op, Method::POST, "/api/v1/users", Some(ADMIN), Some(body)).await;
        assert_eq!(status, 201, "{u}");
        assert_eq!(u["username"], name);
        assert!(u.get("password_hash").is_none());
    }
    let (_, page1) = api(&op, Method::GET, "/api/v1/users?limit=2", Some(ADMIN), None).await;
    let names = |p: &Value| p["users"].as_array().unwrap().iter().map(|u| u["username"].clone()).collect::<Vec<_>>();
    assert_eq!(names(&page1), [json!("bob"), json!("carol")]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = api(&op, Method::GET, &format!("/api/v1/users?limit=2&cursor={cursor}"), Some(ADMIN), None).await;
    assert_eq!(names(&page2), [json!("dave")]);
    assert_eq!(page2["next_cursor"], Value::Null);
    let (_, corp) = api(&op, Method::GET, "/api/v1/users?q=CORP", Some(ADMIN), None).await;
    assert_eq!(names(&corp), [json!("bob"), json!("carol")]);

    let dave = page2["users"][0]["id"].as_str().unwrap().to_owned();
    let (status, renamed) =
        api(&op, Method::PATCH, &format!("/api/v1/users/{dave}"), Some(ADMIN), Some(json!({"username": "David"})))
            .await;
    assert_eq!((status, renamed["username"].as_str()), (200, Some("david")));
    let (_, read) = api(&op, Method::GET, &format!("/api/v1/users/{dave}"), Some(ADMIN), None).await;
    assert_eq!(read, renamed);
    let (status, deleted) = api(&op, Method::DELETE, &format!("/api/v1/users/{dave}"), Some(ADMIN), None).await;
    assert_eq!((status, &deleted["sessions_ended"]), (200, &json!(0)), "{deleted}");
    let (_, log) = api(&op, Method::GET, "/api/v1/logs?type=user.", Some(ADMIN), None).await;
    let kinds: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user.deleted", "user.updated", "user.created", "user.created", "user.created"]);
    assert!(log.as_array().unwrap().iter().all(|e| e["actor"] == "admin-api"));
    assert_eq!(log[1]["detail"]["username"], json!({"old": "dave", "new": "david"}));

    let res = reqwest::get(op.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/api/v1/openapi.json" {
            continue;
        }
        for m in ["get", "post", "put", "patch", "delete"].into_iter().filter(|m| item.get(*m).is_some()) {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let (status, _) = api(&op, method, &path.replace("{id}", "x"), None, None).await;
            assert_eq!(status, 401, "{m} {path} is a route that wants a token");
        }
    }
}

/// Proves (issue 5 item 5): every initiator that an application can leave out is honoured in both
/// subscription modes — the subscriber in `all` mode and in `custom` mode with only that initiator
/// gets the token, an application in `custom` mode without it gets nothing. (`rp-logout` and
/// `idp-logout` are always subscribed in `custom` mode, so they have no "left out" case; the
/// back-channel and upstream tests cover them.)
#[tokio::test]
async fn every_optional_initiator_is_honoured_in_both_modes() {
    for initiator in [
        Initiator::PasswordChanged,
        Initiator::EmailIdentifierChanged,
        Initiator::AccountDeleted,
        Initiator::SessionRevoked,
        Initiator::SessionExpired,
    ] {
        for mode_all in [false, true] {
            let s = scene(initiator, mode_all, |st| st.session.idle_timeout_secs = 600).await;
            let user = format!("/api/v1/users/{}", s.sub);
            let (actor, status) = match initiator {
                Initiator::PasswordChanged => {
                    let body = json!({"password": "another long password"});
                    ("admin-api", api(&s.op, Method::PATCH, &user, Some(ADMIN), Some(body)).await.0)
                }
                Initiator::EmailIdentifierChanged => {
                    let body = json!({"email": "alice@elsewhere.example"});
                    ("admin-api", api(&s.op, Method::PATCH, &user, Some(ADMIN), Some(body)).await.0)
                }
                Initiator::AccountDeleted => {
                    ("admin-api", api(&s.op, Method::DELETE, &user, Some(ADMIN), None).await.0)
                }
                Initiator::SessionRevoked => {
                    let path = format!("{user}/sessions");
                    ("admin-api", api(&s.op, Method::DELETE, &path, Some(ADMIN), None).await.0)
                }
                _ => {
                    s.op.clock.advance(Duration::from_secs(601));
                    assert_eq!(s.op.sweep_now().await.unwrap(), 1);
                    ("system", 200)
                }
            };
            assert!((200..300).contains(&status), "{initiator} (all: {mode_all}): {status}");
            assert_only_subscribed_notified(&s, initiator, actor).await;
        }
    }
}
