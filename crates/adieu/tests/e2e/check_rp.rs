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
