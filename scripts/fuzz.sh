#!/usr/bin/env bash
# Fuzzes adieu-rp's logout token verification for a bounded time (default 60 s per target):
# `logout_token` (arbitrary text as a token) and `logout_claims` (arbitrary bytes as the claims of
# a validly signed token, checked against a plain serde_json reading).
#   scripts/fuzz.sh [seconds]
# Installs cargo-fuzz from crates.io if missing. libFuzzer's sanitizer flags need a nightly
# compiler; on the stable toolchain RUSTC_BOOTSTRAP=1 unlocks them (as cargo-fuzz recommends for
# CI without nightly).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
mkdir -p fuzz/corpus/logout_token
# Seed with a few shapes: a real token, a JWE, garbage.
printf 'eyJhbGciOiJub25lIn0.e30.' > fuzz/corpus/logout_token/alg-none
printf 'a.b.c.d.e' > fuzz/corpus/logout_token/jwe
mkdir -p fuzz/corpus/logout_claims
printf '{"iss":"https://op.example.com","aud":"my-client","iat":1800000000,"exp":1800000120,"jti":"j","sid":"s","events":{"http://schemas.openid.net/event/backchannel-logout":{}}}' \
  > fuzz/corpus/logout_claims/valid
printf '{"iss":"https://op.example.com","aud":["my-client"],"iat":1.8e9,"exp":1800000120.5,"jti":"j\\u0031","sub":"u","events":{"http:\\/\\/schemas.openid.net\\/event\\/backchannel-logout":{}},"x":[1,{"y":null}]}' \
  > fuzz/corpus/logout_claims/escapes
cd fuzz
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . logout_token corpus/logout_token -- -max_total_time="$secs" -max_len=4096
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . logout_claims corpus/logout_claims -- -max_total_time="$secs" -max_len=4096
