//! The whole journey a user takes, over real HTTP.

use crate::support::*;
use adieu_core::id::SessionId;
use adieu_testkit::{Browser, location, query_param};

/// Proves: sign in with a cookie-carrying client, code exchange, an ID token that an independent
/// verifier accepts against the JWKS, userinfo, refresh, a second client in the same session gets
/// a new `sid` for the same session without signing in again, RP-initiated logout redirects with
/// `state`, and afterwards `prompt=none` answers `login_required` and the old tokens are dead.
#[tokio::test]
async fn full_flow_sign_in_tokens_second_client_and_rp_logout() {
    let w = world().await;
    let browser = Browser::new();
    let (verifier, challenge) = adieu_testkit::pkce_pair();

    // Sign in and get tokens for app A.
    let code =
        get_code(&browser, &w.op, &w.a, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
    let tokens = exchange(&w.op, &w.a, &code, &[("code_verifier", &verifier)]).await;
    assert_eq!(tokens["token_type"], "Bearer");
    let id_a = verify_id_token(&w.op, tokens["id_token"].as_str().unwrap(), "app-a").await;
    for claim in ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash"] {
        assert!(id_a.get(claim).is_some(), "ID token lacks {claim}: {id_a}");
    }
    assert_eq!(id_a["nonce"], "n-456");
    assert_eq!(id_a["iss"], w.op.issuer.as_str());
    let sid_a = id_a["sid"].as_str().unwrap().to_owned();

    // Userinfo.
    let (status, info) = userinfo(&w.op, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(info["sub"], id_a["sub"]);
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["email"], "alice@example.com");

    // Refresh: new tokens, same sid, no nonce.
    let refreshed = exchange_refresh(&w, tokens["refresh_token"].as_str().unwrap()).await;
    let id_a2 = verify_id_token(&w.op, refreshed["id_token"].as_str().unwrap(), "app-a").await;
    assert_eq!(id_a2["sid"], sid_a.as_str());
    assert!(id_a2.get("nonce").is_none());
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);

    // App B in the same browser: no login form, a different sid, the same OP session.
    let loc = browser.authorize(&w.op, &auth_params(&w.b, &[]), "nobody", "wrong").await.unwrap();
    let code_b = query_param(&loc, "code").expect("SSO: code without signing in again");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(w.op.issuer.as_str()));
    let tokens_b = exchange(&w.op, &w.b, &code_b, &[]).await;
    let id_b = verify_id_token(&w.op, tokens_b["id_token"].as_str().unwrap(), "app-b").await;
    let sid_b = id_b["sid"].as_str().unwrap();
    assert_ne!(sid_b, sid_a, "sid is per client");
    let store = &w.op.state.store;
    let pa = store.participation_by_sid(&adieu_core::Sid::new(sid_a.clone())).await.unwrap().unwrap();
    let pb = store.participation_by_sid(&adieu_core::Sid::new(sid_b)).await.unwrap().unwrap();
    assert_eq!(pa.session_id, pb.session_id, "both clients participate in one OP session");

    // The same client again in the same session keeps its sid (BC-SID-03).
    let code_a3 = get_code(&browser, &w.op, &w.a, &[]).await;
    let id_a3 =
        verify_id_token(&w.op, exchange(&w.op, &w.a, &code_a3, &[]).await["id_token"].as_str().unwrap(), "app-a").await;
    assert_eq!(id_a3["sid"], sid_a.as_str());

    // RP-initiated logout from A with a valid hint: straight redirect with state.
    let bye = format!("{}/bye", w.a.redirect_uri);
    let mut url = url::Url::parse(&w.op.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", tokens["id_token"].as_str().unwrap())
        .append_pair("post_logout_redirect_uri", &bye)
        .append_pair("state", "bye-state");
    let res = browser.http.get(url).send().await.unwrap();
    let loc = location(&res).unwrap();
    assert_eq!(loc, format!("{bye}?state=bye-state"));
    let session = store.session_by_id(&SessionId::new(pa.session_id.to_string())).await.unwrap().unwrap();
    assert_eq!(session.end_reason, Some(adieu_core::Initiator::RpLogout));

    // Afterwards: prompt=none says login_required, tokens of the session are dead.
    let loc = browser.authorize(&w.op, &auth_params(&w.a, &[("prompt", "none")]), "alice", PASSWORD).await.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    let (status, _) = userinfo(&w.op, refreshed["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
    let (status, err) = token_error(
        &w.op,
        &w.a,
        &[("grant_type", "refresh_token"), ("refresh_token", refreshed["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!((status, err.as_str()), (400, "invalid_grant"));
}

async fn exchange_refresh(w: &World, refresh_token: &str) -> serde_json::Value {
    let res = token_request(&w.op, &w.a, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Proves: every supported `id_token_signed_response_alg` yields ID tokens that an independent
/// verifier accepts with that algorithm.
#[tokio::test]
async fn id_tokens_are_signed_with_the_clients_registered_algorithm() {
    use adieu_proto::SigningAlg;
    use adieu_server::client_metadata::ClientRegistration;
    let w = world().await;
    for alg in SigningAlg::ALL {
        let id = format!("app-{alg}");
        let redirect = "http://127.0.0.1:9100/cb".to_owned();
        let (_, secret) =
            w.op.add_client(ClientRegistration {
                client_id: Some(id.clone()),
                name: id.clone(),
                redirect_uris: vec![redirect.clone()],
                id_token_signed_response_alg: alg,
                ..Default::default()
            })
            .await
            .unwrap();
        let client = adieu_testkit::TestClient { id: id.clone(), secret, redirect_uri: redirect };
        let browser = Browser::new();
        let code = get_code(&browser, &w.op, &client, &[]).await;
        let tokens = exchange(&w.op, &client, &code, &[]).await;
        let token = tokens["id_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg.as_str());
        verify_id_token(&w.op, token, &id).await;
    }
}

/// Proves: discovery lists what the provider supports (BC-OP-01..03, RPI-01) and the JWKS carries
/// only public keys, each with a `kid`.
#[tokio::test]
async fn discovery_and_jwks_describe_the_provider() {
    let w = world().await;
    let d: serde_json::Value =
        reqwest::get(w.op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["issuer"], w.op.issuer.as_str());
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);
    assert_eq!(d["end_session_endpoint"], w.op.url("/logout"));
    assert_eq!(d["id_token_signing_alg_values_supported"][0], "RS256");
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    let jwks: serde_json::Value = reqwest::get(w.op.url("/jwks")).await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert!(algs.contains(&"RS256") && algs.contains(&"ES256") && algs.contains(&"EdDSA"), "{algs:?}");
    for k in keys {
        assert!(k["kid"].is_string());
        assert!(k.get("d").is_none(), "private key material published");
    }
}
