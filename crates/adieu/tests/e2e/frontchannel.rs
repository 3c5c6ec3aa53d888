//! Front-Channel Logout 1.0 over real HTTP: registration (FCL §2) through the management API,
//! dynamic registration and discovery (FCL §3); the signed-out page's frames (FCL §4), their
//! content security policy, the redirect after them, and the choice of channel when a client has
//! both. The frames loading in a browser is `tests/browser.rs`'s front-channel test.

use crate::support::*;
use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
use adieu_server::client_metadata::ClientRegistration;
use adieu_server::settings::Secret;
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Browser, TestClient, TestOp};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &str = "admin-token-for-frontchannel-tests-012345";
const REG: &str = "registration-token-for-frontchannel-tests";
const FC_APP: &str = "http://127.0.0.1:9101";

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

/// Registers a front-channel-only client `id` at `origin` (`/cb`, `/bye`, `/fc?tenant=t1`).
async fn fc_client(op: &TestOp, id: &str, origin: &str, session_required: bool) -> TestClient {
    let (c, secret) = op
        .add_client(ClientRegistration {
            client_id: Some(id.into()),
            name: format!("App {id}"),
            redirect_uris: vec![format!("{origin}/cb")],
            post_logout_redirect_uris: vec![format!("{origin}/bye")],
            frontchannel_logout_uri: Some(format!("{origin}/fc?tenant=t1")),
            frontchannel_logout_session_required: session_required,
            ..Default::default()
        })
        .await
        .unwrap();
    TestClient { id: c.id.to_string(), secret, redirect_uri: format!("{origin}/cb") }
}

