//! The verification rules, one test per way a token can fail.

use super::*;
use crate::testing::{AUD, ISS, NOW, TestKey, claims, set};
use serde_json::json;

fn install() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

fn policy() -> VerificationPolicy {
    VerificationPolicy::new(ISS, AUD)
}

fn rs() -> (TestKey, JwkSet) {
    install();
    let k = TestKey::rsa("k1");
    let s = set(&[&k]);
    (k, s)
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn without(mut c: Value, k: &str) -> Value {
    c.as_object_mut().unwrap().remove(k);
    c
}

// --- The OpenID conformance suite's back-channel RP plan (SPEC.md §6.2) -------------------

/// Conformance "valid logout token" (no typ header): accepted.
#[test]
fn conformance_valid_token_without_typ_is_accepted() {
    let (k, keys) = rs();
    let t = verify(&k.sign("RS256", json!({}), &claims()), &keys, &policy(), NOW).unwrap();
    assert_eq!(t.subject(), &LogoutSubject::Both { sub: "user-1".into(), sid: "sid-1".into() });
    assert_eq!((t.issuer(), t.jti(), t.issued_at(), t.expires_at()), (ISS, "jti-1", NOW, Some(NOW + 120)));
}

/// Conformance "alg none" (BC-RP-03).
#[test]
fn bc_rp_03_alg_none_is_rejected() {
    let (_, keys) = rs();
    let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims().to_string());
    use base64::Engine;
    assert_eq!(
        verify(&format!("{h}.{p}."), &keys, &policy(), NOW),
        Err(LogoutTokenError::AlgorithmNotAllowed("none".into()))
    );
}

/// Conformance "no event" (BC-RP-06).
#[test]
fn bc_rp_06_missing_event_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &without(claims(), "events"));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingEvent));
}

/// Conformance "with nonce" (BC-RP-07).
#[test]
fn bc_rp_07_nonce_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &with(claims(), "nonce", json!("n")));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::NoncePresent));
}

/// Conformance "wrong alg": a valid signature with a published key, but not the registered alg.
#[test]
fn bc_rp_03_wrong_alg_with_a_published_key_is_rejected() {
    install();
    let (rsa, ec) = (TestKey::rsa("rsa"), TestKey::ec("ec"));
    let keys = set(&[&rsa, &ec]);
    let t = ec.sign("ES256", json!({}), &claims());
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::AlgorithmNotAllowed("ES256".into())));
    let es_policy = policy().with_algorithms(&[Algorithm::ES256]).unwrap();
    verify(&t, &keys, &es_policy, NOW).unwrap();
}

/// Conformance "wrong aud" (BC-RP-04).
#[test]
fn bc_rp_04_wrong_audience_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &with(claims(), "aud", json!("someone-else")));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::WrongAudience));
}

/// Conformance "wrong event": a different event URI (BC-RP-06).
#[test]
fn bc_rp_06_wrong_event_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign(
        "RS256",
        json!({}),
        &with(claims(), "events", json!({"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}})),
    );
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingEvent));
}

/// Conformance "wrong iss" (BC-RP-04).
#[test]
fn bc_rp_04_wrong_issuer_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &with(claims(), "iss", json!("https://op.example.com/")));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::WrongIssuer));
}

// --- Beyond the conformance suite --------------------------------------------------------

#[test]
fn bc_rp_02_bad_signature_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &claims());
    let forged = k.sign("RS256", json!({}), &with(claims(), "sub", json!("admin")));
    let spliced = format!("{}.{}", &forged[..forged.rfind('.').unwrap()], &t[t.rfind('.').unwrap() + 1..]);
    assert_eq!(verify(&spliced, &keys, &policy(), NOW), Err(LogoutTokenError::BadSignature));
}

#[test]
fn bc_rp_02_a_key_not_published_by_the_issuer_is_unknown() {
    let (_, keys) = rs();
    let stranger = TestKey::rsa("k1-stranger");
    let t = stranger.sign("RS256", json!({}), &claims());
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::UnknownKey(Some("k1-stranger".into()))));
    // Same kid as a published key, different key: the signature fails.
    let imposter = TestKey::rsa("k1");
    assert_eq!(
        verify(&imposter.sign("RS256", json!({}), &claims()), &keys, &policy(), NOW),
        Err(LogoutTokenError::BadSignature)
    );
}

