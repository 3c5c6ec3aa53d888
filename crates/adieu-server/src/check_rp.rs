//! `adieu check-rp CLIENT_ID` and `POST /api/v1/clients/{id}/check`: tests a registered
//! application's back-channel logout endpoint from the provider's side with the probes of
//! [`adieu_core::rp_check`], signed with the provider's real key for that client and sent through
//! the outbound address policy, like a delivery. No probe names a real session: the subject and
//! session ids are random and marked `adieu-check-…`.

use crate::AppState;
use crate::crypto::random_id;
use crate::delivery::outbound::Outbound;
use adieu_core::client::Client;
use adieu_core::id::ClientId;
use adieu_core::rp_check::{Answer, Probe, Verdict, judge};
use adieu_proto::logout::{LOGOUT_TOKEN_TYP, logout_events};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;
use serde_json::{Value, json};

/// The outcome of one probe, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// The probe (`valid`, `alg-none`, …).
    pub probe: Probe,
    /// What was sent.
    pub sent: &'static str,
    /// What the application answered (`HTTP 400`, or why there was no answer).
    pub answered: String,
    /// What the specification requires.
    pub requires: &'static str,
    /// `pass`, `warn` or `fail`.
    pub verdict: Verdict,
    /// Why it is not a plain pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// What to change in the application (not for a pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<&'static str>,
}

/// A whole check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The client checked.
    pub client_id: String,
    /// Its back-channel logout URI.
    pub backchannel_logout_uri: String,
    /// How many probes passed, warned and failed.
    pub passed: usize,
    /// Warnings.
    pub warnings: usize,
    /// Failures.
    pub failed: usize,
    /// Each probe, in the order sent.
    pub results: Vec<ProbeResult>,
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No such client.
    #[error("no client {0}")]
    UnknownClient(String),
    /// The client has no back-channel logout URI.
    #[error("client {0} has no backchannel_logout_uri to check")]
    NoUri(String),
    /// Storage, keys or the HTTP client failed.
    #[error("{0}")]
    Internal(String),
}

/// Runs every probe against `client_id`'s endpoint.
pub async fn check(state: &AppState, client_id: &str) -> Result<CheckReport, CheckError> {
    let internal = |e: &dyn std::fmt::Display| CheckError::Internal(e.to_string());
    let client = state
        .store
        .client_by_id(&ClientId::new(client_id))
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| CheckError::UnknownClient(client_id.to_owned()))?;
    let uri = client.backchannel_logout_uri.clone().ok_or_else(|| CheckError::NoUri(client_id.to_owned()))?;
    let outbound = state.outbound().map_err(|e| internal(&e))?;
    let mut results = Vec::new();
    for probe in Probe::ALL {
        let answer = send(&outbound, &uri, &request(state, &client, probe).map_err(|e| internal(&e))?).await;
        let (verdict, note) = judge(probe, &answer);
        let answered = match &answer {
            Answer::Status { code, .. } => format!("HTTP {code}"),
            Answer::Failed(why) => why.clone(),
        };
        let fix = (verdict != Verdict::Pass).then(|| probe.fix());
        results.push(ProbeResult {
            probe,
            sent: probe.sent(),
            answered,
            requires: probe.requires(),
            verdict,
            note,
            fix,
        });
    }
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    Ok(CheckReport {
        client_id: client.id.to_string(),
        backchannel_logout_uri: uri,
        passed: count(Verdict::Pass),
        warnings: count(Verdict::Warn),
        failed: count(Verdict::Fail),
        results,
    })
}

/// One request to send.
enum Request {
    /// A form POST with this logout token.
    Form(String),
    /// A POST of this body as JSON.
    Json(String),
    /// A GET.
    Get,
    /// A form POST of this many bytes.
    Big(usize),
}

