//! Token introspection (RFC 7662) and revocation (RFC 7009) over real HTTP: a resource server (its
//! own confidential client) introspects an application's access token; it turns inactive as soon
//! as the session ends, by each initiator; revoking a refresh token ends its whole grant.

use crate::support::*;
use adieu_server::settings::Secret;
use adieu_testkit::{Browser, TestClient, TestOp};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &str = "admin-token-for-token-status-tests-0123456789";

struct World {
    op: TestOp,
    app: TestClient,
    rs: TestClient,
    browser: Browser,
    tokens: Value,
    user: String,
}

/// alice signed in to `app`; `rs` is a resource server's client.
async fn world(scope: &str) -> World {
    let op = TestOp::start_with(|s| s.admin_token = Some(Secret(ADMIN.into()))).await.unwrap();
    let user = op.add_user("alice", Some("alice@example.com"), PASSWORD).await.unwrap();
    let app = op.add_simple_client("app", "http://127.0.0.1:9201/cb").await.unwrap();
    let rs = op.add_simple_client("resource-server", "http://127.0.0.1:9202/cb").await.unwrap();
    let browser = Browser::new();
    let code = get_code(&browser, &op, &app, &[("scope", scope)]).await;
    let tokens = exchange(&op, &app, &code, &[]).await;
    World { op, app, rs, browser, tokens, user: user.id.to_string() }
}

