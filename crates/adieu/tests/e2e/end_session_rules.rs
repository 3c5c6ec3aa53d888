//! RP-Initiated Logout 1.0 rules (RPI-02..09), one test each.

use crate::support::*;
use adieu_testkit::{Browser, hidden_field, location, query_param};
use std::time::Duration;

/// A signed-in browser and an ID token for app A.
async fn signed_in_with_token(w: &World) -> (Browser, String) {
    let browser = Browser::new();
    let code = get_code(&browser, &w.op, &w.a, &[]).await;
    let t = exchange(&w.op, &w.a, &code, &[]).await;
    (browser, t["id_token"].as_str().unwrap().to_owned())
}

async fn logout_get(b: &Browser, w: &World, params: &[(&str, &str)]) -> reqwest::Response {
    b.http.get(w.op.url("/logout")).query(params).send().await.unwrap()
}

fn bye(w: &World) -> String {
    format!("{}/bye", w.a.redirect_uri)
}

#[tokio::test]
async fn rpi_02_post_is_supported_like_get() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    let bye = bye(&w);
    let res = b
        .http
        .post(w.op.url("/logout"))
        .form(&[("id_token_hint", hint.as_str()), ("post_logout_redirect_uri", &bye)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res).unwrap(), bye);
    assert!(!signed_in(&b, &w.op).await);
}

#[tokio::test]
async fn rpi_03_state_is_echoed_on_the_redirect() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    let bye = bye(&w);
    let res =
        logout_get(&b, &w, &[("id_token_hint", &hint), ("post_logout_redirect_uri", &bye), ("state", "xyz")]).await;
    assert_eq!(query_param(&location(&res).unwrap(), "state").as_deref(), Some("xyz"));
}

#[tokio::test]
async fn rpi_03_client_id_must_match_the_hint() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    let res = logout_get(&b, &w, &[("id_token_hint", &hint), ("client_id", "app-b")]).await;
    assert_eq!(res.status(), 400);
    assert!(signed_in(&b, &w.op).await, "a failed validation ends nothing (RPI-09)");
}

/// RPI-04: an expired ID token is still a valid hint.
#[tokio::test]
async fn rpi_04_expired_hint_is_accepted() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    w.op.clock.advance(Duration::from_secs(2 * 3600));
    let bye = bye(&w);
    let res = logout_get(&b, &w, &[("id_token_hint", &hint), ("post_logout_redirect_uri", &bye)]).await;
    assert_eq!(location(&res).unwrap(), bye);
    assert!(!signed_in(&b, &w.op).await);
}

/// RPI-04: a hint whose signature does not verify is refused; nothing ends, nobody is redirected.
#[tokio::test]
async fn rpi_04_tampered_hint_is_refused() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    let mut parts: Vec<&str> = hint.split('.').collect();
    let mut claims = peek_claims(&hint);
    claims["sub"] = "someone-else".into();
    let forged =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, serde_json::to_vec(&claims).unwrap());
    parts[1] = &forged;
    let tampered = parts.join(".");
    let bye = bye(&w);
    let res = logout_get(&b, &w, &[("id_token_hint", &tampered), ("post_logout_redirect_uri", &bye)]).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert!(signed_in(&b, &w.op).await);
}

#[tokio::test]
async fn rpi_04_hint_from_another_issuer_is_refused() {
    let w = world().await;
    let other = world().await;
    let (b, _) = signed_in_with_token(&w).await;
    let (_, foreign) = signed_in_with_token(&other).await;
    let res = logout_get(&b, &w, &[("id_token_hint", &foreign)]).await;
    assert_eq!(res.status(), 400);
    assert!(signed_in(&b, &w.op).await);
}

