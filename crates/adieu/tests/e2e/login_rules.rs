//! The login page's rules: CSRF, generic failures, attempt limits, cookie flags, no fixation.

use crate::support::*;
use adieu_testkit::{Browser, hidden_field, location};

async fn login_form(browser: &Browser, w: &World) -> (String, Option<String>) {
    let res = browser.http.get(w.op.url("/authorize")).query(&auth_params(&w.a, &[])).send().await.unwrap();
    let page = browser.get(&w.op.issuer, &location(&res).unwrap()).await.unwrap().text().await.unwrap();
    (hidden_field(&page, "csrf").unwrap(), hidden_field(&page, "request"))
}

async fn submit(
    browser: &Browser,
    w: &World,
    user: &str,
    password: &str,
    csrf: &str,
    request: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("username", user), ("password", password), ("csrf", csrf)];
    if let Some(r) = request {
        form.push(("request", r));
    }
    browser.http.post(w.op.url("/login")).form(&form).send().await.unwrap()
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_generic_error() {
    let w = world().await;
    let b = Browser::new();
    let (csrf, req) = login_form(&b, &w).await;
    let r1 = submit(&b, &w, "alice", "wrong password", &csrf, req.as_deref()).await;
    assert_eq!(r1.status(), 401);
    let t1 = r1.text().await.unwrap();
    let r2 = submit(&b, &w, "mallory", "wrong password", &csrf, req.as_deref()).await;
    assert_eq!(r2.status(), 401);
    let t2 = r2.text().await.unwrap();
    assert!(t1.contains("The username or password is incorrect."));
    // The error is tied to the fields (screen readers read it with them) and the password field
    // takes the focus.
    assert!(
        t1.contains("id=\"credentials-error\"") && t1.contains("aria-describedby=\"credentials-error\" autofocus"),
        "{t1}"
    );
    assert!(t2.contains("The username or password is incorrect."));
    assert!(!signed_in(&b, &w.op).await);
}

#[tokio::test]
async fn login_without_the_csrf_token_is_refused() {
    let w = world().await;
    let b = Browser::new();
    let (_csrf, req) = login_form(&b, &w).await;
    let res = submit(&b, &w, "alice", PASSWORD, "forged-token-forged-token-forged-token-xxxx", req.as_deref()).await;
    assert_eq!(res.status(), 403);
    assert!(!signed_in(&b, &w.op).await);
}

