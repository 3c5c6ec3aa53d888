//! The token endpoint's rules (RFC 6749 §4.1.3, §6, §10.5; RFC 7636 §4.6; BC-RT-01/02).

use crate::support::*;
use adieu_testkit::{Browser, TestClient};
use std::time::Duration;

async fn code_for(w: &World, client: &TestClient, extra: &[(&str, &str)]) -> String {
    get_code(&Browser::new(), &w.op, client, extra).await
}

fn code_form<'a>(code: &'a str, client: &'a TestClient) -> Vec<(&'a str, &'a str)> {
    vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", client.redirect_uri.as_str())]
}

/// A reused code is refused, and the tokens issued from its first use are revoked.
#[tokio::test]
async fn code_reuse_is_refused_and_revokes_what_it_issued() {
    let w = world().await;
    let code = code_for(&w, &w.a, &[]).await;
    let tokens = exchange(&w.op, &w.a, &code, &[]).await;
    assert_eq!(token_error(&w.op, &w.a, &code_form(&code, &w.a)).await, (400, "invalid_grant".into()));
    let (status, _) = userinfo(&w.op, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401, "access token from a replayed code must be revoked");
    let rt = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        token_error(&w.op, &w.a, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await.1,
        "invalid_grant"
    );
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let w = world().await;
    let code = code_for(&w, &w.a, &[]).await;
    w.op.clock.advance(Duration::from_secs(61));
    assert_eq!(token_error(&w.op, &w.a, &code_form(&code, &w.a)).await, (400, "invalid_grant".into()));
}

#[tokio::test]
async fn redirect_uri_must_equal_the_authorization_requests() {
    let w = world().await;
    let code = code_for(&w, &w.a, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9001/other"),
    ];
    assert_eq!(token_error(&w.op, &w.a, &form).await.1, "invalid_grant");
}

