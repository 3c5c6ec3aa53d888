//! The consent screen over real HTTP: a third-party client asks once per scope set, a first-party
//! client asks only for `offline_access`, `prompt=consent` always asks, `prompt=none` answers
//! `consent_required`, "Deny" sends `access_denied`, a consent is taken once however often or
//! concurrently the form is sent, and the form refuses forged or stale submissions.

use crate::support::*;
use adieu_server::client_metadata::ClientRegistration;
use adieu_server::settings::Secret;
use adieu_testkit::{Browser, TestClient, TestOp, query_param};
use reqwest::Method;
use serde_json::json;

const ADMIN: &str = "admin-token-for-consent-tests-0123456789ab";
const REG: &str = "registration-token-for-consent-tests-012345";

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

async fn third_party(op: &TestOp, id: &str, origin: &str) -> TestClient {
    let (c, secret) = op
        .add_client(ClientRegistration {
            client_id: Some(id.into()),
            name: format!("App {id}"),
            redirect_uris: vec![format!("{origin}/cb")],
            third_party: true,
            ..Default::default()
        })
        .await
        .unwrap();
    TestClient { id: c.id.to_string(), secret, redirect_uri: format!("{origin}/cb") }
}

/// Starts the code flow with `extra` for a browser that is signed in already; the redirect.
async fn authorize(browser: &Browser, op: &TestOp, client: &TestClient, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&op.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(auth_params(client, extra));
    let res = browser.http.get(url).send().await.unwrap();
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Proves: a third-party client gets the screen (naming it, the user, each scope and where the
/// browser goes next) until the user allows; then the same scopes are not asked again, more
/// scopes are, and `prompt=consent` always is; the consent is audited and the code works.
#[tokio::test]
async fn a_third_party_client_asks_once_per_scope_set_and_prompt_consent_always_asks() {
    let op = op().await;
    let app = third_party(&op, "tp-app", "http://127.0.0.1:9401").await;
    let browser = Browser::new();
    let params = auth_params(&app, &[("scope", "openid profile")]);
    let loc = browser.authorize(&op, &params, "alice", PASSWORD).await.unwrap();
    assert!(loc.starts_with(&app.redirect_uri) && loc.contains("code="), "{loc}");
    exchange(&op, &app, &query_param(&loc, "code").unwrap(), &[]).await;

    let again = authorize(&browser, &op, &app, &[("scope", "openid profile")]).await;
    assert!(
        again.starts_with(&app.redirect_uri) && again.contains("code="),
        "allowed scopes are not asked again: {again}"
    );
    let more = authorize(&browser, &op, &app, &[("scope", "openid email")]).await;
    assert!(more.starts_with("/consent?request="), "a new scope asks: {more}");
    let page = browser.get(&op.issuer, &more).await.unwrap().text().await.unwrap();
    for words in ["Allow App tp-app?", "alice", "See your email address", "127.0.0.1", "Deny"] {
        assert!(page.contains(words), "{words:?} missing: {page}");
    }
    let forced = authorize(&browser, &op, &app, &[("scope", "openid"), ("prompt", "consent")]).await;
    assert!(forced.starts_with("/consent?request="), "prompt=consent always asks: {forced}");

    let (_, log) = api(&op, Method::GET, "/api/v1/logs?type=consent.granted", Some(ADMIN), None).await;
    let events = log["events"].as_array().or(log.as_array()).unwrap();
    assert_eq!(events.len(), 1, "{log}");
}

/// Proves: a first-party client asks nothing for identity scopes but asks before
/// `offline_access`; `prompt=none` where consent is needed answers `consent_required` with
/// `state`; "Deny" answers `access_denied` with `state` and stores nothing.
#[tokio::test]
async fn offline_access_needs_consent_and_deny_and_prompt_none_go_back_as_errors() {
    let op = op().await;
    let app = op.add_simple_client("fp-app", "http://127.0.0.1:9402/cb").await.unwrap();
    let browser = Browser::new();
    get_code(&browser, &op, &app, &[]).await;
    let plain = authorize(&browser, &op, &app, &[("scope", "openid profile email")]).await;
    assert!(plain.contains("code="), "a first-party client asks nothing for identity scopes: {plain}");

    let offline = [("scope", "openid offline_access"), ("state", "st-1")];
    let none = authorize(&browser, &op, &app, &[offline[0], offline[1], ("prompt", "none")]).await;
    assert_eq!(query_param(&none, "error").as_deref(), Some("consent_required"), "{none}");
    assert_eq!(query_param(&none, "state").as_deref(), Some("st-1"));

    let asked = authorize(&browser, &op, &app, &offline).await;
    assert!(asked.starts_with("/consent?request="), "offline_access asks: {asked}");
    let denied = browser.answer_consent(&op.issuer, &asked, false).await.unwrap();
    assert!(denied.starts_with(&app.redirect_uri), "{denied}");
    assert_eq!(query_param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&denied, "state").as_deref(), Some("st-1"));
    let alice = op.state.store.user_by_login("alice").await.unwrap().unwrap();
    assert!(op.state.store.consents_of_user(&alice.id).await.unwrap().is_empty(), "a denial stores nothing");

    let asked = authorize(&browser, &op, &app, &offline).await;
    let allowed = browser.answer_consent(&op.issuer, &asked, true).await.unwrap();
    let t = exchange(&op, &app, &query_param(&allowed, "code").unwrap(), &[]).await;
    assert!(t["refresh_token"].is_string(), "{t}");
    assert_eq!(t["scope"], "openid offline_access", "{t}");
}

/// Proves: the form is answered once — sent twice, or twice at the same time, one code comes
/// back and the other submission is told the request is gone; a forged (cross-site) submission,
/// an unknown decision and a browser that is not signed in are refused, and none of them use the
/// request up.
#[tokio::test]
async fn the_consent_form_is_answered_once_and_refuses_forged_or_stale_submissions() {
    let op = op().await;
    let app = third_party(&op, "tp-race", "http://127.0.0.1:9403").await;
    let browser = Browser::new();
    get_code(&browser, &op, &app, &[]).await;
    let asked = authorize(&browser, &op, &app, &[("prompt", "consent")]).await;
    let html = browser.get(&op.issuer, &asked).await.unwrap().text().await.unwrap();
    let field = |name: &str| {
        let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        html[at..at + html[at..].find('"').unwrap()].to_owned()
    };
    let (csrf, request) = (field("csrf"), field("request"));
    let post = |decision: &'static str, cross: bool| {
        let form = [("csrf", csrf.clone()), ("request", request.clone()), ("decision", decision.to_owned())];
        let mut req = browser.http.post(op.url("/consent")).form(&form);
        if cross {
            req = req.header("sec-fetch-site", "cross-site");
        }
        req.send()
    };
    assert_eq!(post("allow", true).await.unwrap().status(), 403, "cross-site");
    assert_eq!(post("maybe", false).await.unwrap().status(), 400, "unknown decision");
    let stranger = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [("csrf", "x"), ("request", request.as_str()), ("decision", "allow")];
    let res = stranger.post(op.url("/consent")).header("cookie", "adieu_csrf=x").form(&form).send().await.unwrap();
    assert_eq!(res.status(), 400, "not signed in");

    let (a, b) = tokio::join!(post("allow", false), post("allow", false));
    let statuses = [a.unwrap(), b.unwrap()].map(|r| (r.status().as_u16(), r.headers().get("location").is_some()));
    let mut sorted = statuses.to_vec();
    sorted.sort();
    assert_eq!(sorted, [(303, true), (400, false)], "exactly one answer gets the code: {statuses:?}");
    assert_eq!(post("allow", false).await.unwrap().status(), 400, "and it stays answered");
}

