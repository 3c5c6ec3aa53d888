//! `adieu check-rp` and `POST /api/v1/clients/{id}/check` over real HTTP: against the demo
//! application (built on `adieu-rp`: every probe as the specification requires), against a
//! deliberately broken application (each defect reported), and the API's refusals. The check
//! against an application we did not write (express-openid-connect) is in `check_rp_interop.rs`.

use crate::support::*;
use adieu_core::initiator::InitiatorSubscription;
use adieu_server::settings::Secret;
use adieu_testkit::TestOp;
use axum::routing::any;
use reqwest::Method;
use serde_json::Value;

pub(crate) const ADMIN: &str = "admin-token-for-check-rp-tests-0123456789";

pub(crate) async fn op() -> TestOp {
    TestOp::start_with(|s| s.admin_token = Some(Secret(ADMIN.into()))).await.unwrap()
}

/// The verdict of each probe in a report, by probe name.
pub(crate) fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {report}"))
        .iter()
        .map(|r| (r["probe"].as_str().unwrap().to_owned(), r["verdict"].as_str().unwrap().to_owned()))
        .collect()
}

/// Proves: the demo application (adieu-rp's handler) answers every probe as Back-Channel Logout
/// requires: 200 with no-store for the valid token, 400 for each invalid one, a refusal for each
/// malformed request; and it kept no session (none of the tokens named one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_application_passes_every_probe() {
    let op = op().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let client = op
        .add_bc_client(
            "demo",
            &format!("{base}/callback"),
            &format!("{base}/backchannel-logout"),
            InitiatorSubscription::default(),
        )
        .await
        .unwrap();
    let cfg = demo_rp::DemoConfig {
        issuer: op.issuer.clone(),
        client_id: client.id.clone(),
        client_secret: client.secret.clone().unwrap(),
        base_url: base.clone(),
        name: "Demo".into(),
    };
    let app = tokio::spawn(demo_rp::serve(cfg, listener, std::future::pending()));
    let (status, report) = api(&op, Method::POST, "/api/v1/clients/demo/check", Some(ADMIN), None).await;
    app.abort();
    assert_eq!(status, 200, "{report}");
    let bad: Vec<_> = verdicts(&report).into_iter().filter(|(_, v)| v != "pass").collect();
    assert!(bad.is_empty(), "every probe passes against adieu-rp: {bad:?}\n{report:#}");
    assert_eq!((report["passed"].as_u64(), report["failed"].as_u64()), (Some(16), Some(0)));
}

/// Proves: an application that answers 200 to everything is reported probe by probe: each
/// invalid token and each malformed request is a failure with what to fix, and the valid token a
/// warning for the missing `Cache-Control: no-store`; one that answers 500 fails every probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_application_is_reported_defect_by_defect() {
    let op = op().await;
    for (id, status) in [("accepts-all", 200u16), ("crashes", 500)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let code = axum::http::StatusCode::from_u16(status).unwrap();
        let app = axum::Router::new().route("/bc", any(move || async move { code }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let sub = InitiatorSubscription::default();
        op.add_bc_client(id, &format!("{base}/cb"), &format!("{base}/bc"), sub).await.unwrap();
        let (code, report) = api(&op, Method::POST, &format!("/api/v1/clients/{id}/check"), Some(ADMIN), None).await;
        server.abort();
        assert_eq!(code, 200, "{report}");
        for (probe, verdict) in verdicts(&report) {
            let expected = match (status, probe.as_str()) {
                (200, "valid") => "warn",
                _ => "fail",
            };
            assert_eq!(verdict, expected, "{id}: {probe}\n{report:#}");
        }
        let alg_none = report["results"].as_array().unwrap().iter().find(|r| r["probe"] == "alg-none").unwrap();
        assert!(alg_none["fix"].as_str().unwrap().contains("asymmetric"), "{alg_none}");
        assert!(alg_none["requires"].as_str().unwrap().contains("400"), "{alg_none}");
    }
}

/// Proves: the check needs the admin token, a known client and a back-channel logout URI.
#[tokio::test]
async fn the_check_is_refused_without_admin_a_client_or_a_uri() {
    let op = op().await;
    op.add_simple_client("no-uri", "http://127.0.0.1:9601/cb").await.unwrap();
    assert_eq!(api(&op, Method::POST, "/api/v1/clients/no-uri/check", None, None).await.0, 401);
    assert_eq!(api(&op, Method::POST, "/api/v1/clients/nobody/check", Some(ADMIN), None).await.0, 404);
    let (status, err) = api(&op, Method::POST, "/api/v1/clients/no-uri/check", Some(ADMIN), None).await;
    assert_eq!(status, 409, "{err}");
}

/// Proves: `adieu check-rp` prints one line per probe with its verdict and what to fix, gives the
/// report as JSON with `--json`, and exits with an error when a probe failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reports_each_probe_and_fails_when_one_fails() {
    use crate::binary::run;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/bc", any(|| async { axum::http::StatusCode::OK }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let (cb, bc) = (format!("{base}/cb"), format!("{base}/bc"));
    let add = ["client", "add", "--name", "Broken", "--client-id", "broken", "--redirect-uri", &cb];
    let (ok, _, err) = run(dir.path(), &[&add[..], &["--backchannel-logout-uri", &bc]].concat(), None).await;
    assert!(ok, "{err}");
    let (ok, out, err) = run(dir.path(), &["check-rp", "broken"], None).await;
    assert!(!ok && err.contains("15 of 16 probes failed"), "{out}\n{err}");
    assert!(out.lines().any(|l| l.starts_with("FAIL  alg-none") && l.contains("requires 400")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("WARN  valid")), "{out}");
    assert!(out.contains("fix: Accept only the provider's asymmetric algorithms"), "{out}");
    let (_, out, _) = run(dir.path(), &["check-rp", "broken", "--json"], None).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((report["failed"].as_u64(), report["warnings"].as_u64()), (Some(15), Some(1)), "{report}");
    server.abort();
}

