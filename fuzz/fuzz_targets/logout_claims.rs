//! Fuzzes the claims half of logout token verification: the input is signed (so the claims are
//! always reached), and whatever `verify` accepts must also be valid under a plain reading of
//! the same JSON with `serde_json::Value` (iss, aud, iat, exp, jti, sub/sid, events, nonce;
//! BC-RP-04..07). No input may panic.
#![no_main]

use adieu_rp::verify::{LogoutSubject, VerificationPolicy, verify};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

const ISS: &str = "https://op.example.com";
const AUD: &str = "my-client";
const NOW: i64 = 1_800_000_000;
const LEEWAY: i64 = 60;
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

struct Rig {
    key: Ed25519KeyPair,
    keys: jsonwebtoken::jwk::JwkSet,
    policy: VerificationPolicy,
    header: String,
}

static RIG: OnceLock<Rig> = OnceLock::new();

fn rig() -> &'static Rig {
    RIG.get_or_init(|| {
        adieu_rp::install_crypto();
        let key = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("fixed seed");
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": B64.encode(key.public_key().as_ref())});
        let keys = jsonwebtoken::jwk::JwkSet { keys: vec![serde_json::from_value(jwk).expect("jwk")] };
        let policy = VerificationPolicy::new(ISS, AUD)
            .with_algorithms(&[jsonwebtoken::Algorithm::EdDSA])
            .expect("asymmetric");
        let header = B64.encode(r#"{"alg":"EdDSA","kid":"k","typ":"logout+jwt"}"#);
        Rig { key, keys, policy, header }
    })
}

fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
}

fn non_empty(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let rig = rig();
    let input = format!("{}.{}", rig.header, B64.encode(data));
    let token = format!("{input}.{}", B64.encode(rig.key.sign(input.as_bytes()).as_ref()));
    let Ok(verified) = verify(&token, &rig.keys, &rig.policy, NOW) else { return };

    // Accepted: the plain reading must agree on every rule.
    let claims: Value = serde_json::from_slice(data).expect("accepted claims are JSON");
    let c = claims.as_object().expect("accepted claims are an object");
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISS), "iss");
    match c.get("aud") {
        Some(Value::String(a)) => assert_eq!(a, AUD, "aud"),
        Some(Value::Array(v)) => assert!(!v.is_empty() && v.iter().all(|a| a.as_str() == Some(AUD)), "aud {v:?}"),
        other => panic!("aud {other:?}"),
    }
    let iat = c.get("iat").and_then(numeric_date).expect("iat");
    assert!(iat <= NOW + LEEWAY, "iat");
    let exp = c.get("exp").and_then(numeric_date).expect("exp (required)");
    assert!(NOW <= exp + LEEWAY, "exp");
    assert_eq!((verified.issued_at(), verified.expires_at()), (iat, Some(exp)));
    assert_eq!(non_empty(c.get("jti")), Some(verified.jti()), "jti");
    let (sub, sid) = (non_empty(c.get("sub")), non_empty(c.get("sid")));
    match verified.subject() {
        LogoutSubject::Both { sub: s, sid: i } => assert_eq!((sub, sid), (Some(s.as_str()), Some(i.as_str()))),
        LogoutSubject::Sub(s) => assert_eq!((sub, sid), (Some(s.as_str()), None)),
        LogoutSubject::Sid(i) => assert_eq!((sub, sid), (None, Some(i.as_str()))),
    }
    let event = c.get("events").and_then(Value::as_object).and_then(|e| e.get(EVENT));
    assert!(matches!(event, Some(Value::Object(_))), "events");
    assert!(!c.contains_key("nonce"), "nonce");
    assert_eq!(verified.claims(), c, "claims() is the whole claims set");
});