/// RFC 8725 §3.1 key confusion: an HS256 token MAC'ed with the issuer's public key.
#[test]
fn bc_rp_03_hs256_key_confusion_is_impossible() {
    let (k, keys) = rs();
    let secret = serde_json::to_vec(&k.jwk(None)).unwrap();
    let header = jsonwebtoken::Header { kid: Some("k1".into()), ..jsonwebtoken::Header::new(Algorithm::HS256) };
    let t = jsonwebtoken::encode(&header, &claims(), &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap();
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::AlgorithmNotAllowed("HS256".into())));
    assert_eq!(policy().with_algorithms(&[Algorithm::HS256]), Err(PolicyError::SymmetricAlgorithm(Algorithm::HS256)));
}

/// RFC 8725 §3.1: a JWK's `alg` names exactly one signature algorithm, the one of the same
/// name; encryption algorithms and unknown names name none.
#[test]
fn a_jwk_alg_names_the_signature_algorithm_of_the_same_name_only() {
    for alg in ASYMMETRIC.iter().chain(&[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]) {
        let named: KeyAlgorithm = format!("{alg:?}").parse().unwrap();
        assert_eq!(signing_algorithm(named), Some(*alg), "{alg:?}");
    }
    for other in ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "XYZ"] {
        let named: KeyAlgorithm = serde_json::from_value(json!(other)).unwrap();
        assert_eq!(signing_algorithm(named), None, "{other}");
    }
    install();
    let k = TestKey::rsa("k1");
    let keys = jsonwebtoken::jwk::JwkSet { keys: vec![k.jwk(Some("RS256"))] };
    assert!(verify(&k.sign("RS256", json!({}), &claims()), &keys, &policy(), NOW).is_ok(), "same name: used");
}

/// RFC 8725 §3.1: a key whose JWK names another algorithm is not used.
#[test]
fn a_key_published_for_another_algorithm_is_not_used() {
    install();
    let k = TestKey::rsa("k1");
    let keys = jsonwebtoken::jwk::JwkSet { keys: vec![k.jwk(Some("PS256"))] };
    let t = k.sign("RS256", json!({}), &claims());
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::KeyMismatch));
}

#[test]
fn every_asymmetric_algorithm_verifies() {
    install();
    let (rsa, ec, ed) = (TestKey::rsa("rsa"), TestKey::ec("ec"), TestKey::ed("ed"));
    let keys = set(&[&rsa, &ec, &ed]);
    for (k, alg, a) in [
        (&rsa, "RS256", Algorithm::RS256),
        (&rsa, "PS256", Algorithm::PS256),
        (&ec, "ES256", Algorithm::ES256),
        (&ed, "EdDSA", Algorithm::EdDSA),
    ] {
        let p = policy().with_algorithms(&[a]).unwrap();
        verify(&k.sign(alg, json!({}), &claims()), &keys, &p, NOW).unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[test]
fn bc_rp_04_audience_array_containing_the_client_is_accepted_and_untrusted_extras_are_not() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &with(claims(), "aud", json!([AUD])));
    verify(&t, &keys, &policy(), NOW).unwrap();
    let t = k.sign("RS256", json!({}), &with(claims(), "aud", json!([AUD, "other-api"])));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::UntrustedAudience));
    verify(&t, &keys, &policy().trust_audience("other-api"), NOW).unwrap();
    let t = k.sign("RS256", json!({}), &with(claims(), "aud", json!(42)));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::WrongAudience));
}

#[test]
fn bc_rp_04_iat_in_the_future_beyond_the_leeway_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &with(claims(), "iat", json!(NOW + 61)));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::IssuedInFuture));
    let t = k.sign("RS256", json!({}), &with(claims(), "iat", json!(NOW + 60)));
    verify(&t, &keys, &policy(), NOW).unwrap();
    let t = k.sign("RS256", json!({}), &without(claims(), "iat"));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingIssuedAt));
}

#[test]
fn bc_rp_04_expired_token_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &claims());
    verify(&t, &keys, &policy(), NOW + 180).unwrap();
    assert_eq!(verify(&t, &keys, &policy(), NOW + 181), Err(LogoutTokenError::Expired));
}