async fn post(op: &TestOp, path: &str, client: &TestClient, form: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(op.url(path))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn introspect(w: &World, token: &str) -> Value {
    let (status, body) = post(&w.op, "/introspect", &w.rs, &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn access(w: &World) -> String {
    w.tokens["access_token"].as_str().unwrap().to_owned()
}

/// Proves: an active access token introspects with its sub, sid, client, scope, times and type;
/// discovery names both endpoints.
#[tokio::test]
async fn an_access_token_introspects_as_active_with_its_claims() {
    let w = world("openid profile").await;
    let got = introspect(&w, &access(&w)).await;
    let id = peek_claims(w.tokens["id_token"].as_str().unwrap());
    assert_eq!(got["active"], true, "{got}");
    assert_eq!((&got["sub"], &got["sid"], &got["client_id"]), (&id["sub"], &id["sid"], &json!("app")), "{got}");
    assert_eq!((&got["scope"], &got["token_type"]), (&json!("openid profile"), &json!("Bearer")));
    assert!(got["exp"].as_i64().unwrap() > got["iat"].as_i64().unwrap());
    let meta: Value = reqwest::get(w.op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(meta["introspection_endpoint"], json!(w.op.url("/introspect")));
    assert_eq!(meta["revocation_endpoint"], json!(w.op.url("/revoke")));
}

/// Proves: the access token turns inactive the moment its session ends, whatever ends it:
/// rp-logout, session-revoked, password-changed, email-changed, account-deleted and
/// session-expired (by the clock, before any sweep); idp-logout is shown in `upstream.rs`
/// (`bc_rp_02_…`). Inactive answers carry nothing else.
#[tokio::test]
async fn an_access_token_is_inactive_once_its_session_ends_by_each_initiator() {
    for how in
        ["rp-logout", "session-revoked", "password-changed", "email-changed", "account-deleted", "session-expired"]
    {
        let w = world("openid").await;
        let token = access(&w);
        assert_eq!(introspect(&w, &token).await["active"], true, "{how}: before");
        let user = format!("/api/v1/users/{}", w.user);
        match how {
            "rp-logout" => {
                let hint = w.tokens["id_token"].as_str().unwrap();
                let res =
                    w.browser.http.get(w.op.url("/logout")).query(&[("id_token_hint", hint)]).send().await.unwrap();
                assert_eq!(res.status(), 200);
            }
            "session-revoked" => {
                assert_eq!(api(&w.op, Method::DELETE, &format!("{user}/sessions"), Some(ADMIN), None).await.0, 200);
            }
            "password-changed" => {
                let body = json!({"password": "another long password"});
                assert_eq!(api(&w.op, Method::PATCH, &user, Some(ADMIN), Some(body)).await.0, 200);
            }
            "email-changed" => {
                let body = json!({"email": "alice@example.org"});
                assert_eq!(api(&w.op, Method::PATCH, &user, Some(ADMIN), Some(body)).await.0, 200);
            }
            "account-deleted" => assert_eq!(api(&w.op, Method::DELETE, &user, Some(ADMIN), None).await.0, 200),
            _ => w.op.clock.advance(Duration::from_secs(9 * 3600)),
        }
        assert_eq!(introspect(&w, &token).await, json!({"active": false}), "{how}: after");
    }
}

/// Proves: a public client cannot introspect (401); a missing token is 400; an unknown token is
/// inactive; another client's refresh token is inactive to the caller.
#[tokio::test]
async fn introspection_refuses_public_clients_and_tells_nothing_about_others_tokens() {
    let w = world("openid offline_access").await;
    let (spa, _) =
        w.op.add_client(adieu_server::client_metadata::ClientRegistration {
            client_id: Some("spa".into()),
            name: "A public client".into(),
            redirect_uris: vec!["http://127.0.0.1:9203/cb".into()],
            token_endpoint_auth_method: adieu_core::client::TokenEndpointAuthMethod::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let res = reqwest::Client::new()
        .post(w.op.url("/introspect"))
        .form(&[("client_id", spa.id.as_str()), ("token", access(&w).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a public client cannot introspect");
    let wrong = TestClient { id: "resource-server".into(), secret: Some("wrong".into()), redirect_uri: String::new() };
    let (status, body) = post(&w.op, "/introspect", &wrong, &[("token", "x")]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "a wrong secret: {body}");
    let (status, body) = post(&w.op, "/introspect", &w.rs, &[]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert_eq!(introspect(&w, "not-a-token").await, json!({"active": false}));
    let refresh = w.tokens["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&w, refresh).await, json!({"active": false}), "another client's refresh token");
    let (_, own) =
        post(&w.op, "/introspect", &w.app, &[("token", refresh), ("token_type_hint", "refresh_token")]).await;
    assert_eq!((&own["active"], &own["token_type"]), (&json!(true), &json!("refresh_token")), "{own}");
}

/// Proves RFC 7009: revoking a refresh token revokes its grant (the access token issued with it is
/// inactive, and the refresh token no longer works); revoking an access token ends only it; a
/// token of another client, or an unknown one, answers 200 and changes nothing.
#[tokio::test]
async fn revoking_a_refresh_token_ends_its_grant_and_other_clients_tokens_are_untouched() {
    let w = world("openid offline_access").await;
    let (token, refresh) = (access(&w), w.tokens["refresh_token"].as_str().unwrap().to_owned());
    assert_eq!(post(&w.op, "/revoke", &w.rs, &[("token", &token)]).await.0, 200, "another client's token");
    assert_eq!(introspect(&w, &token).await["active"], true, "untouched by another client's revocation");
    assert_eq!(post(&w.op, "/revoke", &w.app, &[("token", "unknown")]).await.0, 200);
    assert_eq!(
        post(&w.op, "/revoke", &w.app, &[("token", &refresh), ("token_type_hint", "refresh_token")]).await.0,
        200
    );
    assert_eq!(introspect(&w, &token).await, json!({"active": false}), "the grant's access token");
    let res = token_request(&w.op, &w.app, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(res.status(), 400, "a revoked refresh token no longer works");

    // An access token alone: the refresh token of its grant keeps working.
    let w = world("openid offline_access").await;
    let (token, refresh) = (access(&w), w.tokens["refresh_token"].as_str().unwrap().to_owned());
    assert_eq!(post(&w.op, "/revoke", &w.app, &[("token", &token)]).await.0, 200);
    assert_eq!(introspect(&w, &token).await, json!({"active": false}));
    let res = token_request(&w.op, &w.app, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(res.status(), 200, "the refresh token of that grant still works");
}

/// Proves, with panva's `openid-client` from npm (`tests/interop/token_status.mjs`), a client we
/// did not write: it discovers both endpoints, introspects an active access token (with its `sub`,
/// `sid` and `client_id`) and the application's own refresh token, revokes the refresh token, and
/// then both introspect as inactive. Skipped without Node.js and npm, a failure when
/// `ADIEU_REQUIRE_INTEROP=1` (CI sets it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_from_npm_introspects_and_revokes() {
    use adieu_testkit::interop;
    let required = std::env::var("ADIEU_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    if interop::tool_version("node").is_none() || interop::tool_version("npm").is_none() {
        assert!(!required, "ADIEU_REQUIRE_INTEROP=1 but node or npm is not on PATH");
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "!!!! SKIPPED openid-client interop: node or npm is not on PATH");
        return;
    }
    interop::ensure_node_modules();
    let w = world("openid offline_access").await;
    let id = peek_claims(w.tokens["id_token"].as_str().unwrap());
    let out = tokio::process::Command::new("node")
        .arg("token_status.mjs")
        .args(["--issuer", &w.op.issuer, "--rs-id", &w.rs.id, "--rs-secret", w.rs.secret.as_deref().unwrap()])
        .args(["--app-id", &w.app.id, "--app-secret", w.app.secret.as_deref().unwrap()])
        .args(["--access-token", &access(&w), "--refresh-token", w.tokens["refresh_token"].as_str().unwrap()])
        .current_dir(interop::dir())
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "token_status.mjs failed:\n{stdout}\n{stderr}");
    let steps: std::collections::HashMap<String, Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .map(|v| (v["step"].as_str().unwrap().to_owned(), v))
        .collect();
    let before = &steps["access-before"];
    assert_eq!(before["active"], true, "{before}");
    assert_eq!((&before["sub"], &before["sid"], &before["client_id"]), (&id["sub"], &id["sid"], &json!("app")));
    assert_eq!(steps["refresh-as-app"]["active"], true, "{stdout}");
    assert!(steps.contains_key("revoked"), "{stdout}");
    assert_eq!(steps["access-after"]["active"], false, "{stdout}");
    assert_eq!(steps["refresh-after"]["active"], false, "{stdout}");
}
