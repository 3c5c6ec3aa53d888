//! Test keys: real key pairs (aws-lc-rs) that sign compact JWS and publish their JWK.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::{Value, json};

pub enum Kind {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct TestKey {
    pub kid: String,
    pub kind: Kind,
}

impl TestKey {
    pub fn rsa(kid: &str) -> Self {
        TestKey { kid: kid.into(), kind: Kind::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()) }
    }
    pub fn ec(kid: &str) -> Self {
        TestKey { kid: kid.into(), kind: Kind::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()) }
    }
    pub fn ed(kid: &str) -> Self {
        TestKey { kid: kid.into(), kind: Kind::Ed(Ed25519KeyPair::generate().unwrap()) }
    }

    /// The public JWK, optionally naming its algorithm.
    pub fn jwk(&self, alg: Option<&str>) -> Jwk {
        let mut v = match &self.kind {
            Kind::Rsa(k) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                let strip = |b: &[u8]| b.iter().position(|&x| x != 0).map_or(b.to_vec(), |i| b[i..].to_vec());
                json!({"kty": "RSA", "n": B64.encode(strip(&c.n)), "e": B64.encode(strip(&c.e))})
            }
            Kind::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])})
            }
            Kind::Ed(k) => json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.public_key().as_ref())}),
        };
        v["kid"] = json!(self.kid);
        if let Some(a) = alg {
            v["alg"] = json!(a);
        }
        serde_json::from_value(v).unwrap()
    }

    /// Signs `header` (alg and kid filled in unless present) and `claims` with `alg`.
    pub fn sign(&self, alg: &str, mut header: Value, claims: &Value) -> String {
        if header.get("alg").is_none() {
            header["alg"] = json!(alg);
        }
        match header.get("kid") {
            None => header["kid"] = json!(self.kid),
            // `"kid": false` asks for a token without a kid.
            Some(Value::Bool(false)) => {
                header.as_object_mut().unwrap().remove("kid");
            }
            Some(_) => {}
        }
        self.sign_with_header_text(alg, &header.to_string(), claims)
    }

    /// Signs with `header` taken as the exact JSON text (for duplicates, escapes, non-objects).
    pub fn sign_with_header_text(&self, alg: &str, header: &str, claims: &Value) -> String {
        self.sign_input(alg, &format!("{}.{}", B64.encode(header), B64.encode(claims.to_string())))
    }

    /// Signs `input` (`header.payload`, both already base64url) and returns the token.
    pub fn sign_input(&self, alg: &str, input: &str) -> String {
        let sig = match (&self.kind, alg) {
            (Kind::Rsa(k), "RS256") => {
                let mut s = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut s).unwrap();
                s
            }
            (Kind::Rsa(k), "PS256") => {
                let mut s = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PSS_SHA256, &SystemRandom::new(), input.as_bytes(), &mut s).unwrap();
                s
            }
            (Kind::Ec(k), "ES256") => k.sign(&SystemRandom::new(), input.as_bytes()).unwrap().as_ref().to_vec(),
            (Kind::Ed(k), "EdDSA") => k.sign(input.as_bytes()).as_ref().to_vec(),
            _ => panic!("test key cannot sign {alg}"),
        };
        format!("{input}.{}", B64.encode(sig))
    }
}

pub fn set(keys: &[&TestKey]) -> JwkSet {
    JwkSet { keys: keys.iter().map(|k| k.jwk(None)).collect() }
}

pub const ISS: &str = "https://op.example.com";
pub const AUD: &str = "client-1";
pub const NOW: i64 = 1_800_000_000;

/// The claims of a valid logout token at [`NOW`].
pub fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "iat": NOW,
        "exp": NOW + 120,
        "jti": "jti-1",
        "sub": "user-1",
        "sid": "sid-1",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
    })
}

/// A unique suffix for names in shared test databases.
pub fn unique() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 8];
    SystemRandom::new().fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A verified logout token of `issuer` naming `sub` and/or `sid`, issued at `iat`.
pub fn verified_token(
    issuer: &str,
    sub: Option<&str>,
    sid: Option<&str>,
    iat: i64,
) -> crate::verify::VerifiedLogoutToken {
    crate::install_crypto();
    let k = TestKey::ec("k");
    let mut c = claims();
    c["iss"] = json!(issuer);
    c["iat"] = json!(iat);
    c["exp"] = json!(iat + 120);
    let o = c.as_object_mut().unwrap();
    o.remove("sub");
    o.remove("sid");
    if let Some(s) = sub {
        o.insert("sub".into(), json!(s));
    }
    if let Some(s) = sid {
        o.insert("sid".into(), json!(s));
    }
    let p =
        crate::verify::VerificationPolicy::new(issuer, AUD).with_algorithms(&[jsonwebtoken::Algorithm::ES256]).unwrap();
    crate::verify::verify(&k.sign("ES256", json!({}), &c), &set(&[&k]), &p, iat).unwrap()
}