/// The claims of a valid logout token for a session nobody has.
fn valid_claims(state: &AppState, client: &Client) -> serde_json::Map<String, Value> {
    let iat = state.clock.now().as_secs();
    let claims = json!({
        "iss": &*state.issuer, "aud": client.id.as_str(), "iat": iat, "exp": iat + 120, "jti": random_id(),
        "events": logout_events(), "sub": format!("adieu-check-{}", random_id()),
        "sid": format!("adieu-check-{}", random_id()), "initiator": "rp-logout",
    });
    match claims {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

fn request(state: &AppState, client: &Client, probe: Probe) -> Result<Request, crate::keys::KeyError> {
    let mut c = valid_claims(state, client);
    let now = state.clock.now();
    let alg = client.id_token_signed_response_alg;
    let sign = |c: &serde_json::Map<String, Value>| state.keys.sign(alg, LOGOUT_TOKEN_TYP, c, now);
    match probe {
        Probe::Valid => return Ok(Request::Form(sign(&c)?)),
        Probe::Get => return Ok(Request::Get),
        Probe::Oversized => return Ok(Request::Big(1024 * 1024)),
        Probe::WrongContentType => return Ok(Request::Json(json!({ "logout_token": sign(&c)? }).to_string())),
        Probe::AlgNone => {
            let header = B64.encode(json!({ "alg": "none", "typ": LOGOUT_TOKEN_TYP }).to_string());
            return Ok(Request::Form(format!("{header}.{}.", B64.encode(Value::Object(c).to_string()))));
        }
        Probe::BadSignature => {
            let token = sign(&c)?;
            let (body, sig) = token.rsplit_once('.').unwrap_or((&token, ""));
            let mut bytes = B64.decode(sig).unwrap_or_default();
            if let Some(b) = bytes.first_mut() {
                *b ^= 0x01;
            }
            return Ok(Request::Form(format!("{body}.{}", B64.encode(bytes))));
        }
        Probe::UnknownKid => {
            let kid = format!("adieu-check-unknown-{}", random_id());
            return Ok(Request::Form(state.keys.sign_under(alg, LOGOUT_TOKEN_TYP, Some(&kid), &c, now)?));
        }
        Probe::Hs256WithPublicKey => return Ok(Request::Form(hs256_with_public_key(state, client, &c))),
        Probe::WrongAudience => c.insert("aud".into(), json!("adieu-check-another-client")),
        Probe::WrongIssuer => c.insert("iss".into(), json!("https://adieu-check.invalid")),
        Probe::Expired => {
            let past = now.as_secs() - 3600;
            c.insert("iat".into(), json!(past - 120));
            c.insert("exp".into(), json!(past))
        }
        Probe::NoExp => c.remove("exp"),
        Probe::NoEvents => c.remove("events"),
        Probe::WrongEvent => c.insert("events".into(), json!({ "http://schemas.openid.net/event/adieu-check": {} })),
        Probe::WithNonce => c.insert("nonce".into(), json!(random_id())),
        Probe::NoSubNoSid => c.remove("sub").and(c.remove("sid")),
    };
    Ok(Request::Form(sign(&c)?))
}

/// HS256 over the token, keyed with the text of the provider's public JWK for the client's
/// algorithm: what a library that lets the token pick its algorithm would accept.
fn hs256_with_public_key(state: &AppState, client: &Client, c: &serde_json::Map<String, Value>) -> String {
    let alg = client.id_token_signed_response_alg;
    let kid = state.keys.signer_kid(alg, state.clock.now()).unwrap_or_default();
    let jwks = state.keys.jwks();
    let jwk = jwks["keys"].as_array().and_then(|ks| ks.iter().find(|k| k["kid"] == kid.as_str())).cloned();
    let header = B64.encode(json!({ "alg": "HS256", "typ": LOGOUT_TOKEN_TYP, "kid": kid }).to_string());
    let input = format!("{header}.{}", B64.encode(Value::Object(c.clone()).to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwk.unwrap_or_default().to_string().as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

async fn send(outbound: &Outbound, uri: &str, req: &Request) -> Answer {
    let form =
        |token: &str| url::form_urlencoded::Serializer::new(String::new()).append_pair("logout_token", token).finish();
    let (method, content_type, body) = match req {
        Request::Form(t) => (reqwest::Method::POST, Some("application/x-www-form-urlencoded"), form(t)),
        Request::Json(b) => (reqwest::Method::POST, Some("application/json"), b.clone()),
        Request::Get => (reqwest::Method::GET, None, String::new()),
        Request::Big(n) => (reqwest::Method::POST, Some("application/x-www-form-urlencoded"), form(&"x".repeat(*n))),
    };
    let mut builder = match outbound.request(method, uri) {
        Ok(b) => b,
        Err(why) => return Answer::Failed(why),
    };
    if let Some(ct) = content_type {
        builder = builder.header(reqwest::header::CONTENT_TYPE, ct).body(body);
    }
    match builder.send().await {
        Ok(res) => {
            let no_store = res
                .headers()
                .get_all(reqwest::header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.to_ascii_lowercase().contains("no-store"));
            Answer::Status { code: res.status().as_u16(), no_store }
        }
        Err(e) => Answer::Failed(Outbound::describe_error(&e)),
    }
}
