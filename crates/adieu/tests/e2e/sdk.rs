//! The adieu-rp SDK against the real provider: an axum application discovers the provider,
//! fetches its keys over HTTP, records its login in the session index, and is signed out over
//! the back channel when the user signs out of the provider.

use crate::support::*;
use adieu_rp::axum::BackchannelLogout;
use adieu_rp::discovery::{HttpJwks, Provider};
use adieu_rp::index::{LoginRecord, LogoutMarkers, MemorySessionIndex, SessionIndex};
use adieu_rp::keys::KeyCache;
use adieu_rp::verifier::LogoutVerifier;
use adieu_rp::verify::VerificationPolicy;
use adieu_testkit::{Browser, TestOp};
use std::sync::Arc;
use std::time::Duration;

struct RpApp {
    uri: String,
    index: Arc<MemorySessionIndex>,
    markers: Arc<LogoutMarkers>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn rp_app(issuer: &str, client_id: &str, alg: jsonwebtoken::Algorithm) -> RpApp {
    let provider = Provider::discover(issuer).await.unwrap();
    assert!(provider.backchannel_logout_supported && provider.backchannel_logout_session_supported);
    let keys = KeyCache::new(Arc::new(HttpJwks::new(&provider.jwks_uri).unwrap()));
    let policy = VerificationPolicy::new(&provider.issuer, client_id).with_algorithms(&[alg]).unwrap().strict_typ();
    let verifier = Arc::new(
        LogoutVerifier::new(policy, keys).with_replay_cache(Arc::new(adieu_rp::replay::MemoryReplayCache::default())),
    );
    let index = Arc::new(MemorySessionIndex::default());
    let markers = Arc::new(LogoutMarkers::default());
    let endpoint = BackchannelLogout::new(verifier, index.clone(), markers.clone());
    let app = axum::Router::new().route("/backchannel-logout", endpoint.method_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    RpApp { uri: format!("http://127.0.0.1:{port}/backchannel-logout"), index, markers, _stop: tx }
}

/// Proves: for each signing algorithm, the SDK verifies adieu's logout tokens (strict typ, keys
/// by discovery) and ends exactly the application session that belongs to the provider session.
#[tokio::test]
async fn sdk_ends_the_application_session_when_the_provider_session_ends() {
    use adieu_proto::SigningAlg;
    use adieu_server::client_metadata::ClientRegistration;
    let op = TestOp::start().await.unwrap();
    op.add_user("alice", None, PASSWORD).await.unwrap();
    for (alg, jalg) in [
        (SigningAlg::RS256, jsonwebtoken::Algorithm::RS256),
        (SigningAlg::ES256, jsonwebtoken::Algorithm::ES256),
        (SigningAlg::EdDSA, jsonwebtoken::Algorithm::EdDSA),
    ] {
        let id = format!("sdk-{alg}");
        let rp = rp_app(&op.issuer, &id, jalg).await;
        let (_, secret) = op
            .add_client(ClientRegistration {
                client_id: Some(id.clone()),
                name: id.clone(),
                redirect_uris: vec!["http://127.0.0.1:9950/cb".into()],
                backchannel_logout_uri: Some(rp.uri.clone()),
                backchannel_logout_session_required: true,
                id_token_signed_response_alg: alg,
                ..Default::default()
            })
            .await
            .unwrap();
        let client =
            adieu_testkit::TestClient { id: id.clone(), secret, redirect_uri: "http://127.0.0.1:9950/cb".into() };

        // Two browsers, two application sessions.
        let mut hints = Vec::new();
        for (n, browser) in [Browser::new(), Browser::new()].iter().enumerate() {
            let tokens = exchange(&op, &client, &get_code(browser, &op, &client, &[]).await, &[]).await;
            let claims = verify_id_token(&op, tokens["id_token"].as_str().unwrap(), &id).await;
            rp.index
                .record(LoginRecord {
                    issuer: claims["iss"].as_str().unwrap().into(),
                    sub: claims["sub"].as_str().unwrap().into(),
                    sid: claims["sid"].as_str().map(str::to_owned),
                    session_id: format!("app-session-{n}"),
                    created_at: claims["iat"].as_i64().unwrap(),
                })
                .await
                .unwrap();
            hints.push((browser.clone(), tokens["id_token"].as_str().unwrap().to_owned()));
        }
        let (browser, hint) = &hints[0];
        browser.http.get(op.url("/logout")).query(&[("id_token_hint", hint.as_str())]).send().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !rp.markers.is_logged_out("app-session-0") {
            assert!(tokio::time::Instant::now() < deadline, "{alg}: the application session was not ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!rp.markers.is_logged_out("app-session-1"), "{alg}: the other browser's session stays");
    }
}

/// Proves: the one-call setup (`BackchannelLogout::discover`, root re-exports only) verifies
/// adieu's logout tokens with the default policy and ends the application session; replay
/// protection is on without being asked for.
#[tokio::test]
async fn the_one_call_setup_ends_the_application_session() {
    use adieu_rp::{BackchannelLogout, LoginRecord, LogoutMarkers, MemorySessionIndex, SessionIndex};
    let op = TestOp::start().await.unwrap();
    op.add_user("alice", None, PASSWORD).await.unwrap();
    let (index, markers) = (Arc::new(MemorySessionIndex::default()), Arc::new(LogoutMarkers::default()));
    let logout = BackchannelLogout::discover(&op.issuer, "quick", index.clone(), markers.clone()).await.unwrap();
    let app = axum::Router::new().route("/backchannel-logout", logout.method_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/backchannel-logout", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let sub = adieu_core::initiator::InitiatorSubscription::default();
    let client = op.add_bc_client("quick", "http://127.0.0.1:9951/cb", &uri, sub).await.unwrap();
    let browser = Browser::new();
    let tokens = exchange(&op, &client, &get_code(&browser, &op, &client, &[]).await, &[]).await;
    let claims = verify_id_token(&op, tokens["id_token"].as_str().unwrap(), "quick").await;
    let login = LoginRecord {
        issuer: claims["iss"].as_str().unwrap().into(),
        sub: claims["sub"].as_str().unwrap().into(),
        sid: claims["sid"].as_str().map(str::to_owned),
        session_id: "app-session".into(),
        created_at: claims["iat"].as_i64().unwrap(),
    };
    index.record(login).await.unwrap();
    let hint = tokens["id_token"].as_str().unwrap();
    browser.http.get(op.url("/logout")).query(&[("id_token_hint", hint)]).send().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !markers.is_logged_out("app-session") {
        assert!(tokio::time::Instant::now() < deadline, "the application session was not ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.abort();
}