/// Proves: dynamic registration always makes a third-party client (whatever the request says);
/// the management API sets and clears the flag.
#[tokio::test]
async fn dynamically_registered_clients_are_third_party_and_the_api_sets_the_flag() {
    let op = op().await;
    let body = json!({ "redirect_uris": ["http://127.0.0.1:9404/cb"], "third_party": false });
    let (status, reg) = api(&op, Method::POST, "/register", Some(REG), Some(body.clone())).await;
    assert_eq!((status, &reg["third_party"]), (201, &json!(true)), "{reg}");
    let (status, c) = api(&op, Method::POST, "/api/v1/clients", Some(ADMIN), Some(body)).await;
    assert_eq!((status, &c["third_party"]), (201, &json!(false)), "{c}");
    let path = format!("/api/v1/clients/{}", c["client_id"].as_str().unwrap());
    let (_, c) = api(&op, Method::PATCH, &path, Some(ADMIN), Some(json!({ "third_party": true }))).await;
    assert_eq!(c["third_party"], true, "{c}");
}

/// Proves: the account page lists what the user allowed; "Withdraw" (CSRF-checked) removes it,
/// revokes the application's tokens for the user, `offline_access` ones included, and the next
/// sign-in asks again; it cannot touch another user's consent.
#[tokio::test]
async fn withdrawing_on_the_account_page_revokes_the_applications_tokens_and_asks_again() {
    let op = op().await;
    op.add_user("bob", None, PASSWORD).await.unwrap();
    let app = third_party(&op, "tp-keep", "http://127.0.0.1:9405").await;
    let (alice_browser, bob_browser) = (Browser::new(), Browser::new());
    let offline = [("scope", "openid offline_access")];
    let t = exchange(&op, &app, &get_code(&alice_browser, &op, &app, &offline).await, &[]).await;
    let loc = bob_browser.authorize(&op, &auth_params(&app, &offline), "bob", PASSWORD).await.unwrap();
    assert!(loc.contains("code="), "{loc}");

    let page = alice_browser.get(&op.issuer, "/account").await.unwrap().text().await.unwrap();
    assert!(page.contains("Applications you allowed") && page.contains("App tp-keep"), "{page}");
    assert!(page.contains("also after you sign out"), "{page}");
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = page[at..at + page[at..].find('"').unwrap()].to_owned();
    let form = [("csrf", csrf.as_str()), ("client", "tp-keep")];
    let forged = alice_browser.http.post(op.url("/account/consents/withdraw")).header("sec-fetch-site", "cross-site");
    assert_eq!(forged.form(&form).send().await.unwrap().status(), 403);
    let res = alice_browser.http.post(op.url("/account/consents/withdraw")).form(&form).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/account?notice=consent-withdrawn");
    let refresh = t["refresh_token"].as_str().unwrap();
    let again = token_request(&op, &app, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(again.status(), 400, "the offline refresh token went with the consent");
    let asked = authorize(&alice_browser, &op, &app, &[]).await;
    assert!(asked.starts_with("/consent?request="), "asks again: {asked}");

    let bob = op.state.store.user_by_login("bob").await.unwrap().unwrap();
    assert_eq!(op.state.store.consents_of_user(&bob.id).await.unwrap().len(), 1, "bob's consent is his own");
    let res = alice_browser.http.post(op.url("/account/consents/withdraw")).form(&form).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/account?notice=consent-already-withdrawn");
    let (_, log) = api(&op, Method::GET, "/api/v1/logs?type=consent.withdrawn", Some(ADMIN), None).await;
    let events = log["events"].as_array().or(log.as_array()).unwrap();
    assert_eq!(events.len(), 1, "{log}");
}