#[tokio::test]
async fn login_from_another_origin_is_refused() {
    let w = world().await;
    let b = Browser::new();
    let (csrf, _) = login_form(&b, &w).await;
    let res = b
        .http
        .post(w.op.url("/login"))
        .header("origin", "http://evil.example")
        .form(&[("username", "alice"), ("password", PASSWORD), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

/// What Chromium sends for a form post under a strict referrer policy: `Origin: null`. Accepted
/// only with `Sec-Fetch-Site: same-origin`; without it (or cross-site) it is refused.
#[tokio::test]
async fn login_with_a_null_origin_is_accepted_only_from_a_same_origin_fetch() {
    let w = world().await;
    for (fetch_site, accepted) in
        [(None, false), (Some("cross-site"), false), (Some("same-site"), false), (Some("same-origin"), true)]
    {
        let b = Browser::new();
        let (csrf, req) = login_form(&b, &w).await;
        let mut form = vec![("username", "alice"), ("password", PASSWORD), ("csrf", csrf.as_str())];
        if let Some(r) = req.as_deref() {
            form.push(("request", r));
        }
        let mut post = b.http.post(w.op.url("/login")).header("origin", "null");
        if let Some(site) = fetch_site {
            post = post.header("sec-fetch-site", site);
        }
        let res = post.form(&form).send().await.unwrap();
        if accepted {
            assert!(res.status().is_redirection(), "Sec-Fetch-Site: {fetch_site:?}: {}", res.status());
        } else {
            assert_eq!(res.status(), 403, "Sec-Fetch-Site: {fetch_site:?}");
        }
    }
}

#[tokio::test]
async fn pages_keep_referrers_same_origin() {
    let w = world().await;
    let b = Browser::new();
    let res = b.http.get(w.op.url("/authorize")).query(&auth_params(&w.a, &[])).send().await.unwrap();
    let page = b.get(&w.op.issuer, &location(&res).unwrap()).await.unwrap();
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
}

#[tokio::test]
async fn account_is_locked_after_five_failures_even_for_the_right_password() {
    let w = world().await;
    let b = Browser::new();
    let (csrf, req) = login_form(&b, &w).await;
    for _ in 0..5 {
        assert_eq!(submit(&b, &w, "alice", "nope nope", &csrf, req.as_deref()).await.status(), 401);
    }
    let res = submit(&b, &w, "alice", PASSWORD, &csrf, req.as_deref()).await;
    assert_eq!(res.status(), 429);
    // Another account is not affected, and the lock lifts after the window.
    w.op.clock.advance(std::time::Duration::from_secs(901));
    let (csrf, req) = login_form(&b, &w).await; // the first sign-in request expired meanwhile
    let res = submit(&b, &w, "alice", PASSWORD, &csrf, req.as_deref()).await;
    assert!(res.status().is_redirection(), "{}", res.status());
}

#[tokio::test]
async fn email_works_as_the_login_name() {
    let w = world().await;
    let b = Browser::new();
    let (csrf, req) = login_form(&b, &w).await;
    let res = submit(&b, &w, "Alice@Example.com", PASSWORD, &csrf, req.as_deref()).await;
    assert!(location(&res).unwrap().starts_with(&w.a.redirect_uri));
}

/// The plain form without an authorization request signs in to the provider itself.
#[tokio::test]
async fn plain_html_form_login_sets_a_session_with_safe_cookie_flags() {
    let w = world().await;
    let b = Browser::new();
    let page = b.get(&w.op.issuer, "/login").await.unwrap().text().await.unwrap();
    let csrf = hidden_field(&page, "csrf").unwrap();
    let res = submit(&b, &w, "alice", PASSWORD, &csrf, None).await;
    assert_eq!(location(&res).unwrap(), "/");
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("adieu_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(signed_in(&b, &w.op).await);
}

/// Signing in again replaces the cookie value (no session fixation), keeping the session.
#[tokio::test]
async fn session_cookie_value_changes_on_every_sign_in() {
    let w = world().await;
    let b = Browser::new();
    let mut values = Vec::new();
    for _ in 0..2 {
        let page = b.get(&w.op.issuer, "/login").await.unwrap().text().await.unwrap();
        let csrf = hidden_field(&page, "csrf").unwrap();
        let res = submit(&b, &w, "alice", PASSWORD, &csrf, None).await;
        let c = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("adieu_session="))
            .unwrap();
        values.push(c.split(';').next().unwrap().to_owned());
    }
    assert_ne!(values[0], values[1]);
    let user = w.op.state.store.user_by_login("alice").await.unwrap().unwrap();
    assert_eq!(
        w.op.state.store.open_sessions_of_user(&user.id).await.unwrap().len(),
        1,
        "re-authentication keeps one session"
    );
}

#[tokio::test]
async fn an_expired_sign_in_request_is_explained() {
    let w = world().await;
    let b = Browser::new();
    let res = b.get(&w.op.issuer, "/login?request=does-not-exist").await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("expired"));
}

/// Proves: `/metrics` counts sign-ins by outcome, tokens by grant type, HTTP requests by route
/// pattern (never the raw path) and status, open sessions, the build and the process.
#[tokio::test]
async fn metrics_count_sign_ins_tokens_requests_and_sessions() {
    let w = world().await;
    let b = Browser::new();
    let (csrf, req) = login_form(&b, &w).await;
    assert_eq!(submit(&b, &w, "alice", "wrong password", &csrf, req.as_deref()).await.status(), 401);
    let code = get_code(&b, &w.op, &w.a, &[]).await;
    exchange(&w.op, &w.a, &code, &[]).await;
    assert_eq!(b.http.get(w.op.url("/no/such/page-123")).send().await.unwrap().status(), 404);
    let text = reqwest::get(w.op.url("/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        "adieu_sign_ins_total{method=\"password\",outcome=\"bad_credentials\"} 1",
        "adieu_sign_ins_total{method=\"password\",outcome=\"success\"} 1",
        "adieu_tokens_issued_total{grant_type=\"authorization_code\"} 1",
        "adieu_http_requests_total{route=\"/token\",method=\"POST\",status=\"200\"} 1",
        "adieu_http_requests_total{route=\"/login\",method=\"POST\",status=\"401\"} 1",
        "adieu_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "adieu_http_request_duration_seconds_count{route=\"/token\"} 1",
        "adieu_sessions_open 1",
        &format!("adieu_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
    }
    assert!(!text.contains("page-123"), "raw paths never become labels");
    assert!(text.lines().any(|l| l.starts_with("process_resident_memory_bytes ")), "{text}");
}

/// Proves: a path no route serves answers a styled 404 page with a way back (not an empty body),
/// and JSON under `/api/`.
#[tokio::test]
async fn unknown_paths_answer_a_page_with_a_way_back_and_json_under_the_api() {
    let w = world().await;
    let res = reqwest::get(w.op.url("/no/such/page")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = res.text().await.unwrap();
    assert!(page.contains("<h1>Page not found</h1>") && page.contains("Go to the start page"), "{page}");
    let res = reqwest::get(w.op.url("/api/v1/no-such-thing")).await.unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error_description"], "no such endpoint", "{body}");
}

/// Proves: an error page gives a reference to quote, new for each page shown.
#[tokio::test]
async fn error_pages_give_a_reference_to_quote() {
    let w = world().await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let res = reqwest::get(w.op.url("/authorize")).await.unwrap();
        assert_eq!(res.status(), 400);
        let page = res.text().await.unwrap();
        let reference = page
            .split("the reference <strong>")
            .nth(1)
            .and_then(|r| r.split("</strong>").next())
            .unwrap_or_else(|| panic!("no reference on {page}"))
            .to_owned();
        assert_eq!(reference.chars().count(), 8, "{reference}");
        seen.push(reference);
    }
    assert_ne!(seen[0], seen[1]);
}

/// Proves: `[pages]` brands every page, error pages included: the product name in the title and
/// footer, the accent colour, and a logo served by the provider itself.
#[tokio::test]
async fn pages_carry_the_configured_brand_and_logo() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(&logo, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
    let op = adieu_testkit::TestOp::start_with(|s| {
        s.pages.product_name = "Example ID".into();
        s.pages.accent_color = "#0b5f3a".into();
        s.pages.logo_file = Some(logo.clone());
    })
    .await
    .unwrap();
    for path in ["/", "/authorize", "/no/such/page"] {
        let page = reqwest::get(op.url(path)).await.unwrap().text().await.unwrap();
        assert!(page.contains("<footer>Example ID</footer>") && page.contains("background: #0b5f3a"), "{path}: {page}");
        assert!(page.contains("class=\"logo\" src=\"&#x2f;branding&#x2f;logo\" alt=\"Example ID\""), "{path}: {page}");
        assert!(!page.contains("<footer>adieu</footer>"), "{path}");
    }
    let res = reqwest::get(op.url("/branding/logo")).await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["content-type"].to_str().unwrap()), (200, "image/svg+xml"));
    assert!(res.text().await.unwrap().starts_with("<svg"));
}