/// Errata 1: `exp` is required, unless the documented compatibility switch is on.
#[test]
fn errata1_missing_exp_is_rejected_by_default_and_bounded_by_max_age_in_compatibility_mode() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &without(claims(), "exp"));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingExpiry));
    let compat = policy().allow_missing_exp(Duration::from_secs(120));
    verify(&t, &keys, &compat, NOW + 100).unwrap();
    assert_eq!(verify(&t, &keys, &compat, NOW + 181), Err(LogoutTokenError::TooOld));
}

#[test]
fn bc_rp_05_sub_or_sid_is_required() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &without(without(claims(), "sub"), "sid"));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingSubjectAndSession));
    let t = k.sign("RS256", json!({}), &with(with(claims(), "sub", json!("")), "sid", json!("")));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::InvalidSubjectOrSession));
    let t = k.sign("RS256", json!({}), &without(claims(), "sub"));
    assert_eq!(verify(&t, &keys, &policy(), NOW).unwrap().subject(), &LogoutSubject::Sid("sid-1".into()));
    let t = k.sign("RS256", json!({}), &without(claims(), "sid"));
    assert_eq!(verify(&t, &keys, &policy(), NOW).unwrap().subject(), &LogoutSubject::Sub("user-1".into()));
}

/// A `sid` that is present but not a non-empty string must not be read as absent: the
/// application would then end every session of the `sub` instead of the one named.
#[test]
fn bc_rp_05_sub_or_sid_present_but_not_a_non_empty_string_is_refused() {
    let (k, keys) = rs();
    for bad in [json!(1), json!(null), json!(""), json!(["sid-1"]), json!({"v": "sid-1"}), json!(true)] {
        for claim in ["sid", "sub"] {
            let t = k.sign("RS256", json!({}), &with(claims(), claim, bad.clone()));
            assert_eq!(
                verify(&t, &keys, &policy(), NOW),
                Err(LogoutTokenError::InvalidSubjectOrSession),
                "{claim}: {bad}"
            );
        }
    }
}

#[test]
fn bc_rp_06_event_value_must_be_an_object() {
    let (k, keys) = rs();
    let t = k.sign(
        "RS256",
        json!({}),
        &with(claims(), "events", json!({"http://schemas.openid.net/event/backchannel-logout": true})),
    );
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::EventNotObject));
}

#[test]
fn jti_is_required() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &without(claims(), "jti"));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::MissingJti));
}

/// BC-RP-13: logout types accepted case-insensitively; other types refused; strict mode.
#[test]
fn bc_rp_13_typ_is_checked() {
    let (k, keys) = rs();
    for typ in ["logout+jwt", "application/logout+jwt", "LOGOUT+JWT", "Application/Logout+JWT"] {
        let t = k.sign("RS256", json!({"typ": typ}), &claims());
        verify(&t, &keys, &policy(), NOW).unwrap_or_else(|e| panic!("{typ}: {e}"));
        verify(&t, &keys, &policy().strict_typ(), NOW).unwrap();
    }
    for typ in ["at+jwt", "secevent+jwt", "application/at+jwt", "id_token"] {
        let t = k.sign("RS256", json!({"typ": typ}), &claims());
        assert!(matches!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::WrongType(_))), "{typ}");
    }
    let jwt = k.sign("RS256", json!({"typ": "JWT"}), &claims());
    verify(&jwt, &keys, &policy(), NOW).unwrap();
    assert_eq!(verify(&jwt, &keys, &policy().strict_typ(), NOW), Err(LogoutTokenError::UntypedToken));
    let none = k.sign("RS256", json!({}), &claims());
    assert_eq!(verify(&none, &keys, &policy().strict_typ(), NOW), Err(LogoutTokenError::UntypedToken));
}