/// The `data-src` of every front-channel frame on a page (the page escapes `/` and `&`).
fn frames(page: &str) -> Vec<String> {
    let page = page.replace("&#x2f;", "/").replace("&amp;", "&");
    page.split("data-src=\"").skip(1).map(|s| s[..s.find('"').unwrap()].to_owned()).collect()
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// Proves: `frontchannel_logout_uri` is registered, read back, changed and removed through the
/// management API and dynamic registration; it must be absolute, without fragment or
/// credentials, and share scheme, host and port with a redirect URI, also after the redirect URIs
/// change (a conflict: 409 in the management API, 400 at dynamic registration); discovery says front-channel logout (with session) is supported.
#[tokio::test]
async fn fcl_2_frontchannel_logout_uri_is_registered_checked_and_removed() {
    let op = op().await;
    let body = |fc: &str| {
        json!({ "client_name": "Browser app", "redirect_uris": ["http://127.0.0.1:9102/cb"],
                "frontchannel_logout_uri": fc, "frontchannel_logout_session_required": true })
    };
    let (status, c) =
        api(&op, Method::POST, "/api/v1/clients", Some(ADMIN), Some(body("http://127.0.0.1:9102/fc?x=1"))).await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(
        (c["frontchannel_logout_uri"].as_str(), &c["frontchannel_logout_session_required"]),
        (Some("http://127.0.0.1:9102/fc?x=1"), &json!(true))
    );
    let path = format!("/api/v1/clients/{}", c["client_id"].as_str().unwrap());
    assert_eq!(
        api(&op, Method::GET, &path, Some(ADMIN), None).await.1["frontchannel_logout_uri"],
        "http://127.0.0.1:9102/fc?x=1"
    );
    // Another origin conflicts with the redirect URIs (409); a malformed URI is invalid (400).
    for (bad, code) in [
        ("http://127.0.0.1:9103/fc", 409),
        ("https://127.0.0.1:9102/fc", 409),
        ("http://127.0.0.1:9102/fc#f", 400),
        ("/fc", 400),
        ("http://u:p@127.0.0.1:9102/fc", 400),
    ] {
        let (status, err) = api(&op, Method::POST, "/api/v1/clients", Some(ADMIN), Some(body(bad))).await;
        assert_eq!((status, err["error"].as_str()), (code, Some("invalid_client_metadata")), "{bad}: {err}");
        let (status, _) = api(&op, Method::POST, "/register", Some(REG), Some(body(bad))).await;
        assert_eq!(status, 400, "{bad} through dynamic registration");
    }
    // The redirect URIs may not move away from the front-channel URI's origin.
    let moved = json!({ "redirect_uris": ["http://127.0.0.1:9104/cb"] });
    assert_eq!(api(&op, Method::PATCH, &path, Some(ADMIN), Some(moved)).await.0, 409);
    let (status, c) =
        api(&op, Method::PATCH, &path, Some(ADMIN), Some(json!({ "frontchannel_logout_uri": null }))).await;
    assert_eq!(status, 200, "{c}");
    assert!(c.get("frontchannel_logout_uri").is_none(), "{c}");
    let (status, reg) = api(&op, Method::POST, "/register", Some(REG), Some(body("http://127.0.0.1:9102/fc"))).await;
    assert_eq!((status, reg["frontchannel_logout_uri"].as_str()), (201, Some("http://127.0.0.1:9102/fc")), "{reg}");

    let d: Value = reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(
        (&d["frontchannel_logout_supported"], &d["frontchannel_logout_session_supported"]),
        (&json!(true), &json!(true))
    );
}

/// Proves: signing out at `/logout` renders a frame for the front-channel application at its URI
/// with its query kept and the provider's `iss` and the application's `sid` (FCL §4), the page's
/// policy lets exactly that origin be framed, and a client with both channels is told over the
/// back channel only (a logout token, no frame); the status afterwards says the front-channel
/// application was told through the browser.
#[tokio::test]
async fn fcl_4_the_signed_out_page_frames_each_front_channel_application_with_iss_and_sid() {
    let op = op().await;
    let fc = fc_client(&op, "fc-app", FC_APP, true).await;
    let rx = Receiver::start(Behavior::Status(200)).await;
    let all = InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] };
    let both = op.add_bc_client("both-app", "http://127.0.0.1:9105/cb", &rx.uri, all).await.unwrap();
    let patch = json!({ "frontchannel_logout_uri": "http://127.0.0.1:9105/fc" });
    assert_eq!(api(&op, Method::PATCH, "/api/v1/clients/both-app", Some(ADMIN), Some(patch)).await.0, 200);
    let browser = Browser::new();
    let t = exchange(&op, &fc, &get_code(&browser, &op, &fc, &[]).await, &[]).await;
    exchange(&op, &both, &get_code(&browser, &op, &both, &[]).await, &[]).await;
    let sid = peek_claims(t["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
    let alice = op.state.store.user_by_login("alice").await.unwrap().unwrap();
    let session = op.state.store.open_sessions_of_user(&alice.id).await.unwrap().remove(0);

    let res = browser
        .http
        .get(op.url("/logout"))
        .query(&[("id_token_hint", t["id_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.ends_with(&format!("; frame-src {FC_APP}")), "only the front-channel origin may be framed: {csp}");
    let page = res.text().await.unwrap();
    let srcs = frames(&page);
    assert_eq!(srcs.len(), 1, "one frame, none for the client with a back channel: {page}");
    assert!(srcs[0].starts_with(&format!("{FC_APP}/fc?tenant=t1&")), "{}", srcs[0]);
    let q = query(&srcs[0]);
    assert_eq!((q["iss"].as_str(), q["sid"].as_str()), (op.issuer.as_str(), sid.as_str()));
    assert!(page.contains("Being told in this browser"), "{page}");
    assert!(page.contains("<noscript><iframe src="), "the frame loads without JavaScript too: {page}");
    rx.wait_for(1, Duration::from_secs(15)).await;

    let path = format!("/logout/status/{}", session.id);
    let s: Value = reqwest::Client::new()
        .get(op.url(&path))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let line = s["apps"].as_array().unwrap().iter().find(|a| a["id"] == "fc-app").unwrap().clone();
    assert_eq!((line["status"].as_str(), line.get("frame")), (Some("Told through your browser"), None), "{s}");
}

/// Proves: without `frontchannel_logout_session_required` the frame is the bare URI (FCL §4: both
/// parameters or neither); with a `post_logout_redirect_uri` the page is shown (not a redirect),
/// holds the frame, and links back with `state`.
#[tokio::test]
async fn fcl_4_a_redirect_waits_for_the_frames_and_session_parameters_follow_the_flag() {
    let op = op().await;
    let fc = fc_client(&op, "fc-plain", FC_APP, false).await;
    let browser = Browser::new();
    let t = exchange(&op, &fc, &get_code(&browser, &op, &fc, &[]).await, &[]).await;
    let bye = format!("{FC_APP}/bye");
    let q = [("id_token_hint", t["id_token"].as_str().unwrap()), ("post_logout_redirect_uri", &bye), ("state", "s-1")];
    let res = browser.http.get(op.url("/logout")).query(&q).send().await.unwrap();
    assert_eq!(res.status(), 200, "the page loads the frames before the redirect");
    let page = res.text().await.unwrap();
    assert_eq!(frames(&page), vec![format!("{FC_APP}/fc?tenant=t1")]);
    let unescaped = page.replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(unescaped.contains(&format!("id=\"continue\" class=\"button\" href=\"{bye}?state=s-1\"")), "{page}");
    assert!(!signed_in(&browser, &op).await);
}

/// Proves: a session ended without a browser (an administrator here) cannot reach a front-channel
/// application, and its status says so rather than "signed out".
#[tokio::test]
async fn front_channel_applications_of_a_session_ended_elsewhere_are_shown_not_told() {
    let op = op().await;
    let fc = fc_client(&op, "fc-app", FC_APP, true).await;
    let browser = Browser::new();
    exchange(&op, &fc, &get_code(&browser, &op, &fc, &[]).await, &[]).await;
    let alice = op.state.store.user_by_login("alice").await.unwrap().unwrap();
    let open = op.state.store.open_sessions_of_user(&alice.id).await.unwrap();
    let (status, _) = api(&op, Method::DELETE, &format!("/api/v1/sessions/{}", open[0].id), Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let page = reqwest::get(op.url(&format!("/logout/status/{}", open[0].id))).await.unwrap();
    assert!(!page.headers()["content-security-policy"].to_str().unwrap().contains("frame-src"));
    let page = page.text().await.unwrap();
    assert!(page.contains("Not told: it can be told only through the browser you sign out in"), "{page}");
    assert!(frames(&page).is_empty(), "{page}");
}
