//! The self-service account page (issue 5, item 2) through real HTTP with a cookie-keeping browser.
//! Alice is signed in to two applications: `app-sub` subscribes (`custom`) to `session-revoked`,
//! `password-changed` and `email-identifier-changed`; `app-unsub` only to the two required
//! initiators. Each change made on the page must reach `app-sub` as a logout token an independent
//! verifier accepts, naming alice's `sub` and the right `sid`; `app-unsub` must get nothing (checked
//! once the delivery queue is empty, not by sleeping); the audit log must name the initiator and the
//! actor `account:<user id>`. Refused forms (CSRF, wrong password, another user's session, not
//! signed in) must change nothing.

use crate::support::*;
use adieu_core::id::UserId;
use adieu_core::initiator::{Initiator, InitiatorMode, InitiatorSubscription};
use adieu_core::store::DeliveryFilter;
use adieu_server::client_metadata::ClientRegistration;
use adieu_server::settings::Secret;
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Browser, TestClient, TestOp, hidden_field, location};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const ADMIN: &str = "admin-token-for-account-tests-0123456789";
const WAIT: Duration = Duration::from_secs(20);
const NEW_PASSWORD: &str = "a brand new password";

struct Scene {
    op: TestOp,
    subscribed: TestClient,
    unsubscribed: TestClient,
    r_sub: Receiver,
    r_unsub: Receiver,
    /// Alice's browser, signed in to both applications.
    browser: Browser,
    /// Alice's `sub`.
    sub: String,
    /// The `sid` of `app-sub` in the browser's session.
    sid_sub: String,
}

async fn scene() -> Scene {
    let op = TestOp::start_with(|s| {
        s.admin_token = Some(Secret(ADMIN.into()));
        s.delivery.logout_wait_ms = 0;
    })
    .await
    .unwrap();
    let user = op.add_user("alice", Some("alice@example.com"), PASSWORD).await.unwrap();
    let (r_sub, r_unsub) = (Receiver::start(Behavior::Status(200)).await, Receiver::start(Behavior::Status(200)).await);
    let custom = |selected_initiators| InitiatorSubscription { mode: InitiatorMode::Custom, selected_initiators };
    let account_initiators =
        vec![Initiator::SessionRevoked, Initiator::PasswordChanged, Initiator::EmailIdentifierChanged];
    let subscribed =
        op.add_bc_client("app-sub", "http://127.0.0.1:9201/cb", &r_sub.uri, custom(account_initiators)).await.unwrap();
    let unsubscribed =
        op.add_bc_client("app-unsub", "http://127.0.0.1:9202/cb", &r_unsub.uri, custom(vec![])).await.unwrap();
    let browser = Browser::new();
    let sid_sub = sign_in_to(&browser, &op, &subscribed).await;
    sign_in_to(&browser, &op, &unsubscribed).await;
    Scene { op, subscribed, unsubscribed, r_sub, r_unsub, browser, sub: user.id.to_string(), sid_sub }
}