/// Signs `claims_text` (exact JSON) with the test key.
fn sign_claims_text(k: &TestKey, claims_text: &str) -> String {
    use base64::Engine;
    let token = k.sign("RS256", json!({}), &json!({}));
    let header = token.split('.').next().unwrap();
    let input = format!("{header}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims_text));
    k.sign_input("RS256", &input)
}

/// A claim named twice is refused, not read by "last wins" (RFC 7519 §4 lets a parser
/// refuse duplicate claim names); so is the back-channel event named twice.
#[test]
fn a_claim_named_twice_is_malformed() {
    let (k, keys) = rs();
    let valid = claims().to_string();
    let twice_iss = valid.replacen('{', r#"{"iss":"https://evil.example","#, 1);
    assert_eq!(verify(&sign_claims_text(&k, &twice_iss), &keys, &policy(), NOW), Err(LogoutTokenError::Malformed));
    let event = format!(r#""{BACKCHANNEL_LOGOUT_EVENT}":{{}}"#);
    let twice_event = valid.replacen(&event, &format!(r#"{event},"{BACKCHANNEL_LOGOUT_EVENT}":1"#), 1);
    assert_ne!(twice_event, valid);
    assert_eq!(verify(&sign_claims_text(&k, &twice_event), &keys, &policy(), NOW), Err(LogoutTokenError::Malformed));
    assert!(verify(&sign_claims_text(&k, &valid), &keys, &policy(), NOW).is_ok(), "the helper signs valid tokens");
}

/// Claims of the wrong JSON type get the error of their own rule; `null` is not absent.
#[test]
fn claims_of_the_wrong_type_get_their_own_rules_error() {
    let (k, keys) = rs();
    let cases = [
        ("iss", json!(7), LogoutTokenError::WrongIssuer),
        ("iss", json!(null), LogoutTokenError::WrongIssuer),
        ("aud", json!([AUD, 7]), LogoutTokenError::WrongAudience),
        ("aud", json!({"a": AUD}), LogoutTokenError::WrongAudience),
        ("iat", json!("1800000000"), LogoutTokenError::MissingIssuedAt),
        ("exp", json!(null), LogoutTokenError::Malformed),
        ("exp", json!("soon"), LogoutTokenError::Malformed),
        ("jti", json!(""), LogoutTokenError::MissingJti),
        ("jti", json!(12), LogoutTokenError::MissingJti),
        ("events", json!([BACKCHANNEL_LOGOUT_EVENT]), LogoutTokenError::MissingEvent),
        ("events", json!({BACKCHANNEL_LOGOUT_EVENT: "yes"}), LogoutTokenError::EventNotObject),
        ("nonce", json!(null), LogoutTokenError::NoncePresent),
    ];
    for (claim, value, error) in cases {
        let t = k.sign("RS256", json!({}), &with(claims(), claim, value.clone()));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(error), "{claim}: {value}");
    }
    let t = k.sign("RS256", json!({}), &with(with(claims(), "sub", json!(1)), "sid", json!(null)));
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::InvalidSubjectOrSession));
    let t = k.sign("RS256", json!({}), &with(claims(), "iat", json!(1_800_000_000.9)));
    assert_eq!(verify(&t, &keys, &policy(), NOW).unwrap().issued_at(), NOW, "a fractional NumericDate rounds down");
}

/// JSON escapes in claim values and in the event's name read as their values (RFC 8259 §7),
/// and every claim, interpreted or not, is still there to read (BC-LT-02).
#[test]
fn escaped_claims_read_as_their_values_and_every_claim_is_kept() {
    let (k, keys) = rs();
    let escaped_event = BACKCHANNEL_LOGOUT_EVENT.replace('/', "\\/");
    let text = format!(
        r#"{{"iss":"https:\/\/op.example.com","aud":"{AUD}","iat":{NOW},"exp":{},"jti":"j\u0031","sid":"sid-1","events":{{"{escaped_event}":{{}}}},"custom":{{"deep":[1,2]}}}}"#,
        NOW + 60
    );
    let t = verify(&sign_claims_text(&k, &text), &keys, &policy(), NOW).unwrap();
    assert_eq!((t.issuer(), t.jti(), t.subject().sid()), (ISS, "j1", Some("sid-1")));
    assert_eq!(t.claims()["custom"], json!({"deep": [1, 2]}));
    assert_eq!(t.claims()["jti"], json!("j1"));
    assert_eq!(t.clone(), t, "equal to its clone whether or not its claims were read");
}

/// Found by the `logout_claims` fuzz target: a claim the crate does not read must still be
/// JSON that any reader accepts (no invalid UTF-8, no lone surrogate, no number out of range),
/// or `claims()` would silently lose it; such tokens are malformed, in the header too.
#[test]
fn unread_members_that_are_not_valid_json_make_the_token_malformed() {
    let (k, keys) = rs();
    let valid = claims().to_string();
    let mut invalid_utf8 = valid.replacen('{', "{\"x\":[0,{\"\u{1}\":null}],", 1).into_bytes();
    let at = invalid_utf8.iter().position(|&b| b == 1).unwrap();
    invalid_utf8[at] = 0x81;
    for payload in [
        invalid_utf8,
        valid.replacen('{', r#"{"x":"\ud800","#, 1).into_bytes(),
        valid.replacen('{', r#"{"x":{"\udc00":1},"#, 1).into_bytes(),
        valid.replacen('{', r#"{"x":[1e400],"#, 1).into_bytes(),
    ] {
        use base64::Engine;
        let token = k.sign("RS256", json!({}), &json!({}));
        let header = token.split('.').next().unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = k.sign_input("RS256", &format!("{header}.{}", b64.encode(&payload)));
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::Malformed), "{payload:?}");
    }
    let t = k.sign_with_header_text("RS256", r#"{"alg":"RS256","kid":"k1","x5t":"\ud800"}"#, &claims());
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::Malformed), "header");
}

/// RFC 7515 §4.1.11: a `crit` member is refused whatever its value, `null` included.
#[test]
fn a_crit_member_is_refused_even_when_null() {
    let (k, keys) = rs();
    let t = k.sign_with_header_text("RS256", r#"{"alg":"RS256","kid":"k1","crit":null}"#, &claims());
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::UnsupportedCritical));
}

/// RFC 7515 §4: a header naming a member twice is refused rather than read by "last wins".
#[test]
fn a_header_with_a_duplicate_member_is_malformed() {
    let (k, keys) = rs();
    let t = k.sign_with_header_text("RS256", r#"{"alg":"none","alg":"RS256","kid":"k1"}"#, &claims());
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::Malformed));
}