/// Proves, against an application we did not write (express with auth0's express-openid-connect
/// from npm, `tests/interop/express_rp.mjs`): the check runs, says that it accepts a logout token
/// without `exp` (a failure, with the fix), that it answers a valid token with 204 rather than 200
/// (a warning), and that it refuses `alg: none` and a wrong audience as required. Skipped without
/// Node.js and npm, a failure when `ADIEU_REQUIRE_INTEROP=1` (CI sets it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_openid_connect_is_reported_to_accept_a_token_without_exp() {
    use adieu_testkit::interop;
    use tokio::io::AsyncBufReadExt;
    let required = std::env::var("ADIEU_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    if interop::tool_version("node").is_none() || interop::tool_version("npm").is_none() {
        assert!(!required, "ADIEU_REQUIRE_INTEROP=1 but node or npm is not on PATH");
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "!!!! SKIPPED express-openid-connect check: node or npm is not on PATH");
        return;
    }
    interop::ensure_node_modules();
    let op = op().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let sub = InitiatorSubscription::default();
    let client = op
        .add_bc_client("express", &format!("{base}/callback"), &format!("{base}/backchannel-logout"), sub)
        .await
        .unwrap();
    let mut child = tokio::process::Command::new("node")
        .arg("express_rp.mjs")
        .args(["--port", &port.to_string(), "--issuer", &op.issuer, "--client-id", &client.id])
        .args(["--client-secret", client.secret.as_deref().unwrap()])
        .current_dir(interop::dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with("RP_READY") {
                return true;
            }
        }
        false
    });
    assert!(ready.await.unwrap_or(false), "express_rp.mjs did not start");
    let (status, report) = api(&op, Method::POST, "/api/v1/clients/express/check", Some(ADMIN), None).await;
    assert_eq!(status, 200, "{report}");
    eprintln!(
        "express-openid-connect: {}",
        verdicts(&report).iter().map(|(p, v)| format!("{p}={v}")).collect::<Vec<_>>().join(" ")
    );
    let of = |probe: &str| report["results"].as_array().unwrap().iter().find(|r| r["probe"] == probe).unwrap().clone();
    let no_exp = of("no-exp");
    assert_eq!(
        (no_exp["verdict"].as_str(), no_exp["answered"].as_str()),
        (Some("fail"), Some("HTTP 204")),
        "{report:#}"
    );
    assert!(no_exp["fix"].as_str().unwrap().contains("Require exp"), "{no_exp}");
    assert_eq!(of("valid")["verdict"], "warn", "204, not 200: {report:#}");
    for probe in ["alg-none", "wrong-audience", "bad-signature", "with-nonce"] {
        assert_eq!(of(probe)["verdict"], "pass", "{probe}: {report:#}");
    }
    child.kill().await.ok();
}
