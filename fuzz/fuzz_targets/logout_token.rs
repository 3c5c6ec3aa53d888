//! Fuzzes logout token parsing and verification: no input may panic, and none may verify
//! (the fuzzer cannot forge an Ed25519 signature).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static SAMPLE: OnceLock<(jsonwebtoken::jwk::JwkSet, adieu_rp::verify::VerificationPolicy, i64, String)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (keys, policy, now, valid) = SAMPLE.get_or_init(|| {
        let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
        (keys, policy, now, token)
    });
    let Ok(raw) = std::str::from_utf8(data) else { return };
    if raw == valid {
        return;
    }
    let result = adieu_rp::verify::verify(raw, keys, policy, *now);
    // Anything other than the one valid token must be refused, unless it is the same token with
    // surrounding whitespace (which `verify` trims).
    assert!(result.is_err() || raw.trim() == valid, "a forged token verified: {raw:?}");
});
