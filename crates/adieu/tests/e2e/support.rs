//! Helpers shared by the end-to-end tests.

use adieu_testkit::{Browser, TestClient, TestOp, query_param};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery";

/// A provider with user `alice` and clients `app-a` and `app-b` (confidential, basic auth).
pub struct World {
    pub op: TestOp,
    pub a: TestClient,
    pub b: TestClient,
}

pub async fn world() -> World {
    let op = TestOp::start().await.unwrap();
    op.add_user("alice", Some("alice@example.com"), PASSWORD).await.unwrap();
    let a = op.add_simple_client("app-a", "http://127.0.0.1:9001/cb").await.unwrap();
    let b = op.add_simple_client("app-b", "http://127.0.0.1:9002/cb").await.unwrap();
    World { op, a, b }
}

/// Authorization request parameters for `client` with a nonce and state.
pub fn auth_params<'a>(client: &'a TestClient, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("client_id", client.id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("response_type", "code"),
        ("scope", "openid profile email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
    ];
    for (k, v) in extra {
        match p.iter_mut().find(|(pk, _)| pk == k) {
            Some(slot) => slot.1 = v,
            None => p.push((k, v)),
        }
    }
    p
}

/// Signs in (if needed) and returns the code sent to the client.
pub async fn get_code(browser: &Browser, op: &TestOp, client: &TestClient, extra: &[(&str, &str)]) -> String {
    let loc = browser.authorize(op, &auth_params(client, extra), "alice", PASSWORD).await.unwrap();
    assert!(loc.starts_with(&client.redirect_uri), "redirected to {loc}");
    query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"))
}

/// POSTs to the token endpoint with client_secret_basic.
pub async fn token_request(op: &TestOp, client: &TestClient, form: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Exchanges a code; panics unless it succeeds.
pub async fn exchange(op: &TestOp, client: &TestClient, code: &str, extra: &[(&str, &str)]) -> Value {
    let mut form =
        vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", client.redirect_uri.as_str())];
    form.extend_from_slice(extra);
    let res = token_request(op, client, &form).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "token endpoint: {body}");
    body
}

/// Exchanges and expects an OAuth error; returns (status, error code).
pub async fn token_error(op: &TestOp, client: &TestClient, form: &[(&str, &str)]) -> (u16, String) {
    let res = token_request(op, client, form).await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

/// Verifies an ID token with an independent verifier (jsonwebtoken + the published JWKS) and
/// returns its claims.
pub async fn verify_id_token(op: &TestOp, token: &str, audience: &str) -> Value {
    let jwks: JwkSet = reqwest::get(op.url("/jwks")).await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().expect("kid in header")).expect("kid published in JWKS");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[&op.issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap().claims
}

/// The claims of a JWT without verifying it (for tests that tamper).
pub fn peek_claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The userinfo response status and body for an access token.
pub async fn userinfo(op: &TestOp, access_token: &str) -> (u16, Value) {
    let res = reqwest::Client::new().get(op.url("/userinfo")).bearer_auth(access_token).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Whether `browser` is signed in at the provider (its session is active).
pub async fn signed_in(browser: &Browser, op: &TestOp) -> bool {
    let html = browser.get(&op.issuer, "/").await.unwrap().text().await.unwrap();
    html.contains("You are signed in as")
}

/// A management API call: the status and the JSON body (`null` when there is none).
pub async fn api(
    op: &TestOp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, op.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Verifies a logout token as an RP would (BC-RP-02..07) with jsonwebtoken and the JWKS.
pub async fn verify_logout_token(op: &TestOp, token: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"), "BC-LT-05");
    let jwks: JwkSet = reqwest::get(op.url("/jwks")).await.unwrap().json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("published key");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[&op.issuer]);
    v.set_audience(&[client_id]);
    v.set_required_spec_claims(&["iss", "aud", "exp", "iat"]);
    v.validate_exp = false; // the provider's clock is a test clock
    let claims: Value = jsonwebtoken::decode(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap().claims;
    assert_eq!(claims["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}), "BC-RP-06");
    assert!(claims.get("nonce").is_none(), "BC-RP-07");
    claims
}