#[tokio::test]
async fn code_issued_to_another_client_is_invalid_grant() {
    let w = world().await;
    let code = code_for(&w, &w.a, &[]).await;
    let form =
        [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", w.a.redirect_uri.as_str())];
    assert_eq!(token_error(&w.op, &w.b, &form).await.1, "invalid_grant");
}

#[tokio::test]
async fn pkce_verifier_mismatch_is_invalid_grant() {
    let w = world().await;
    let (_, challenge) = adieu_testkit::pkce_pair();
    let (other_verifier, _) = adieu_testkit::pkce_pair();
    let code = code_for(&w, &w.a, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
    let mut form = code_form(&code, &w.a);
    form.push(("code_verifier", &other_verifier));
    assert_eq!(token_error(&w.op, &w.a, &form).await.1, "invalid_grant");
}

#[tokio::test]
async fn pkce_verifier_missing_is_invalid_grant() {
    let w = world().await;
    let (_, challenge) = adieu_testkit::pkce_pair();
    let code = code_for(&w, &w.a, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
    assert_eq!(token_error(&w.op, &w.a, &code_form(&code, &w.a)).await.1, "invalid_grant");
}

/// RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a downgrade attempt.
#[tokio::test]
async fn pkce_downgrade_is_refused() {
    let w = world().await;
    let (verifier, _) = adieu_testkit::pkce_pair();
    let code = code_for(&w, &w.a, &[]).await;
    let mut form = code_form(&code, &w.a);
    form.push(("code_verifier", &verifier));
    assert_eq!(token_error(&w.op, &w.a, &form).await.1, "invalid_grant");
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client_with_basic_challenge() {
    let w = world().await;
    let code = code_for(&w, &w.a, &[]).await;
    let res = reqwest::Client::new()
        .post(w.op.url("/token"))
        .basic_auth("app-a", Some("not-the-secret"))
        .form(&code_form(&code, &w.a))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("www-authenticate").unwrap().to_str().unwrap().starts_with("Basic"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let w = world().await;
    let ghost = TestClient { id: "ghost".into(), secret: Some("x".into()), redirect_uri: w.a.redirect_uri.clone() };
    assert_eq!(
        token_error(&w.op, &ghost, &[("grant_type", "authorization_code"), ("code", "x")]).await,
        (401, "invalid_client".into())
    );
}

/// A client registered for client_secret_basic may not switch to client_secret_post.
#[tokio::test]
async fn client_must_use_its_registered_auth_method() {
    let w = world().await;
    let code = code_for(&w, &w.a, &[]).await;
    let mut form = code_form(&code, &w.a);
    let secret = w.a.secret.clone().unwrap();
    form.extend([("client_id", "app-a"), ("client_secret", secret.as_str())]);
    let res = reqwest::Client::new().post(w.op.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn client_secret_post_works_when_registered() {
    use adieu_core::client::TokenEndpointAuthMethod;
    use adieu_server::client_metadata::ClientRegistration;
    let w = world().await;
    let (_, secret) =
        w.op.add_client(ClientRegistration {
            client_id: Some("poster".into()),
            name: "Poster".into(),
            redirect_uris: vec!["http://127.0.0.1:9400/cb".into()],
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretPost,
            ..Default::default()
        })
        .await
        .unwrap();
    let poster =
        TestClient { id: "poster".into(), secret: secret.clone(), redirect_uri: "http://127.0.0.1:9400/cb".into() };
    let code = code_for(&w, &poster, &[]).await;
    let secret = secret.unwrap();
    let mut form = code_form(&code, &poster);
    form.extend([("client_id", "poster"), ("client_secret", secret.as_str())]);
    let res = reqwest::Client::new().post(w.op.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
}

/// Rotation: each refresh token works once; presenting a rotated one revokes the whole grant.
#[tokio::test]
async fn refresh_token_replay_revokes_the_grant_family() {
    let w = world().await;
    let code = code_for(&w, &w.a, &[]).await;
    let t0 = exchange(&w.op, &w.a, &code, &[]).await;
    let rt0 = t0["refresh_token"].as_str().unwrap();
    let res = token_request(&w.op, &w.a, &[("grant_type", "refresh_token"), ("refresh_token", rt0)]).await;
    let t1: serde_json::Value = res.json().await.unwrap();
    let rt1 = t1["refresh_token"].as_str().unwrap();
    assert_eq!(
        token_error(&w.op, &w.a, &[("grant_type", "refresh_token"), ("refresh_token", rt0)]).await.1,
        "invalid_grant"
    );
    assert_eq!(
        token_error(&w.op, &w.a, &[("grant_type", "refresh_token"), ("refresh_token", rt1)]).await.1,
        "invalid_grant",
        "the successor dies with the family"
    );
}

#[tokio::test]
async fn refresh_cannot_widen_the_scope() {
    let w = world().await;
    let t = exchange(&w.op, &w.a, &code_for(&w, &w.a, &[]).await, &[]).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let err = token_error(
        &w.op,
        &w.a,
        &[("grant_type", "refresh_token"), ("refresh_token", rt), ("scope", "openid offline_access")],
    )
    .await;
    assert_eq!(err.1, "invalid_scope");
}

#[tokio::test]
async fn refresh_token_of_another_client_is_invalid_grant() {
    let w = world().await;
    let t = exchange(&w.op, &w.a, &code_for(&w, &w.a, &[]).await, &[]).await;
    let rt = t["refresh_token"].as_str().unwrap();
    assert_eq!(
        token_error(&w.op, &w.b, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await.1,
        "invalid_grant"
    );
}

/// BC-RT-01 / BC-RT-02: ending the session revokes session-bound refresh tokens; offline ones survive.
#[tokio::test]
async fn bc_rt_01_02_logout_revokes_session_bound_refresh_tokens_but_not_offline_ones() {
    let w = world().await;
    let browser = Browser::new();
    let online = exchange(&w.op, &w.a, &get_code(&browser, &w.op, &w.a, &[]).await, &[]).await;
    let offline =
        exchange(&w.op, &w.b, &get_code(&browser, &w.op, &w.b, &[("scope", "openid offline_access")]).await, &[]).await;
    assert!(offline["scope"].as_str().unwrap().contains("offline_access"));
    let user = w.op.state.store.user_by_login("alice").await.unwrap().unwrap();
    let session = w.op.state.store.open_sessions_of_user(&user.id).await.unwrap().remove(0);
    adieu_server::session_end::end_session(&w.op.state, &session.id, adieu_core::Initiator::RpLogout)
        .await
        .unwrap()
        .unwrap();
    let rt = online["refresh_token"].as_str().unwrap();
    assert_eq!(
        token_error(&w.op, &w.a, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await.1,
        "invalid_grant"
    );
    let rt = offline["refresh_token"].as_str().unwrap();
    let res = token_request(&w.op, &w.b, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(res.status(), 200, "offline_access refresh token survives the session");
    let t: serde_json::Value = res.json().await.unwrap();
    assert_eq!(userinfo(&w.op, t["access_token"].as_str().unwrap()).await.0, 200);
}

#[tokio::test]
async fn code_of_an_ended_session_is_invalid_grant() {
    let w = world().await;
    let code = code_for(&w, &w.a, &[]).await;
    let user = w.op.state.store.user_by_login("alice").await.unwrap().unwrap();
    let session = w.op.state.store.open_sessions_of_user(&user.id).await.unwrap().remove(0);
    adieu_server::session_end::end_session(&w.op.state, &session.id, adieu_core::Initiator::SessionRevoked)
        .await
        .unwrap();
    assert_eq!(token_error(&w.op, &w.a, &code_form(&code, &w.a)).await.1, "invalid_grant");
}

#[tokio::test]
async fn unsupported_grant_type_and_non_form_bodies_are_protocol_errors() {
    let w = world().await;
    assert_eq!(token_error(&w.op, &w.a, &[("grant_type", "password")]).await, (400, "unsupported_grant_type".into()));
    let res = reqwest::Client::new()
        .post(w.op.url("/token"))
        .basic_auth("app-a", w.a.secret.as_deref())
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn userinfo_requires_a_valid_bearer_token() {
    let w = world().await;
    let res = reqwest::Client::new().get(w.op.url("/userinfo")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("www-authenticate").unwrap().to_str().unwrap().starts_with("Bearer"));
    assert_eq!(userinfo(&w.op, "not-a-token").await.0, 401);
    let t = exchange(&w.op, &w.a, &code_for(&w, &w.a, &[]).await, &[]).await;
    w.op.clock.advance(Duration::from_secs(3601));
    assert_eq!(userinfo(&w.op, t["access_token"].as_str().unwrap()).await.0, 401, "expired access token");
}