/// RFC 7515 §4: the header is a JSON object; `alg`, `kid` and `typ` are strings, and a
/// `null` one is not taken for an absent one.
#[test]
fn a_header_that_is_not_an_object_or_has_non_string_members_is_malformed() {
    let (k, keys) = rs();
    for header in [
        r#"["RS256","k1"]"#,
        r#""RS256""#,
        r#"{"alg":"RS256","kid":null}"#,
        r#"{"alg":"RS256","kid":7}"#,
        r#"{"alg":"RS256","kid":"k1","typ":null}"#,
        r#"{"alg":"RS256","kid":"k1","typ":["logout+jwt"]}"#,
        r#"{"alg":null,"kid":"k1"}"#,
        r#"{"kid":"k1"}"#,
        r#"{"alg":"RS256","kid":"k1"} trailing"#,
    ] {
        let t = k.sign_with_header_text("RS256", header, &claims());
        assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::Malformed), "{header}");
    }
}

/// BC-RP-13: a `typ` written with JSON escapes is the same `typ` (RFC 8259 §7).
#[test]
fn bc_rp_13_an_escaped_typ_is_read_as_its_value() {
    let (k, keys) = rs();
    let t = k.sign_with_header_text(
        "RS256",
        r#"{"alg":"RS256","kid":"k\u0031","typ":"application\/logout+jwt"}"#,
        &claims(),
    );
    assert!(verify(&t, &keys, &policy().strict_typ(), NOW).is_ok());
}

#[test]
fn unknown_crit_header_is_rejected() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({"crit": ["exp-ext"], "exp-ext": 1}), &claims());
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::UnsupportedCritical));
}

/// BC-LT-02: claims that are not understood are ignored.
#[test]
fn unknown_claims_are_ignored() {
    let (k, keys) = rs();
    let t = k.sign("RS256", json!({}), &with(claims(), "ignored_claim", json!({"x": [1, 2]})));
    let v = verify(&t, &keys, &policy(), NOW).unwrap();
    assert!(v.claims().contains_key("ignored_claim"));
}

/// CORE-07 / RFC 8725 §3.10: keys named in the token are never used.
#[test]
fn embedded_and_remote_key_headers_are_never_followed() {
    let (k, keys) = rs();
    let attacker = TestKey::rsa("attacker");
    let evil =
        json!({"jwk": attacker.jwk(None), "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"});
    let t = attacker.sign("RS256", with(evil.clone(), "kid", json!("k1")), &claims());
    assert_eq!(verify(&t, &keys, &policy(), NOW), Err(LogoutTokenError::BadSignature));
    // The same headers on a token signed by the issuer do not matter.
    let t = k.sign("RS256", evil, &claims());
    verify(&t, &keys, &policy(), NOW).unwrap();
}

