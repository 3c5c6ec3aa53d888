//! An upstream provider adieu did not write: panva's `oidc-provider` for Node.js
//! (`tests/interop/op.mjs`, the version pinned in its lockfile) as the upstream of the downstream
//! provider. A browser signs in to an application of the downstream through oidc-provider's own
//! login and consent pages; signing out at oidc-provider makes it POST a logout token to adieu,
//! which ends the session as `idp-logout` and tells the application (BC-SEND-09).
//!
//! Needs Node.js and npm. Without them the test is skipped, or fails when `ADIEU_REQUIRE_INTEROP=1`
//! (CI sets it).

use crate::support::*;
use adieu_core::ManualClock;
use adieu_core::initiator::{Initiator, InitiatorSubscription};
use adieu_core::store::DeliveryFilter;
use adieu_server::settings::{Secret, UpstreamSettings};
use adieu_testkit::interop::{self, Lines};
use adieu_testkit::receiver::{Behavior, Receiver};
use adieu_testkit::{Stopped, TestOp, query_param};
use reqwest::Url;
use std::sync::Arc;
use std::time::Duration;

const CLIENT_ID: &str = "downstream";
const CLIENT_SECRET: &str = "downstream-interop-secret";
const USER: &str = "carol";

/// Follows redirects by hand (the browser must stop at the application's redirect URI, where
/// nothing listens), answering oidc-provider's login and consent pages. Returns the redirect to the
/// application.
async fn browse_to_app(browser: &reqwest::Client, start: Url, app_redirect_uri: &str) -> String {
    let mut url = start;
    let mut prompts = Vec::new();
    for _ in 0..20 {
        if url.as_str().starts_with(app_redirect_uri) {
            return url.to_string();
        }
        let res = browser.get(url.clone()).send().await.unwrap();
        if res.status().is_redirection() {
            url = url.join(res.headers()["location"].to_str().unwrap()).unwrap();
            continue;
        }
        let (status, body) = (res.status(), res.text().await.unwrap());
        assert!(status.is_success(), "{url} answered {status}:\n{body}");
        let (prompt, fields): (&str, &[(&str, &str)]) = if body.contains(r#"name="prompt" value="login""#) {
            ("login", &[("login", USER), ("password", "any password is accepted")])
        } else if body.contains(r#"name="prompt" value="consent""#) {
            ("consent", &[])
        } else {
            panic!("unexpected page at {url}:\n{body}");
        };
        prompts.push(prompt);
        let (action, mut data) = interop::form(&url, &body, &format!(r#"value="{prompt}""#));
        data.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let res = browser.post(action.clone()).form(&data).send().await.unwrap();
        assert!(res.status().is_redirection(), "{prompt} at {action}: {}", res.status());
        url = action.join(res.headers()["location"].to_str().unwrap()).unwrap();
    }
    panic!("did not reach the application; prompts {prompts:?}, last {url}");
}

/// Proves: oidc-provider works as an upstream: its code flow (PKCE, `client_secret_basic`, RS256 ID
/// tokens with `sid`, profile claims from userinfo) signs a person in to the downstream, and its
/// back-channel logout after a sign-out there reaches the downstream's application subscribed to
/// `idp-logout` with a valid token for the right `sub` and `sid`, and nothing else.
#[tokio::test]
async fn oidc_provider_as_an_upstream_signs_in_and_its_logout_reaches_the_applications() {
    let required = std::env::var("ADIEU_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    if interop::tool_version("node").is_none() || interop::tool_version("npm").is_none() {
        assert!(!required, "ADIEU_REQUIRE_INTEROP=1 but node or npm is not on PATH");
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "!!!! SKIPPED upstream_interop: node or npm is not on PATH");
        return;
    }
    interop::ensure_node_modules();

    // The downstream's address comes first: oidc-provider registers adieu's callback and
    // back-channel URIs (`{rp-base-url}/callback`, `{rp-base-url}/backchannel-logout`) at start.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let rp_base = format!("http://{addr}/upstream/node");
    let log: Lines = Arc::default();
    let (_op, issuer) = interop::start_op(&rp_base, CLIENT_ID, CLIENT_SECRET, log.clone()).await;
    let stopped = Stopped { dir: tempfile::tempdir().unwrap(), clock: ManualClock::starting_now(), addr };
    let op_issuer = issuer.clone();
    let down = TestOp::start_in(stopped, |s| {
        s.delivery.logout_wait_ms = 0;
        s.upstreams = vec![UpstreamSettings {
            id: "node".into(),
            issuer: op_issuer,
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret(CLIENT_SECRET.into())),
            client_secret_env: None,
            display_name: "oidc-provider".into(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
        }];
    })
    .await
    .unwrap();
    assert_eq!(down.issuer, format!("http://{addr}"), "the reserved port was taken meanwhile");

    let r_a = Receiver::start(Behavior::Status(200)).await;
    let app_a = down
        .add_bc_client("app-a", "http://127.0.0.1:9401/cb", &r_a.uri, InitiatorSubscription::default())
        .await
        .unwrap();
    let app_b = down.add_simple_client("app-b", "http://127.0.0.1:9402/cb").await.unwrap();

    // Sign in to app A: the downstream's sign-in page, its oidc-provider button, oidc-provider's
    // login and consent, the downstream's callback, app A's redirect URI. Then app B by SSO.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut start = Url::parse(&down.url("/upstream/node/start")).unwrap();
    let mut authz = Url::parse(&down.url("/authorize")).unwrap();
    authz.query_pairs_mut().extend_pairs(auth_params(&app_a, &[]));
    let res = browser.get(authz).send().await.unwrap();
    let login = res.headers()["location"].to_str().unwrap().to_owned();
    let request = query_param(&down.url(&login), "request").expect("a pending request");
    start.query_pairs_mut().append_pair("request", &request);
    let to_app = browse_to_app(&browser, start, &app_a.redirect_uri).await;
    let tokens_a = exchange(&down, &app_a, &query_param(&to_app, "code").expect("a code"), &[]).await;
    let claims_a = verify_id_token(&down, tokens_a["id_token"].as_str().unwrap(), "app-a").await;
    let mut authz_b = Url::parse(&down.url("/authorize")).unwrap();
    authz_b.query_pairs_mut().extend_pairs(auth_params(&app_b, &[]));
    let to_b = browse_to_app(&browser, authz_b, &app_b.redirect_uri).await;
    let tokens_b = exchange(&down, &app_b, &query_param(&to_b, "code").unwrap(), &[]).await;
    let sid_b = peek_claims(tokens_b["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
    let carol = down.state.store.user_by_upstream(&issuer, USER).await.unwrap().expect("linked local user");
    assert_eq!(claims_a["sub"], carol.id.as_str());
    assert_eq!(carol.username, USER, "from userinfo's preferred_username");

    // Sign out at oidc-provider (RP-Initiated Logout there, confirmed).
    let end = Url::parse(&format!("{issuer}/session/end")).unwrap();
    let res = browser.get(end.clone()).send().await.unwrap();
    let page = res.text().await.unwrap();
    let (action, mut fields) = interop::form(&end, &page, r#"id="op.logoutForm""#);
    fields.push(("logout".into(), "yes".into()));
    let res = browser.post(action).form(&fields).send().await.unwrap();
    assert!(res.status().is_redirection() || res.status().is_success(), "logout: {}", res.status());

    // oidc-provider's logout token reached adieu, which ended the session as idp-logout.
    let got = r_a.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "app A was not told; oidc-provider said: {:?}", log.lock().unwrap());
    let lt = verify_logout_token(&down, got[0].logout_token(), "app-a").await;
    assert_eq!((&lt["sub"], &lt["sid"]), (&claims_a["sub"], &claims_a["sid"]));
    assert!(log.lock().unwrap().iter().any(|l| l.starts_with(&format!("OP_BACKCHANNEL=success {CLIENT_ID}"))));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while down.state.store.queue_stats().await.unwrap().depth > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliveries = down.state.store.deliveries(&DeliveryFilter::default()).await.unwrap();
    assert!(deliveries.iter().all(|d| d.sid.as_str() != sid_b && d.initiator == Initiator::IdpLogout));
    assert_eq!(deliveries.len(), 1);
}
