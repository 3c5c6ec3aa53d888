//! Global Token Revocation (draft-parecki-oauth-global-token-revocation-06) over real HTTP: a
//! caller with its own narrowly scoped credential ends a user's sessions and tokens; the subscribed
//! application is told over the back channel; every answer the draft names is shown.

use crate::support::*;
use adieu_core::Clock;
use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
use adieu_core::store::ApiTokenKind;
use adieu_server::settings::Secret;
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Browser, TestOp};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &str = "admin-token-for-global-revocation-tests-0123";
const GTR: &str = "a-global-token-revocation-credential-0123456789";

async fn call(op: &TestOp, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(op.url("/global-token-revocation"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null))
}

/// Proves: with its own credential, a call naming alice by email ends her session as
/// `session-revoked` (the subscribed application receives a logout token), revokes her tokens,
/// offline ones included (the access token introspects inactive, the offline refresh token no longer
/// works), answers 204, is audited, and is in discovery. Then each error answer: 400, 401, 403, 404
/// and 422.
#[tokio::test]
async fn global_token_revocation_ends_sessions_and_every_token_and_answers_as_the_draft_says() {
    let op = TestOp::start_with(|s| {
        s.admin_token = Some(Secret(ADMIN.into()));
        s.delivery.logout_wait_ms = 0;
    })
    .await
    .unwrap();
    let hash = adieu_server::crypto::hash_secret(GTR);
    op.state
        .store
        .insert_api_token(&hash, ApiTokenKind::GlobalRevocation, "siem", "test", op.clock.now())
        .await
        .unwrap();
    let alice = op.add_user("alice", Some("alice@example.com"), PASSWORD).await.unwrap();
    let receiver = Receiver::start(Behavior::Status(200)).await;
    let all = InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] };
    let app = op.add_bc_client("app", "http://127.0.0.1:9301/cb", &receiver.uri, all).await.unwrap();
    let rs = op.add_simple_client("resource-server", "http://127.0.0.1:9302/cb").await.unwrap();
    let browser = Browser::new();
    let code = get_code(&browser, &op, &app, &[("scope", "openid offline_access")]).await;
    let tokens = exchange(&op, &app, &code, &[]).await;

    let meta: Value = reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(meta["global_token_revocation_endpoint"], json!(op.url("/global-token-revocation")));

    let body = json!({"sub_id": {"format": "email", "email": "ALICE@example.com"}}).to_string();
    assert_eq!(call(&op, Some(GTR), &body).await.0, 204);
    let got = receiver.wait_for(1, Duration::from_secs(15)).await;
    let claims = verify_logout_token(&op, got[0].logout_token(), "app").await;
    assert_eq!(
        (claims["sub"].as_str(), claims["initiator"].as_str()),
        (Some(alice.id.as_str()), Some("session-revoked"))
    );
    let introspected = reqwest::Client::new()
        .post(op.url("/introspect"))
        .basic_auth(&rs.id, rs.secret.as_deref())
        .form(&[("token", tokens["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(introspected, json!({"active": false}));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let res = token_request(&op, &app, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(res.status(), 400, "the offline refresh token is revoked too");
    let (_, log) = api(&op, Method::GET, "/api/v1/logs?type=user.tokens_revoked", Some(ADMIN), None).await;
    assert_eq!(
        (log[0]["user_id"].as_str(), log[0]["actor"].as_str()),
        (Some(alice.id.as_str()), Some("global-token-revocation"))
    );
    assert_eq!(log[0]["detail"]["sessions_ended"], 1, "{log}");

    // The other subject formats find her too (nothing is left to end: still 204).
    for sub_id in [
        json!({"format": "opaque", "id": alice.id.as_str()}),
        json!({"format": "iss_sub", "iss": op.url(""), "sub": alice.id.as_str()}),
    ] {
        assert_eq!(call(&op, Some(GTR), &json!({"sub_id": sub_id}).to_string()).await.0, 204, "{sub_id}");
    }
    // The answers the draft names.
    let cases: [(Option<&str>, String, u16); 7] = [
        (None, body.clone(), 401),
        (Some("not-a-token"), body.clone(), 401),
        (Some(ADMIN), body.clone(), 403),
        (Some(GTR), "not json".into(), 400),
        (Some(GTR), json!({"sub_id": {"format": "email"}}).to_string(), 400),
        (Some(GTR), json!({"sub_id": {"format": "email", "email": "nobody@example.com"}}).to_string(), 404),
        (Some(GTR), json!({"sub_id": {"format": "phone_number", "phone_number": "+1 555"}}).to_string(), 422),
    ];
    for (token, body, want) in cases {
        let (status, err) = call(&op, token, &body).await;
        assert_eq!(status, want, "{token:?} {body}: {err}");
    }
}
