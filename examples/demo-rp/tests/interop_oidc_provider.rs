//! Interoperability: the demo application (and so `adieu-rp`) against a provider we did not write,
//! panva's `oidc-provider` for Node.js (`tests/interop/op.mjs`, version pinned in its lockfile).
//!
//! A cookie-keeping HTTP client plays the browser: it signs in at the demo application through
//! oidc-provider's own login and consent forms. Then a second client, holding only oidc-provider's
//! cookies, signs out at oidc-provider. oidc-provider POSTs a logout token to the demo application's
//! back-channel endpoint; the browser's demo application session must end because `adieu-rp`
//! verified that token, since nothing else touched it.
//!
//! Needs Node.js and npm. Without them the test is skipped, or fails when `ADIEU_REQUIRE_INTEROP=1`
//! (CI sets it).

use adieu_testkit::interop;
use reqwest::Url;
use reqwest::cookie::{CookieStore, Jar};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Child;

const CLIENT_ID: &str = "demo-rp";
const CLIENT_SECRET: &str = "demo-rp-interop-secret";
const USER: &str = "alice";

/// Lines written by a process or by the demo application's tracing, shown if the test fails.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The demo application's tracing output, one `Log` line per event.
#[derive(Debug, Clone)]
struct TraceWriter(Log);

