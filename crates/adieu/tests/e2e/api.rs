//! The management API, dynamic registration and `/metrics` over real HTTP.

use crate::support::*;
use adieu_server::settings::Secret;
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Browser, ManualClockExt, TestClient, TestOp};
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &str = "admin-token-for-tests-0123456789abcdef";
const REG: &str = "registration-token-for-tests-0123456789";

async fn op() -> TestOp {
    let op = TestOp::start_with(|s| {
        s.admin_token = Some(Secret(ADMIN.into()));
        s.registration_token = Some(Secret(REG.into()));
    })
    .await
    .unwrap();
    op.add_user("alice", None, PASSWORD).await.unwrap();
    op
}

#[tokio::test]
async fn management_api_requires_an_admin_token() {
    let op = op().await;
    let res = reqwest::get(op.url("/api/v1/clients")).await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("www-authenticate").unwrap().to_str().unwrap().starts_with("Bearer"));
    assert_eq!(api(&op, reqwest::Method::GET, "/api/v1/clients", Some("wrong-token"), None).await.0, 401);
    assert_eq!(
        api(&op, reqwest::Method::GET, "/api/v1/clients", Some(REG), None).await.0,
        401,
        "a registration token is not an admin token"
    );
    assert_eq!(api(&op, reqwest::Method::GET, "/api/v1/clients", Some(ADMIN), None).await.0, 200);
    // A token created with the CLI's code path (stored hashed) works too.
    let t = adieu_server::crypto::random_secret();
    op.state
        .store
        .insert_api_token(
            &adieu_server::crypto::hash_secret(&t),
            adieu_core::store::ApiTokenKind::Admin,
            "t",
            "cli",
            op.clock.now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(api(&op, reqwest::Method::GET, "/api/v1/logs", Some(&t), None).await.0, 200);
}