/// BC-RP-01: encrypted tokens are refused (no encryption was negotiated).
#[test]
fn bc_rp_01_encrypted_token_is_rejected() {
    let (_, keys) = rs();
    assert_eq!(verify("a.b.c.d.e", &keys, &policy(), NOW), Err(LogoutTokenError::Encrypted));
}

/// CORE-08: without a `kid`, only a key set with a single usable key can be used.
#[test]
fn a_token_without_kid_uses_the_single_matching_key_only() {
    install();
    let (k, other) = (TestKey::rsa("k1"), TestKey::rsa("k2"));
    let t = k.sign("RS256", json!({"kid": false}), &claims());
    verify(&t, &set(&[&k]), &policy(), NOW).unwrap();
    assert_eq!(verify(&t, &set(&[&k, &other]), &policy(), NOW), Err(LogoutTokenError::UnknownKey(None)));
    let t = k.sign("RS256", json!({"kid": null}), &claims());
    assert_eq!(verify(&t, &set(&[&k]), &policy(), NOW), Err(LogoutTokenError::Malformed));
}

#[test]
fn malformed_inputs_are_rejected_without_panicking() {
    let (k, keys) = rs();
    let good = k.sign("RS256", json!({}), &claims());
    for bad in [
        String::new(),
        "a".into(),
        "a.b".into(),
        "a.b.c".into(),
        "....".into(),
        "%%%.%%%.%%%".into(),
        format!("{}.e30.", "e30"),
        "W10.W10.W10".into(),
        "x".repeat(MAX_TOKEN_LEN + 1),
        good.replace('.', ".."),
    ] {
        assert!(verify(&bad, &keys, &policy(), NOW).is_err(), "{bad:.40}");
    }
}

/// BC-RP-03: a key is used only for its own family and curve, also when the `kid` matches.
#[test]
fn bc_rp_03_a_key_of_another_type_or_curve_is_a_key_mismatch() {
    install();
    let (rsa, ec) = (TestKey::rsa("k1"), TestKey::ec("k1"));
    let p = policy().with_algorithms(&[Algorithm::ES256, Algorithm::RS256]).unwrap();
    let t = ec.sign("ES256", json!({}), &claims());
    assert_eq!(verify(&t, &set(&[&rsa]), &p, NOW), Err(LogoutTokenError::KeyMismatch), "RSA key for ES256");
    let t = rsa.sign("RS256", json!({}), &claims());
    assert_eq!(verify(&t, &set(&[&ec]), &p, NOW), Err(LogoutTokenError::KeyMismatch), "EC key for RS256");
    let mut p384 = ec.jwk(None);
    if let AlgorithmParameters::EllipticCurve(params) = &mut p384.algorithm {
        params.curve = EllipticCurve::P384;
    }
    let t = ec.sign("ES256", json!({}), &claims());
    let keys = JwkSet { keys: vec![p384] };
    assert_eq!(verify(&t, &keys, &p, NOW), Err(LogoutTokenError::KeyMismatch), "P-384 key for ES256");
}

/// Keys parsed once ([`VerificationKeys`]) give exactly the answers of a fresh parse, every time.
#[test]
fn prepared_keys_verify_exactly_like_a_fresh_parse() {
    install();
    let (rsa, ec, ed) = (TestKey::rsa("rsa"), TestKey::ec("ec"), TestKey::ed("ed"));
    let other = TestKey::rsa("rsa");
    let keys = set(&[&rsa, &ec, &ed]);
    let prepared = VerificationKeys::new(keys.clone());
    let p =
        policy().with_algorithms(&[Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA]).unwrap();
    let tokens = [
        rsa.sign("RS256", json!({}), &claims()),
        rsa.sign("PS256", json!({}), &claims()),
        ec.sign("ES256", json!({}), &claims()),
        ed.sign("EdDSA", json!({}), &claims()),
        other.sign("RS256", json!({}), &claims()),
        ec.sign("ES256", json!({"kid": "rsa"}), &claims()),
        rsa.sign("RS256", json!({}), &with(claims(), "aud", json!("someone-else"))),
    ];
    for round in 0..2 {
        for t in &tokens {
            assert_eq!(verify_prepared(t, &prepared, &p, NOW), verify(t, &keys, &p, NOW), "round {round}");
        }
    }
    assert!(verify_prepared(&tokens[0], &prepared, &p, NOW).is_ok());
    assert_eq!(verify_prepared(&tokens[4], &prepared, &p, NOW), Err(LogoutTokenError::BadSignature));
}