impl std::io::Write for TraceWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in String::from_utf8_lossy(buf).lines() {
            self.0.push(line.to_owned());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Owns oidc-provider's process (killed when dropped, also when the test panics) and prints what
/// both sides logged if the test fails.
#[derive(Debug)]
struct Harness {
    _op: Child,
    op_log: Log,
    rp_log: Log,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- oidc-provider output ----");
            for l in self.op_log.lines() {
                eprintln!("{l}");
            }
            eprintln!("---- demo-rp log ----");
            for l in self.rp_log.lines() {
                eprintln!("{l}");
            }
        }
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (Url, String) {
    let res = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let final_url = res.url().clone();
    let status = res.status();
    let body = res.text().await.expect("body");
    assert!(status.is_success(), "GET {url} ended at {final_url} with {status}:\n{body}");
    (final_url, body)
}

/// The demo application's home page (the browser's view), and whether it shows `USER` signed in.
async fn signed_in(browser: &reqwest::Client, rp_base: &str) -> (bool, String) {
    let (_, body) = get(browser, &format!("{rp_base}/")).await;
    let signed_in = body.contains(&format!("<strong id=user>{USER}</strong>"));
    assert!(signed_in != body.contains("id=signed-out"), "neither signed in nor out:\n{body}");
    (signed_in, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_back_channel_logout_ends_the_demo_session() {
    let required = std::env::var("ADIEU_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let (Some(node), Some(npm)) = (interop::tool_version("node"), interop::tool_version("npm")) else {
        assert!(!required, "ADIEU_REQUIRE_INTEROP=1 but node or npm is not on PATH");
        // Written to the stderr handle, not with eprintln!, which the test harness captures and
        // shows only for failing tests: a skip must be seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "!!!! SKIPPED interop_oidc_provider: node or npm is not on PATH (set ADIEU_REQUIRE_INTEROP=1 to fail)"
        );
        return;
    };
    eprintln!("interop with oidc-provider: node {node}, npm {npm}");
    let started = Instant::now();
    interop::ensure_node_modules();

    // The demo application's tracing is where `adieu-rp` reports what it did with a logout token.
    let rp_log = Log::default();
    let writer = TraceWriter(rp_log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("adieu_rp=info,demo_rp=info"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only tracing subscriber of this test binary");

    // The demo application's port comes first: oidc-provider registers the client with its redirect
    // and back-channel URIs, and the demo application discovers the provider only once it runs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the demo RP");
    let rp_base = format!("http://{}", listener.local_addr().expect("local addr"));
    let op_log = Log::default();
    let (op, issuer) = interop::start_op(&rp_base, CLIENT_ID, CLIENT_SECRET, op_log.0.clone()).await;
    let harness = Harness { _op: op, op_log: op_log.clone(), rp_log: rp_log.clone() };

    let config = demo_rp::DemoConfig {
        issuer: issuer.clone(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        base_url: rp_base.clone(),
        name: "Interop app".to_owned(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rp = tokio::spawn(async move {
        let served = demo_rp::serve(config, listener, async {
            let _ = stop_rx.await;
        })
        .await;
        // A failed discovery would otherwise only show as requests that time out.
        if let Err(e) = &served {
            tracing::error!(error = format!("{e:#}"), "the demo RP stopped");
        }
        served
    });

    // The browser: all cookies of both sides (cookies ignore ports, so they share one jar here).
    let jar = Arc::new(Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");

    assert!(!signed_in(&browser, &rp_base).await.0, "signed in before signing in");

    // Sign in: the demo application's /login redirects to oidc-provider, whose dev interactions ask
    // for a login and then for consent; each answer redirects on until the demo application's page.
    let op_url = Url::parse(&issuer).expect("issuer URL");
    let (mut url, mut body) = get(&browser, &format!("{rp_base}/login")).await;
    let mut prompts = Vec::new();
    while url.origin() == op_url.origin() {
        assert!(prompts.len() < 4, "oidc-provider keeps asking: {prompts:?}\n{body}");
        let (prompt, fields): (&str, &[(&str, &str)]) = if body.contains(r#"name="prompt" value="login""#) {
            ("login", &[("login", USER), ("password", "any password is accepted")])
        } else if body.contains(r#"name="prompt" value="consent""#) {
            ("consent", &[])
        } else {
            panic!("unexpected oidc-provider page at {url}:\n{body}");
        };
        prompts.push(prompt);
        let (action, mut form_fields) = interop::form(&url, &body, &format!(r#"value="{prompt}""#));
        form_fields.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let res = browser.post(action.clone()).form(&form_fields).send().await.expect("submit the form");
        url = res.url().clone();
        let status = res.status();
        body = res.text().await.expect("body");
        assert!(status.is_success(), "{prompt} form at {action} ended at {url} with {status}:\n{body}");
    }
    assert_eq!(prompts, ["login", "consent"], "oidc-provider's interactions");
    assert_eq!(url.as_str(), format!("{rp_base}/"), "the callback lands on the profile page:\n{body}");
    let (now_in, page) = signed_in(&browser, &rp_base).await;
    assert!(now_in, "the profile page does not show {USER} signed in:\n{page}");

    // Sign out at oidc-provider with only its cookies: the demo application's session cookie stays in
    // the browser, so only the back-channel logout can end that session.
    let all = jar.cookies(&op_url).expect("oidc-provider set cookies");
    let logout_jar = Arc::new(Jar::default());
    let mut op_cookies = Vec::new();
    for pair in all.to_str().expect("ASCII cookies").split("; ") {
        if !pair.starts_with("demo_") {
            logout_jar.add_cookie_str(&format!("{pair}; Path=/"), &op_url);
            op_cookies.push(pair.split('=').next().unwrap_or_default().to_owned());
        }
    }
    assert!(op_cookies.iter().any(|n| n == "_session"), "no oidc-provider session cookie: {op_cookies:?}");
    let logout_client = reqwest::Client::builder()
        .cookie_provider(logout_jar)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    // RP-Initiated Logout without id_token_hint (the demo application keeps its ID token to itself):
    // client_id and the registered post_logout_redirect_uri, then the confirmation form, whose
    // `logout=yes` ends the whole OP session and notifies every client of it.
    let discovery: serde_json::Value = browser
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("JSON");
    let end_session = discovery["end_session_endpoint"].as_str().expect("an end_session_endpoint");
    let mut end_session = Url::parse(end_session).expect("end_session_endpoint URL");
    end_session
        .query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("post_logout_redirect_uri", &format!("{rp_base}/"))
        .append_pair("state", "interop-state");
    let (confirm_url, confirm_page) = get(&logout_client, end_session.as_str()).await;
    // Only a session oidc-provider recognised gets this page; otherwise it auto-posts a form.
    assert!(confirm_page.contains("op.logoutForm"), "no logout confirmation page:\n{confirm_page}");
    let (action, mut fields) = interop::form(&confirm_url, &confirm_page, r#"id="op.logoutForm""#);
    assert!(fields.iter().any(|(k, _)| k == "xsrf"), "no xsrf field: {fields:?}");
    fields.push(("logout".to_owned(), "yes".to_owned()));
    let res = logout_client.post(action).form(&fields).send().await.expect("confirm the logout");
    assert_eq!(res.status(), reqwest::StatusCode::SEE_OTHER, "logout confirmation");
    let location = res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(location, format!("{rp_base}/?state=interop-state"), "post-logout redirect");

    // oidc-provider awaits its back-channel requests before answering, but poll with a deadline
    // rather than rely on that, or on when its report line is read from its stdout.
    let reported = |log: &Log| log.lines().iter().any(|l| l.starts_with("OP_BACKCHANNEL="));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (still_in, page) = signed_in(&browser, &rp_base).await;
        if !still_in && reported(&op_log) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "10 s after the logout: signed in {still_in}, oidc-provider reported {}:\n{page}",
            reported(&op_log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Both sides saw the same back-channel logout: oidc-provider got a 2xx for it (it emits
    // `backchannel.success` only then), and adieu-rp verified the token and ended one session.
    let op_lines = op_log.lines();
    let sent: Vec<_> = op_lines.iter().filter(|l| l.starts_with("OP_BACKCHANNEL=")).collect();
    assert_eq!(sent.len(), 1, "oidc-provider's back-channel reports: {sent:?}");
    assert!(sent[0].starts_with(&format!("OP_BACKCHANNEL=success {CLIENT_ID} ")), "{}", sent[0]);
    let rp_lines = rp_log.lines();
    assert!(
        rp_lines.iter().any(|l| l.contains("back-channel logout") && l.contains("sessions=1")),
        "adieu-rp did not report ending one session:\n{}",
        rp_lines.join("\n")
    );
    assert!(!rp_lines.iter().any(|l| l.contains("logout token refused")), "{}", rp_lines.join("\n"));

    // Graceful shutdown waits for open connections, so the clients (and their pools) go first.
    drop((browser, logout_client));
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), rp)
        .await
        .expect("the demo RP stops")
        .expect("demo RP task")
        .expect("demo RP");
    drop(harness);
    eprintln!("interop with oidc-provider passed in {:.1} s", started.elapsed().as_secs_f64());
}