/// RPI-05: without a hint the user is asked; nothing ends until they say yes.
#[tokio::test]
async fn rpi_05_no_hint_asks_for_confirmation() {
    let w = world().await;
    let (b, _) = signed_in_with_token(&w).await;
    let res = logout_get(&b, &w, &[]).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Sign out?"));
    assert!(signed_in(&b, &w.op).await, "not ended before confirmation");

    // "Stay signed in" changes nothing.
    let csrf = hidden_field(&html, "csrf").unwrap();
    let res = b
        .http
        .post(w.op.url("/logout/confirm"))
        .form(&[("csrf", csrf.as_str()), ("confirm", "no")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(signed_in(&b, &w.op).await);

    // "Sign out" ends the session.
    let res = b
        .http
        .post(w.op.url("/logout/confirm"))
        .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
    assert!(!signed_in(&b, &w.op).await);
}

/// RPI-05: a valid hint for a different session than this browser's is suspect: ask.
#[tokio::test]
async fn rpi_05_hint_for_another_session_asks_for_confirmation() {
    let w = world().await;
    let (b1, _) = signed_in_with_token(&w).await;
    let (_b2, hint_from_other_session) = signed_in_with_token(&w).await;
    let res = logout_get(&b1, &w, &[("id_token_hint", &hint_from_other_session)]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Sign out?"));
    assert!(signed_in(&b1, &w.op).await);
}

#[tokio::test]
async fn confirmation_without_the_csrf_token_is_refused() {
    let w = world().await;
    let (b, _) = signed_in_with_token(&w).await;
    let res = b.http.post(w.op.url("/logout/confirm")).form(&[("confirm", "yes")]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(signed_in(&b, &w.op).await);
}

/// RPI-07: only an exactly registered URI is redirected to.
#[tokio::test]
async fn rpi_07_unregistered_post_logout_redirect_uri_is_refused() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    let res =
        logout_get(&b, &w, &[("id_token_hint", &hint), ("post_logout_redirect_uri", "http://evil.example/")]).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert!(signed_in(&b, &w.op).await);
}

/// RPI-07 (conformance "query added to post_logout_redirect_uri"): exact match only.
#[tokio::test]
async fn rpi_07_query_added_to_post_logout_redirect_uri_is_refused() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    let with_query = format!("{}?foo=bar", bye(&w));
    let res = logout_get(&b, &w, &[("id_token_hint", &hint), ("post_logout_redirect_uri", &with_query)]).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

/// RPI-07: without a hint there is no redirect, even to a registered URI; the user is asked.
#[tokio::test]
async fn rpi_07_no_redirect_without_a_hint() {
    let w = world().await;
    let (b, _) = signed_in_with_token(&w).await;
    let bye = bye(&w);
    let res = logout_get(&b, &w, &[("client_id", "app-a"), ("post_logout_redirect_uri", &bye)]).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let csrf = hidden_field(&html, "csrf").unwrap();
    let res = b
        .http
        .post(w.op.url("/logout/confirm"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("confirm", "yes"),
            ("client_id", "app-a"),
            ("post_logout_redirect_uri", &bye),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "signed-out page, not a redirect");
    assert!(!signed_in(&b, &w.op).await);
}

/// RPI-09: logging out when not signed in is not an error; a valid request still redirects.
#[tokio::test]
async fn rpi_09_logout_when_not_signed_in_is_idempotent() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    let bye = bye(&w);
    let first = logout_get(&b, &w, &[("id_token_hint", &hint), ("post_logout_redirect_uri", &bye)]).await;
    assert_eq!(location(&first).unwrap(), bye);
    let again = logout_get(&b, &w, &[("id_token_hint", &hint), ("post_logout_redirect_uri", &bye)]).await;
    assert_eq!(location(&again).unwrap(), bye);
    let fresh = Browser::new();
    let res = logout_get(&fresh, &w, &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You were not signed in"));
}

/// The signed-out page names the applications of the ended session.
#[tokio::test]
async fn logged_out_page_lists_the_sessions_applications() {
    let w = world().await;
    let (b, hint) = signed_in_with_token(&w).await;
    get_code(&b, &w.op, &w.b, &[]).await;
    let res = logout_get(&b, &w, &[("id_token_hint", &hint)]).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("App app-a") && html.contains("App app-b"), "{html}");
}
