#!/usr/bin/env bash
# Fuzzes adieu-rp's logout token verification for a bounded time (default 60 s).
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
cd fuzz
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . logout_token corpus/logout_token -- -max_total_time="$secs" -max_len=4096
