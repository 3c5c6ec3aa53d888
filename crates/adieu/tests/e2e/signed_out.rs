//! The signed-out page's live status over real HTTP: `GET /logout/status/{session}` reports each
//! application's delivery as it changes, as JSON and as a page, only for a session that ended in
//! the last 15 minutes.

use crate::support::*;
use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Browser, TestClient, TestOp};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn all() -> InitiatorSubscription {
    InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] }
}

/// A provider with alice signed in to app-a (→ `ra`) and app-b (→ `rb`); the browser and app-a's
/// ID token.
async fn signed_in(ra: &Receiver, rb: &Receiver) -> (TestOp, Browser, String, TestClient) {
    let op = TestOp::start().await.unwrap();
    op.add_user("alice", None, PASSWORD).await.unwrap();
    let a = op.add_bc_client("app-a", "http://127.0.0.1:9001/cb", &ra.uri, all()).await.unwrap();
    let b = op.add_bc_client("app-b", "http://127.0.0.1:9002/cb", &rb.uri, all()).await.unwrap();
    let browser = Browser::new();
    let ta = exchange(&op, &a, &get_code(&browser, &op, &a, &[]).await, &[]).await;
    exchange(&op, &b, &get_code(&browser, &op, &b, &[]).await, &[]).await;
    (op, browser, ta["id_token"].as_str().unwrap().to_owned(), b)
}

/// The status link on a signed-out page, if it has one (the page escapes `/` as `&#x2f;`).
fn status_link(page: &str) -> Option<String> {
    let page = page.replace("&#x2f;", "/");
    let start = page.find("href=\"/logout/status/")? + "href=\"".len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].to_owned())
}

async fn status_json(op: &TestOp, path: &str) -> (u16, Value) {
    let res = reqwest::Client::new().get(op.url(path)).header("accept", "application/json").send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn state_of<'a>(status: &'a Value, app: &str) -> &'a str {
    status["apps"].as_array().unwrap().iter().find(|a| a["id"] == app).unwrap()["state"].as_str().unwrap()
}

/// Proves: while an application is being told, the signed-out page links its live status; the
/// status follows the delivery (pending, then signed out after the retry) and says when it is
/// done; as a page it shows the same badges, without the link once nothing is pending.
#[tokio::test]
async fn the_signed_out_status_follows_each_delivery_until_every_application_is_told() {
    let (ra, rb) = (Receiver::start(Behavior::Status(200)).await, Receiver::start(Behavior::Status(200)).await);
    ra.script([Behavior::Status(503)]);
    let (op, browser, id_a, _) = signed_in(&ra, &rb).await;
    let res = browser.http.get(op.url("/logout")).query(&[("id_token_hint", id_a.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let page = res.text().await.unwrap();
    assert!(page.contains("src=\"&#x2f;assets&#x2f;signed-out.js\""), "{page}");
    let js = reqwest::get(op.url("/assets/signed-out.js")).await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(js.text().await.unwrap().contains("dataset.status"));
    // Other pages keep the policy that allows no script.
    let home = reqwest::get(op.url("/")).await.unwrap();
    assert!(!home.headers()["content-security-policy"].to_str().unwrap().contains("script-src"));
    ra.wait_for(1, WAIT).await;
    let link =
        status_link(&page).unwrap_or_else(|| panic!("a page with an application being told links its status: {page}"));
    assert!(page.contains("aria-live=\"polite\""), "{page}");

    let (code, status) = status_json(&op, &link).await;
    assert_eq!(code, 200);
    assert_eq!(status["done"], false);
    assert_eq!(state_of(&status, "app-a"), "pending", "{status}");

    // The retry succeeds: the status says so without another sign-out.
    op.clock.advance(Duration::from_secs(2));
    op.wake_workers();
    ra.wait_for(2, WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let done = loop {
        let (_, s) = status_json(&op, &link).await;
        if s["done"] == true {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "the status never said done: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((state_of(&done, "app-a"), state_of(&done, "app-b")), ("ok", "ok"));
    let page = reqwest::get(op.url(&link)).await.unwrap().text().await.unwrap();
    assert_eq!(page.matches("<span class=\"badge ok\">Signed out</span>").count(), 2, "{page}");
    assert!(status_link(&page).is_none(), "no link once every application is told");
}

/// Proves: the status is shown only for a session that has ended, and only for 15 minutes after;
/// an open session, an unknown id and an over-long id all get the same 404.
#[tokio::test]
async fn the_signed_out_status_is_shown_only_for_a_recently_ended_session() {
    let (ra, rb) = (Receiver::start(Behavior::Status(200)).await, Receiver::start(Behavior::Status(200)).await);
    let (op, browser, id_a, _) = signed_in(&ra, &rb).await;
    let alice = op.state.store.user_by_login("alice").await.unwrap().unwrap();
    let open = op.state.store.open_sessions_of_user(&alice.id).await.unwrap();
    let path = format!("/logout/status/{}", open[0].id);
    let long = format!("/logout/status/{}", "x".repeat(200));
    for p in [path.as_str(), "/logout/status/no-such-session", long.as_str()] {
        let (code, body) = status_json(&op, p).await;
        assert_eq!((code, body["error"].as_str()), (404, Some("not_found")), "{p}");
        assert_eq!(reqwest::get(op.url(p)).await.unwrap().status(), 404, "{p} as a page");
    }
    browser.http.get(op.url("/logout")).query(&[("id_token_hint", id_a.as_str())]).send().await.unwrap();
    assert_eq!(status_json(&op, &path).await.0, 200, "ended just now");
    op.clock.advance(Duration::from_secs(15 * 60 + 1));
    assert_eq!(status_json(&op, &path).await.0, 404, "not after 15 minutes");
}
