//! The authorization endpoint's rules, one test each (Core §3.1.2, RFC 6749 §4.1.2.1, RFC 7636).

use crate::support::*;
use adieu_testkit::{Browser, TestClient, location, query_param};
use std::time::Duration;

async fn raw_authorize(browser: &Browser, w: &World, params: &[(&str, &str)]) -> reqwest::Response {
    let mut url = url::Url::parse(&w.op.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    browser.http.get(url).send().await.unwrap()
}

/// Errors before the client and redirect URI are known are shown, never redirected.
#[tokio::test]
async fn unknown_client_is_shown_not_redirected() {
    let w = world().await;
    let mut p = auth_params(&w.a, &[]);
    p[0] = ("client_id", "nope");
    let res = raw_authorize(&Browser::new(), &w, &p).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

#[tokio::test]
async fn unregistered_redirect_uri_is_shown_not_redirected() {
    let w = world().await;
    for bad in [
        "http://127.0.0.1:9001/cb/extra",
        "http://127.0.0.1:9001/cb?x=1",
        "http://evil.example/cb",
        "http://127.0.0.1:9001/CB",
    ] {
        let mut p = auth_params(&w.a, &[]);
        p[1] = ("redirect_uri", bad);
        let res = raw_authorize(&Browser::new(), &w, &p).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert!(res.headers().get("location").is_none(), "{bad} must not be redirected to");
    }
}

#[tokio::test]
async fn unsupported_response_type_is_redirected_with_state_and_iss() {
    let w = world().await;
    let mut p = auth_params(&w.a, &[]);
    p[2] = ("response_type", "token");
    let loc = location(&raw_authorize(&Browser::new(), &w, &p).await).unwrap();
    assert!(loc.starts_with(&w.a.redirect_uri));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("unsupported_response_type"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(w.op.issuer.as_str()));
}

#[tokio::test]
async fn openid_scope_is_required() {
    let w = world().await;
    let mut p = auth_params(&w.a, &[]);
    p[3] = ("scope", "profile");
    let loc = location(&raw_authorize(&Browser::new(), &w, &p).await).unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_scope"));
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let w = world().await;
    let mut p = auth_params(&w.a, &[]);
    p.push(("state", "second"));
    let res = raw_authorize(&Browser::new(), &w, &p).await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn pkce_is_required_for_public_clients() {
    use adieu_core::client::TokenEndpointAuthMethod;
    use adieu_server::client_metadata::ClientRegistration;
    let w = world().await;
    w.op.add_client(ClientRegistration {
        client_id: Some("spa".into()),
        name: "SPA".into(),
        redirect_uris: vec!["http://127.0.0.1:9300/cb".into()],
        token_endpoint_auth_method: TokenEndpointAuthMethod::None,
        ..Default::default()
    })
    .await
    .unwrap();
    let spa = TestClient { id: "spa".into(), secret: None, redirect_uri: "http://127.0.0.1:9300/cb".into() };
    let loc = location(&raw_authorize(&Browser::new(), &w, &auth_params(&spa, &[])).await).unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));
    assert!(query_param(&loc, "error_description").unwrap().contains("PKCE"));

    // With PKCE the public client signs in and redeems its code without a secret.
    let (verifier, challenge) = adieu_testkit::pkce_pair();
    let browser = Browser::new();
    let code =
        get_code(&browser, &w.op, &spa, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
    let res = reqwest::Client::new()
        .post(w.op.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &spa.redirect_uri),
            ("client_id", "spa"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn pkce_plain_method_is_refused() {
    let w = world().await;
    let challenge = "a".repeat(43);
    let p = auth_params(&w.a, &[("code_challenge", &challenge), ("code_challenge_method", "plain")]);
    let loc = location(&raw_authorize(&Browser::new(), &w, &p).await).unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let w = world().await;
    let p = auth_params(&w.a, &[("prompt", "none")]);
    let loc = location(&raw_authorize(&Browser::new(), &w, &p).await).unwrap();
    assert!(loc.starts_with(&w.a.redirect_uri));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn prompt_none_with_a_session_issues_a_code_silently() {
    let w = world().await;
    let browser = Browser::new();
    get_code(&browser, &w.op, &w.a, &[]).await;
    let loc = location(&raw_authorize(&browser, &w, &auth_params(&w.b, &[("prompt", "none")])).await).unwrap();
    assert!(query_param(&loc, "code").is_some(), "{loc}");
}

/// `prompt=login` asks for the password again; the session (and so the sid) stays, `auth_time` moves.
#[tokio::test]
async fn prompt_login_forces_reauthentication_in_the_same_session() {
    let w = world().await;
    let browser = Browser::new();
    let first = verify_id_token(
        &w.op,
        exchange(&w.op, &w.a, &get_code(&browser, &w.op, &w.a, &[]).await, &[]).await["id_token"].as_str().unwrap(),
        "app-a",
    )
    .await;
    w.op.clock.advance(Duration::from_secs(120));
    let res = raw_authorize(&browser, &w, &auth_params(&w.a, &[("prompt", "login")])).await;
    assert!(location(&res).unwrap().contains("/login?request="), "prompt=login must show the login form");
    let second = verify_id_token(
        &w.op,
        exchange(&w.op, &w.a, &get_code(&browser, &w.op, &w.a, &[("prompt", "login")]).await, &[]).await["id_token"]
            .as_str()
            .unwrap(),
        "app-a",
    )
    .await;
    assert_eq!(first["sid"], second["sid"]);
    assert!(second["auth_time"].as_i64().unwrap() >= first["auth_time"].as_i64().unwrap() + 120);
}

#[tokio::test]
async fn max_age_exceeded_requires_signing_in_again() {
    let w = world().await;
    let browser = Browser::new();
    get_code(&browser, &w.op, &w.a, &[]).await;
    w.op.clock.advance(Duration::from_secs(61));
    let res = raw_authorize(&browser, &w, &auth_params(&w.a, &[("max_age", "60")])).await;
    assert!(location(&res).unwrap().contains("/login?request="));
    let res = raw_authorize(&browser, &w, &auth_params(&w.a, &[("max_age", "3600")])).await;
    assert!(query_param(&location(&res).unwrap(), "code").is_some());
}

#[tokio::test]
async fn idle_session_expiry_requires_signing_in_again() {
    let w = world().await;
    let browser = Browser::new();
    get_code(&browser, &w.op, &w.a, &[]).await;
    w.op.clock.advance(Duration::from_secs(8 * 3600 + 1));
    let res = raw_authorize(&browser, &w, &auth_params(&w.a, &[("prompt", "none")])).await;
    assert_eq!(query_param(&location(&res).unwrap(), "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn authorization_endpoint_accepts_post() {
    let w = world().await;
    let res = Browser::new().http.post(w.op.url("/authorize")).form(&auth_params(&w.a, &[])).send().await.unwrap();
    assert!(location(&res).unwrap().contains("/login?request="));
}

/// Every stored input has a bound: a `state` over 2,048 bytes is refused at the redirect URI and
/// neither stored nor echoed back.
#[tokio::test]
async fn state_longer_than_2048_bytes_is_refused_and_not_echoed() {
    let w = world().await;
    let long = "s".repeat(2049);
    let p = auth_params(&w.a, &[("state", long.as_str())]);
    let loc = location(&raw_authorize(&Browser::new(), &w, &p).await).unwrap();
    assert!(loc.starts_with(&w.a.redirect_uri), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(&loc, "state"), None, "an oversized state is not echoed");
    let fits = "s".repeat(2048);
    let p = auth_params(&w.a, &[("state", fits.as_str())]);
    let loc = location(&raw_authorize(&Browser::new(), &w, &p).await).unwrap();
    assert!(loc.contains("/login?request="), "a 2,048-byte state is kept: {loc}");
}

/// An anonymous client cannot fill the database with pending sign-ins: at most
/// `login.max_pending_per_address` are stored per address within their lifetime.
#[tokio::test]
async fn pending_sign_ins_per_address_are_bounded() {
    let op = adieu_testkit::TestOp::start_with(|s| s.login.max_pending_per_address = 3).await.unwrap();
    let a = op.add_simple_client("app-a", "http://127.0.0.1:9001/cb").await.unwrap();
    let w = World { b: a.clone(), a, op };
    for i in 0..3 {
        let res = raw_authorize(&Browser::new(), &w, &auth_params(&w.a, &[])).await;
        assert_eq!(res.status(), 303, "pending sign-in {i}");
    }
    let res = raw_authorize(&Browser::new(), &w, &auth_params(&w.a, &[])).await;
    assert_eq!(res.status(), 429, "the fourth pending sign-in of the address");
    w.op.clock.advance(Duration::from_secs(601));
    let res = raw_authorize(&Browser::new(), &w, &auth_params(&w.a, &[])).await;
    assert_eq!(res.status(), 303, "a new window after the sign-in request lifetime");
}