/// Signs `browser` in to `client` as alice (by single sign-on if it already has a session) and
/// returns the `sid` of the ID token.
async fn sign_in_to(browser: &Browser, op: &TestOp, client: &TestClient) -> String {
    let tokens = exchange(op, client, &get_code(browser, op, client, &[]).await, &[]).await;
    peek_claims(tokens["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned()
}

/// The account page as `browser` sees it: status and HTML.
async fn account_page(browser: &Browser, op: &TestOp) -> (u16, String) {
    let res = browser.get(&op.issuer, "/account").await.unwrap();
    assert_eq!(res.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"));
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The CSRF token of the account page's forms.
async fn csrf(browser: &Browser, op: &TestOp) -> String {
    let (status, html) = account_page(browser, op).await;
    assert_eq!(status, 200, "{html}");
    hidden_field(&html, "csrf").expect("the forms carry a csrf field")
}

async fn post(browser: &Browser, op: &TestOp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser.http.post(op.url(path)).form(form).send().await.unwrap()
}

/// Audit events for a query string such as `type=session.ended`, newest first.
async fn logs(op: &TestOp, query: &str) -> Vec<Value> {
    let res = reqwest::Client::new().get(op.url(&format!("/api/v1/logs?{query}"))).bearer_auth(ADMIN);
    let body: Value = res.send().await.unwrap().json().await.unwrap();
    body.as_array().unwrap().clone()
}

fn actor(s: &Scene) -> String {
    format!("account:{}", s.sub)
}

async fn wait_queue_empty(op: &TestOp) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while op.state.store.queue_stats().await.unwrap().depth > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the delivery queue did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `app-sub` received exactly one verified logout token per `sid` in `sids`, each naming alice;
/// once the queue is empty, `app-unsub` has no delivery and received nothing; the audit log has one
/// `session.ended` per session with `initiator` and the account actor.
async fn assert_notified(s: &Scene, initiator: Initiator, sids: &[&str]) {
    let got = s.r_sub.wait_for(sids.len(), WAIT).await;
    let mut seen = BTreeSet::new();
    for r in &got {
        let claims = verify_logout_token(&s.op, r.logout_token(), &s.subscribed.id).await;
        assert_eq!(claims["sub"], s.sub.as_str(), "the token names alice's sub");
        seen.insert(claims["sid"].as_str().unwrap().to_owned());
    }
    let expected: BTreeSet<String> = sids.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(seen, expected, "BC-SID-03: one token per session, with app-sub's sid in it");
    assert_eq!(got.len(), sids.len(), "no duplicates");

    wait_queue_empty(&s.op).await;
    let filter =
        |c: &TestClient| DeliveryFilter { client_id: Some(adieu_core::id::ClientId::new(&c.id)), ..Default::default() };
    let to_unsub = s.op.state.store.deliveries(&filter(&s.unsubscribed)).await.unwrap();
    assert!(to_unsub.is_empty(), "no delivery for the unsubscribed application: {to_unsub:?}");
    assert!(s.r_unsub.received().is_empty(), "the unsubscribed application receives nothing");
    let to_sub = s.op.state.store.deliveries(&filter(&s.subscribed)).await.unwrap();
    assert!(to_sub.iter().all(|d| d.initiator == initiator), "{to_sub:?}");

    let ended: Vec<Value> =
        logs(&s.op, "type=session.ended").await.into_iter().filter(|e| e["user_id"] == s.sub.as_str()).collect();
    assert_eq!(ended.len(), sids.len(), "{ended:?}");
    for e in &ended {
        assert_eq!(e["detail"]["initiator"], initiator.as_str(), "{e}");
        assert_eq!(e["actor"], actor(s).as_str(), "{e}");
    }
}

/// Proves: the page lists this browser's session first and marked, another browser's session with
/// a button of its own, each with its applications and times; application names are escaped; the
/// answer is not cached.
#[tokio::test]
async fn the_page_lists_this_and_other_sessions_with_their_applications() {
    let s = scene().await;
    let (evil, _) =
        s.op.add_client(ClientRegistration {
            client_id: Some("app-evil".into()),
            name: "<script>alert(1)</script>".into(),
            redirect_uris: vec!["http://127.0.0.1:9203/cb".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let second = Browser::new();
    let loc = second
        .authorize(&s.op, &auth_params_for(evil.id.as_str(), "http://127.0.0.1:9203/cb"), "alice", PASSWORD)
        .await
        .unwrap();
    assert!(loc.contains("code="), "{loc}");

    let (status, html) = account_page(&s.browser, &s.op).await;
    assert_eq!(status, 200);
    assert!(html.contains("Signed in as <strong>alice</strong> (alice@example.com)"), "{html}");
    let this = html.find("This browser").expect("this browser's session is marked");
    let other = html.find("Another browser").expect("the other session is listed");
    assert!(this < other, "this browser's session comes first");
    assert!(html[this..other].contains("App app-sub, App app-unsub"), "{html}");
    assert!(html[other..].contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "names are escaped: {html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains(" UTC, last used "), "{html}");
    // Each form says exactly which applications it tells (the store's rule): app-sub is subscribed
    // to all three account initiators, app-unsub to none of them, app-evil has no logout URI.
    let not_told = "Not told: &lt;script&gt;alert(1)&lt;&#x2f;script&gt;, App app-unsub";
    for form in
        ["ends every session above, this one too.", "A new password signs you out everywhere", "A new email address"]
    {
        let at = html.find(form).unwrap_or_else(|| panic!("{form} missing: {html}"));
        let line = &html[at..at + html[at..].find("</p>").unwrap()];
        assert!(line.contains("Tells App app-sub.") && line.contains(not_told), "{line}");
    }
    let other_session = &html[other..];
    assert!(other_session.contains("Signing this session out: Tells no application."), "{other_session}");
    // One "sign out this other session" button: the other session's, never this one's.
    let sessions = s.op.state.store.open_sessions_of_user(&UserId::new(&s.sub)).await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(html.matches("name=\"session\"").count(), 1, "{html}");
    let other_id = hidden_field(&html, "session").unwrap();
    assert!(sessions.iter().any(|x| x.id.as_str() == other_id), "the button names the other session");
    // The start page links to the account page.
    let home = s.browser.get(&s.op.issuer, "/").await.unwrap().text().await.unwrap();
    assert!(home.contains("href=\"&#x2f;account\""), "{home}");
}

fn auth_params_for<'a>(client_id: &'a str, redirect_uri: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st"),
        ("nonce", "n"),
    ]
}

/// Proves: "Sign out everywhere" ends every session of alice (two browsers) as `session-revoked`,
/// audited as `account:<id>`; only the subscribed application is told, once per session; this
/// browser is signed out and shown a page that says so.
#[tokio::test]
async fn sign_out_everywhere_ends_every_session_and_notifies_only_subscribers() {
    let s = scene().await;
    let second = Browser::new();
    let sid_second = sign_in_to(&second, &s.op, &s.subscribed).await;
    let token = csrf(&s.browser, &s.op).await;
    let res = post(&s.browser, &s.op, "/account/sign-out-everywhere", &[("csrf", &token)]).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("You are signed out everywhere")
            && html.contains("All 2 of your sessions have ended")
            && html.contains("Being told: App app-sub."),
        "{html}"
    );
    assert_notified(&s, Initiator::SessionRevoked, &[&s.sid_sub, &sid_second]).await;
    assert!(!signed_in(&s.browser, &s.op).await && !signed_in(&second, &s.op).await);
    assert_eq!(account_page(&s.browser, &s.op).await.0, 401);
}

/// Proves: "Sign out this other session" ends that session only (`session-revoked`), this browser
/// stays signed in, and sending the form again says the session had already ended.
#[tokio::test]
async fn signing_out_another_session_ends_only_that_one() {
    let s = scene().await;
    let second = Browser::new();
    let sid_second = sign_in_to(&second, &s.op, &s.subscribed).await;
    let (_, html) = account_page(&s.browser, &s.op).await;
    let (token, other) = (hidden_field(&html, "csrf").unwrap(), hidden_field(&html, "session").unwrap());
    let res = post(&s.browser, &s.op, "/account/sessions/revoke", &[("csrf", &token), ("session", &other)]).await;
    assert_eq!(location(&res).unwrap(), "/account?notice=session-ended");
    assert_notified(&s, Initiator::SessionRevoked, &[&sid_second]).await;
    assert!(signed_in(&s.browser, &s.op).await, "this browser stays signed in");
    assert!(!signed_in(&second, &s.op).await);
    let html = s.browser.get(&s.op.issuer, "/account?notice=session-ended").await.unwrap().text().await.unwrap();
    assert!(html.contains("The session was signed out.") && !html.contains("Another browser"), "{html}");
    let res = post(&s.browser, &s.op, "/account/sessions/revoke", &[("csrf", &token), ("session", &other)]).await;
    assert_eq!(location(&res).unwrap(), "/account?notice=session-already-ended");
    assert_eq!(s.r_sub.received().len(), 1, "nothing is sent twice");
}

/// Proves: a new password set on the page (with the current one) ends every session as
/// `password-changed`, this one too; the `offline_access` refresh token is revoked; the old
/// password no longer signs in and the new one does; the change is audited as `account:<id>`.
#[tokio::test]
async fn changing_the_password_signs_out_everywhere_and_revokes_offline_tokens() {
    let s = scene().await;
    let code = get_code(&s.browser, &s.op, &s.subscribed, &[("scope", "openid offline_access")]).await;
    let offline = exchange(&s.op, &s.subscribed, &code, &[]).await;
    let rt = offline["refresh_token"].as_str().unwrap().to_owned();

    let token = csrf(&s.browser, &s.op).await;
    let form = [
        ("csrf", token.as_str()),
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
        ("new_password_again", NEW_PASSWORD),
    ];
    let res = post(&s.browser, &s.op, "/account/password", &form).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Your password was changed") && html.contains("signed out everywhere"), "{html}");
    assert_notified(&s, Initiator::PasswordChanged, &[&s.sid_sub]).await;
    assert!(!signed_in(&s.browser, &s.op).await, "this browser's session ended too");

    let (status, err) =
        token_error(&s.op, &s.subscribed, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!((status, err.as_str()), (400, "invalid_grant"), "the offline_access refresh token is revoked");
    let old = Browser::new().authorize(&s.op, &auth_params(&s.subscribed, &[]), "alice", PASSWORD).await;
    assert!(old.is_err(), "the old password no longer signs in: {old:?}");
    let new = Browser::new().authorize(&s.op, &auth_params(&s.subscribed, &[]), "alice", NEW_PASSWORD).await.unwrap();
    assert!(new.contains("code="), "{new}");
    let updated = logs(&s.op, "type=user.updated").await;
    assert_eq!(updated[0]["actor"], actor(&s).as_str());
    assert!(updated[0]["detail"].to_string().contains("password"), "{}", updated[0]);
}

/// Proves: a new email set on the page (with the current password) ends every session as
/// `email-identifier-changed`, is stored, and is audited as `account:<id>`.
#[tokio::test]
async fn changing_the_email_ends_sessions_as_email_identifier_changed() {
    let s = scene().await;
    let token = csrf(&s.browser, &s.op).await;
    let form = [("csrf", token.as_str()), ("email", "Alice@New.example"), ("current_password", PASSWORD)];
    let res = post(&s.browser, &s.op, "/account/email", &form).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Your email address was changed"));
    assert_notified(&s, Initiator::EmailIdentifierChanged, &[&s.sid_sub]).await;
    let user = s.op.state.store.user_by_id(&UserId::new(&s.sub)).await.unwrap().unwrap();
    assert_eq!(user.email.as_deref(), Some("alice@new.example"));
    let updated = logs(&s.op, "type=user.updated").await;
    assert_eq!(updated[0]["actor"], actor(&s).as_str());
    assert_eq!(updated[0]["detail"]["email"]["new"], "alice@new.example");
    assert!(!signed_in(&s.browser, &s.op).await);
}

/// Nothing about alice changed: same password hash and email, both sessions of the scene still
/// open, no delivery written, no audit event by the account page.
async fn assert_nothing_changed(s: &Scene, before: &adieu_core::user::User, sessions: usize) {
    let user = s.op.state.store.user_by_id(&before.id).await.unwrap().unwrap();
    assert_eq!((&user.password_hash, &user.email), (&before.password_hash, &before.email));
    let open = s.op.state.store.open_sessions_of_user(&before.id).await.unwrap();
    assert_eq!(open.len(), sessions, "every session is still open");
    assert!(s.op.state.store.deliveries(&DeliveryFilter::default()).await.unwrap().is_empty());
    let by_page: Vec<Value> = logs(&s.op, "limit=1000")
        .await
        .into_iter()
        .filter(|e| e["actor"].as_str().is_some_and(|a| a.starts_with("account:")))
        .collect();
    assert!(by_page.is_empty(), "{by_page:?}");
}

/// Proves: a wrong current password refuses the password and the email change (401, nothing
/// changes, this browser stays signed in); forms that cannot succeed (different or short new
/// passwords, a malformed email) are refused before any password is checked; after five wrong
/// passwords even the right one is refused (429), as on the sign-in form.
#[tokio::test]
async fn a_wrong_current_password_changes_nothing_and_is_rate_limited() {
    let s = scene().await;
    let before = s.op.state.store.user_by_id(&UserId::new(&s.sub)).await.unwrap().unwrap();
    let token = csrf(&s.browser, &s.op).await;
    let password = |current: &'static str, new: &'static str, again: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("current_password", current.into()),
            ("new_password", new.into()),
            ("new_password_again", again.into()),
        ]
    };
    let send = |path: &'static str, form: Vec<(&'static str, String)>| {
        let (b, op) = (&s.browser, &s.op);
        async move {
            let res = b.http.post(op.url(path)).form(&form).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    for (form, status, needle, field) in [
        (password(PASSWORD, NEW_PASSWORD, "another password"), 400, "not the same", "new_password_again"),
        (password(PASSWORD, "short", "short"), 400, "at least 8", "new_password"),
        (
            password("wrong password", NEW_PASSWORD, NEW_PASSWORD),
            401,
            "current password is incorrect",
            "current_password",
        ),
    ] {
        let (got, html) = send("/account/password", form).await;
        assert_eq!(got, status, "{html}");
        assert!(html.contains(needle) && html.contains("Nothing was changed"), "{needle}: {html}");
        assert!(html.contains("Your account"), "the page is shown again with the error");
        // The error sits under its field, which points at it and takes the focus.
        let input = format!("id=\"{field}\"");
        let at = html.find(&input).unwrap_or_else(|| panic!("{field}: {html}"));
        let tag = &html[at..at + html[at..].find('>').unwrap()];
        assert!(
            tag.contains(&format!("aria-describedby=\"{field}-error\""))
                && tag.contains("aria-invalid=\"true\"")
                && tag.contains("autofocus"),
            "{tag}"
        );
        let message = &html[html.find(&format!("id=\"{field}-error\"")).expect("the message")..];
        assert!(message[..message.find("</p>").unwrap()].contains(needle), "{message}");
        assert_eq!(html.matches("aria-invalid").count(), 1, "only the one field");
    }
    let email = |e: &'static str, current: &'static str| {
        vec![("csrf", token.clone()), ("email", e.into()), ("current_password", current.into())]
    };
    let (got, html) = send("/account/email", email("not-an-email", PASSWORD)).await;
    assert_eq!(got, 400, "{html}");
    let (got, html) = send("/account/email", email("alice@other.example", "wrong password")).await;
    assert_eq!(got, 401, "{html}");
    assert!(signed_in(&s.browser, &s.op).await);
    assert_nothing_changed(&s, &before, 1).await;

    // Two wrong passwords so far; three more reach the limit of five.
    for _ in 0..3 {
        assert_eq!(send("/account/email", email("alice@other.example", "wrong password")).await.0, 401);
    }
    let (got, html) = send("/account/password", password(PASSWORD, NEW_PASSWORD, NEW_PASSWORD)).await;
    assert_eq!(got, 429, "{html}");
    assert!(html.contains("Too many attempts"), "{html}");
    assert_nothing_changed(&s, &before, 1).await;
}

/// Proves: every form of the page is refused with 403 without the CSRF token, with a forged one,
/// and from another origin with the right one, and nothing changes.
#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let s = scene().await;
    let second = Browser::new();
    sign_in_to(&second, &s.op, &s.subscribed).await;
    let before = s.op.state.store.user_by_id(&UserId::new(&s.sub)).await.unwrap().unwrap();
    let (_, html) = account_page(&s.browser, &s.op).await;
    let (token, other) = (hidden_field(&html, "csrf").unwrap(), hidden_field(&html, "session").unwrap());
    let forms: [(&str, Vec<(&str, &str)>); 4] = [
        ("/account/sign-out-everywhere", vec![]),
        ("/account/sessions/revoke", vec![("session", other.as_str())]),
        (
            "/account/password",
            vec![("current_password", PASSWORD), ("new_password", NEW_PASSWORD), ("new_password_again", NEW_PASSWORD)],
        ),
        ("/account/email", vec![("email", "alice@other.example"), ("current_password", PASSWORD)]),
    ];
    let forged = "forged-token-forged-token-forged-token-xxxx";
    for (path, fields) in &forms {
        let missing = post(&s.browser, &s.op, path, fields).await;
        assert_eq!(missing.status(), 403, "{path} without a token");
        let mut with_forged = fields.clone();
        with_forged.push(("csrf", forged));
        assert_eq!(post(&s.browser, &s.op, path, &with_forged).await.status(), 403, "{path} with a forged token");
        let mut with_token = fields.clone();
        with_token.push(("csrf", token.as_str()));
        let cross = s.browser.http.post(s.op.url(path)).header("origin", "http://evil.example").form(&with_token);
        assert_eq!(cross.send().await.unwrap().status(), 403, "{path} from another origin");
        let cross = s.browser.http.post(s.op.url(path)).header("sec-fetch-site", "cross-site").form(&with_token);
        assert_eq!(cross.send().await.unwrap().status(), 403, "{path} cross-site");
    }
    assert!(signed_in(&s.browser, &s.op).await && signed_in(&second, &s.op).await);
    assert_nothing_changed(&s, &before, 2).await;
}

/// Proves: the revoke form refuses (404) another user's session id, an unknown one and an empty
/// one, and nothing changes for either user.
#[tokio::test]
async fn another_users_session_cannot_be_signed_out_from_the_form() {
    let s = scene().await;
    let bob = s.op.add_user("bob", None, PASSWORD).await.unwrap();
    let bobs_browser = Browser::new();
    let loc = bobs_browser.authorize(&s.op, &auth_params(&s.subscribed, &[]), "bob", PASSWORD).await.unwrap();
    assert!(loc.contains("code="), "{loc}");
    let bobs = s.op.state.store.open_sessions_of_user(&bob.id).await.unwrap();
    assert_eq!(bobs.len(), 1);
    let before = s.op.state.store.user_by_id(&UserId::new(&s.sub)).await.unwrap().unwrap();
    let token = csrf(&s.browser, &s.op).await;
    for id in [bobs[0].id.as_str(), "no-such-session", "", &"x".repeat(500)] {
        let res = post(&s.browser, &s.op, "/account/sessions/revoke", &[("csrf", &token), ("session", id)]).await;
        assert_eq!(res.status(), 404, "session id {id:?}");
        assert!(res.text().await.unwrap().contains("No such session"));
    }
    assert!(signed_in(&bobs_browser, &s.op).await, "bob is still signed in");
    assert!(s.op.state.store.session_by_id(&bobs[0].id).await.unwrap().unwrap().ended_at.is_none());
    assert!(signed_in(&s.browser, &s.op).await);
    assert_nothing_changed(&s, &before, 1).await;
}

/// Proves: without a session the page answers 401 with a sign-in link and shows nothing of any
/// account, and its forms change nothing even with a valid CSRF token.
#[tokio::test]
async fn not_signed_in_the_page_shows_nothing_and_the_forms_do_nothing() {
    let s = scene().await;
    let before = s.op.state.store.user_by_id(&UserId::new(&s.sub)).await.unwrap().unwrap();
    let stranger = Browser::new();
    let (status, html) = account_page(&stranger, &s.op).await;
    assert_eq!(status, 401);
    assert!(html.contains("You are not signed in") && html.contains("href=\"&#x2f;login\""), "{html}");
    for secret in ["alice", "example.com", "App app-sub", "name=\"session\"", "csrf"] {
        assert!(!html.contains(secret), "{secret} shown to a stranger: {html}");
    }
    // A CSRF cookie and token from the sign-in page, but no session.
    let login = stranger.get(&s.op.issuer, "/login").await.unwrap().text().await.unwrap();
    let token = hidden_field(&login, "csrf").unwrap();
    let everywhere = post(&stranger, &s.op, "/account/sign-out-everywhere", &[("csrf", &token)]).await;
    assert_eq!(everywhere.status(), 401);
    let form = [("csrf", token.as_str()), ("email", "mallory@example.com"), ("current_password", PASSWORD)];
    assert_eq!(post(&stranger, &s.op, "/account/email", &form).await.status(), 401);
    assert!(signed_in(&s.browser, &s.op).await);
    assert_nothing_changed(&s, &before, 1).await;
}

const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const FIREFOX_MACOS: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0";

/// Signs `browser` in as alice on the sign-in form alone (no application), with `headers` added
/// to the form's POST.
async fn sign_in_on_the_form(browser: &Browser, op: &TestOp, headers: &[(&str, &str)]) {
    let login = browser.get(&op.issuer, "/login").await.unwrap().text().await.unwrap();
    let csrf = hidden_field(&login, "csrf").expect("the sign-in form carries a csrf field");
    let form = [("username", "alice"), ("password", PASSWORD), ("csrf", csrf.as_str())];
    let mut post = browser.http.post(op.url("/login")).form(&form);
    for (name, value) in headers {
        post = post.header(*name, *value);
    }
    let res = post.send().await.unwrap();
    location(&res).unwrap_or_else(|e| panic!("the sign-in did not redirect: {e}"));
}

/// Proves (issue 13): each session on the page says where it was signed in from, as "browser on
/// system · address" ([`adieu_core::session::describe_user_agent`], the address the provider saw:
/// 127.0.0.1 here); a browser that sends no `User-Agent` is an unknown browser; signing in again in
/// the same browser (a re-authentication) replaces what was recorded; a `User-Agent` with markup
/// is shown escaped (in the line's title) and never as markup.
#[tokio::test]
async fn each_session_shows_the_browser_system_and_address_it_was_signed_in_from() {
    let s = scene().await;
    let firefox = Browser::with_user_agent(FIREFOX_LINUX);
    get_code(&firefox, &s.op, &s.subscribed, &[]).await;
    let evil_agent = "<script>alert(1)</script> Chrome/131.0 (Windows NT 10.0) \"quoted\"";
    let evil = Browser::with_user_agent(evil_agent);
    get_code(&evil, &s.op, &s.subscribed, &[]).await;

    let (status, html) = account_page(&firefox, &s.op).await;
    assert_eq!(status, 200, "{html}");
    let this = html.find("This browser").expect("this browser's session is marked");
    let other = html.find("Another browser").expect("the other sessions are listed");
    assert!(html[this..other].contains("Firefox on Linux \u{b7} 127.0.0.1"), "{html}");
    assert!(html[this..other].contains(&format!("title=\"{}\"", FIREFOX_LINUX.replace('/', "&#x2f;"))), "{html}");
    let others = &html[other..];
    assert!(others.contains("Chrome on Windows \u{b7} 127.0.0.1"), "{others}");
    assert!(others.contains("Unknown browser \u{b7} 127.0.0.1"), "the scene's browser sends no User-Agent: {others}");
    let escaped = "&lt;script&gt;alert(1)&lt;&#x2f;script&gt; Chrome&#x2f;131.0 (Windows NT 10.0) &quot;quoted&quot;";
    assert!(others.contains(&format!("title=\"{escaped}\"")), "{others}");
    assert!(!html.contains("<script>alert") && !html.contains("\"quoted\""), "{html}");

    // Signing in again in the same browser re-authenticates its session and replaces its device.
    sign_in_on_the_form(&firefox, &s.op, &[("user-agent", FIREFOX_MACOS)]).await;
    let (_, html) = account_page(&firefox, &s.op).await;
    let (this, other) = (html.find("This browser").unwrap(), html.find("Another browser").unwrap());
    assert!(html[this..other].contains("Firefox on macOS \u{b7} 127.0.0.1"), "{html}");
    assert!(!html.contains("Firefox on Linux"), "{html}");
    assert_eq!(s.op.state.store.open_sessions_of_user(&UserId::new(&s.sub)).await.unwrap().len(), 3);
}

/// Proves: behind a trusted proxy (`http.trusted_proxies`), the address shown is the client's from
/// `X-Forwarded-For`, the same rule as the attempt limits; from an untrusted peer the header is
/// ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_the_session_shows_the_forwarded_address() {
    let op = TestOp::start_with(|s| s.http.trusted_proxies = vec!["127.0.0.1/32".into()]).await.unwrap();
    op.add_user("alice", Some("alice@example.com"), PASSWORD).await.unwrap();
    let browser = Browser::with_user_agent(FIREFOX_LINUX);
    sign_in_on_the_form(&browser, &op, &[("x-forwarded-for", "198.51.100.66, 203.0.113.7")]).await;
    let (status, html) = account_page(&browser, &op).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Firefox on Linux \u{b7} 203.0.113.7"), "{html}");

    let untrusted = TestOp::start().await.unwrap();
    untrusted.add_user("alice", None, PASSWORD).await.unwrap();
    let browser = Browser::with_user_agent(FIREFOX_LINUX);
    sign_in_on_the_form(&browser, &untrusted, &[("x-forwarded-for", "203.0.113.7")]).await;
    let (_, html) = account_page(&browser, &untrusted).await;
    assert!(html.contains("Firefox on Linux \u{b7} 127.0.0.1") && !html.contains("203.0.113.7"), "{html}");
}