/// Proves: clients are created, read, changed and deleted through the API; subscribing,
/// changing and unsubscribing the logout URI are in the audit log with old and new values.
#[tokio::test]
async fn clients_crud_with_audited_logout_uri_changes() {
    let op = op().await;
    let (status, created) = api(
        &op,
        reqwest::Method::POST,
        "/api/v1/clients",
        Some(ADMIN),
        Some(json!({
            "client_id": "app-x",
            "client_name": "App X",
            "redirect_uris": ["http://127.0.0.1:9500/cb"],
            "backchannel_logout_uri": "http://127.0.0.1:9500/bc?x=1",
            "backchannel_logout_session_required": true,
            "backchannel_logout_initiators": {"mode": "custom", "selected_initiators": ["session-expired"]},
            "id_token_signed_response_alg": "ES256",
            "logo_uri": "https://ignored.example/logo.png"
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["client_id"], "app-x");
    assert!(created["client_secret"].as_str().unwrap().len() >= 43);
    assert_eq!(
        created["backchannel_logout_initiators"]["selected_initiators"],
        json!(["rp-logout", "idp-logout", "session-expired"])
    );
    let (_, read) = api(&op, reqwest::Method::GET, "/api/v1/clients/app-x", Some(ADMIN), None).await;
    assert!(read.get("client_secret").is_none(), "the secret is shown only at creation");
    assert_eq!(read["backchannel_logout_uri"], "http://127.0.0.1:9500/bc?x=1");

    let (status, patched) = api(
        &op,
        reqwest::Method::PATCH,
        "/api/v1/clients/app-x",
        Some(ADMIN),
        Some(json!({"backchannel_logout_uri": "http://127.0.0.1:9501/bc"})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let (status, patched) = api(
        &op,
        reqwest::Method::PATCH,
        "/api/v1/clients/app-x",
        Some(ADMIN),
        Some(json!({"backchannel_logout_uri": null})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert!(patched.get("backchannel_logout_uri").is_none());
    assert_eq!(patched["backchannel_logout_session_required"], false);

    let (_, log) =
        api(&op, reqwest::Method::GET, "/api/v1/logs?type=backchannel.&client_id=app-x", Some(ADMIN), None).await;
    let kinds: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["backchannel.unsubscribed", "backchannel.changed", "backchannel.subscribed"]);
    let changed = &log[1];
    assert_eq!(changed["detail"]["old"], "http://127.0.0.1:9500/bc?x=1");
    assert_eq!(changed["detail"]["new"], "http://127.0.0.1:9501/bc");
    assert_eq!(changed["actor"], "admin-api");

    assert_eq!(api(&op, reqwest::Method::DELETE, "/api/v1/clients/app-x", Some(ADMIN), None).await.0, 204);
    assert_eq!(api(&op, reqwest::Method::GET, "/api/v1/clients/app-x", Some(ADMIN), None).await.0, 404);
}

/// Bad metadata is refused with the Registration §3.3 codes and changes nothing (BC-REG-01..04).
#[tokio::test]
async fn invalid_client_metadata_is_refused_with_the_right_code() {
    let op = op().await;
    let base = json!({"client_name": "Bad", "redirect_uris": ["http://127.0.0.1:9600/cb"]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, code) in [
        (with("backchannel_logout_uri", json!("http://127.0.0.1:9600/bc#frag")), "invalid_client_metadata"),
        (with("backchannel_logout_uri", json!("/relative")), "invalid_client_metadata"),
        (with("backchannel_logout_session_required", json!("yes")), "invalid_client_metadata"),
        (with("backchannel_logout_initiators", json!({"mode": "some"})), "invalid_client_metadata"),
        (
            with("backchannel_logout_initiators", json!({"mode": "custom", "selected_initiators": ["reboot"]})),
            "invalid_client_metadata",
        ),
        (with("id_token_signed_response_alg", json!("none")), "invalid_client_metadata"),
        (with("redirect_uris", json!(["http://evil.example/cb"])), "invalid_redirect_uri"),
        (with("redirect_uris", json!([])), "invalid_redirect_uri"),
    ] {
        let (status, err) = api(&op, reqwest::Method::POST, "/api/v1/clients", Some(ADMIN), Some(body.clone())).await;
        assert_eq!((status, err["error"].as_str().unwrap_or("")), (400, code), "{body}: {err}");
    }
    let res = reqwest::Client::new()
        .post(op.url("/api/v1/clients"))
        .bearer_auth(ADMIN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (_, list) = api(&op, reqwest::Method::GET, "/api/v1/clients", Some(ADMIN), None).await;
    assert_eq!(list, json!([]));
}

/// Proves: dynamic registration needs an initial access token, answers 201 with the metadata and
/// a secret, always chooses the client_id, and the client can sign in right away.
#[tokio::test]
async fn dynamic_registration_with_an_initial_access_token() {
    let op = op().await;
    let body = json!({
        "client_id": "i-want-this-id",
        "client_name": "Dynamic",
        "redirect_uris": ["http://127.0.0.1:9700/cb"],
        "backchannel_logout_uri": "http://127.0.0.1:9700/bc",
        "software_statement_extra": "ignored"
    });
    assert_eq!(api(&op, reqwest::Method::POST, "/register", None, Some(body.clone())).await.0, 401);
    assert_eq!(api(&op, reqwest::Method::POST, "/register", Some("nope"), Some(body.clone())).await.0, 401);
    let (status, reg) = api(&op, reqwest::Method::POST, "/register", Some(REG), Some(body)).await;
    assert_eq!(status, 201, "{reg}");
    let id = reg["client_id"].as_str().unwrap();
    assert_ne!(id, "i-want-this-id");
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert_eq!(reg["backchannel_logout_session_required"], false);
    let (status, err) = api(&op, reqwest::Method::POST, "/register", Some(REG), Some(json!({"redirect_uris": ["http://127.0.0.1:9700/cb"], "backchannel_logout_uri": "http://127.0.0.1:9700/bc#f"}))).await;
    assert_eq!((status, err["error"].as_str().unwrap()), (400, "invalid_client_metadata"));

    let client = TestClient {
        id: id.to_owned(),
        secret: reg["client_secret"].as_str().map(str::to_owned),
        redirect_uri: "http://127.0.0.1:9700/cb".into(),
    };
    let code = get_code(&Browser::new(), &op, &client, &[]).await;
    exchange(&op, &client, &code, &[]).await;
    let d: Value = reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["registration_endpoint"], op.url("/register"));
}

/// Proves: deliveries are listed with every attempt, a dead one can be retried through the API
/// (and is then delivered), a non-dead one cannot; `/metrics` counts outcomes and the queue.
#[tokio::test]
async fn deliveries_are_inspected_and_retried_through_the_api_and_counted_in_metrics() {
    let op = op().await;
    let rx = Receiver::start(Behavior::Status(404)).await;
    let client = op.add_bc_client("app-d", "http://127.0.0.1:9800/cb", &rx.uri, Default::default()).await.unwrap();
    let browser = Browser::new();
    let t = exchange(&op, &client, &get_code(&browser, &op, &client, &[]).await, &[]).await;
    browser
        .http
        .get(op.url("/logout"))
        .query(&[("id_token_hint", t["id_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    rx.wait_for(1, Duration::from_secs(15)).await;
    let dead = loop {
        let (_, list) =
            api(&op, reqwest::Method::GET, "/api/v1/deliveries?status=dead&client_id=app-d", Some(ADMIN), None).await;
        if let Some(d) = list.as_array().unwrap().first() {
            break d.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead["initiator"], "rp-logout");
    assert_eq!(dead["attempts"][0]["http_status"], 404);
    assert_eq!(dead["attempt_count"], 1);
    assert!(dead["attempts"][0]["latency_ms"].is_u64());
    let id = dead["id"].as_str().unwrap();

    rx.set_default(Behavior::Status(200));
    let (status, retried) =
        api(&op, reqwest::Method::POST, &format!("/api/v1/deliveries/{id}/retry"), Some(ADMIN), None).await;
    assert_eq!(status, 200, "{retried}");
    rx.wait_for(2, Duration::from_secs(15)).await;
    let delivered = loop {
        let (_, d) = api(&op, reqwest::Method::GET, &format!("/api/v1/deliveries/{id}"), Some(ADMIN), None).await;
        if d["status"] == "delivered" {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(delivered["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(
        api(&op, reqwest::Method::POST, &format!("/api/v1/deliveries/{id}/retry"), Some(ADMIN), None).await.0,
        409
    );
    assert_eq!(api(&op, reqwest::Method::POST, "/api/v1/deliveries/nope/retry", Some(ADMIN), None).await.0, 404);
    assert_eq!(api(&op, reqwest::Method::GET, "/api/v1/deliveries?status=bogus", Some(ADMIN), None).await.0, 400);

    let (_, log) = api(&op, reqwest::Method::GET, "/api/v1/logs?type=delivery.", Some(ADMIN), None).await;
    let kinds: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["delivery.retried", "delivery.dead"]);

    let metrics = reqwest::get(op.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("adieu_delivery_attempts_total{outcome=\"dead\",client=\"app-d\"} 1"), "{metrics}");
    assert!(metrics.contains("adieu_delivery_attempts_total{outcome=\"delivered\",client=\"app-d\"} 1"), "{metrics}");
    assert!(metrics.contains("adieu_delivery_queue_depth 0"));
    assert!(metrics.contains("adieu_delivery_attempt_duration_seconds_count 2"));
}

/// Answers of the management API carry users, sessions and secrets: `Cache-Control: no-store` on
/// every one, errors included.
#[tokio::test]
async fn management_answers_are_never_cached() {
    let op = op().await;
    let http = reqwest::Client::new();
    for (path, token) in [
        ("/api/v1/clients", Some(ADMIN)),
        ("/api/v1/users", Some(ADMIN)),
        ("/api/v1/deliveries", Some(ADMIN)),
        ("/api/v1/clients/nope", Some(ADMIN)),
        ("/api/v1/clients", None),
    ] {
        let mut req = http.get(op.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let cc = res.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert_eq!(cc, "no-store", "{path} ({})", res.status());
    }
}
