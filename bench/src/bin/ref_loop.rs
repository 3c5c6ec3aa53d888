//! `adieu-ref-loop`: the reference for scenario h of `adieu-bench` (see docs/benchmarks.md). It does
//! only what a back-channel logout delivery must do, nothing the provider does around it (no
//! database, no outbox, no leases, no retries, no metrics):
//!
//! for each of D deliveries, sign a fresh logout token with a pre-parsed key (ES256 or RS256, with
//! aws-lc-rs, as the provider signs: header `{"alg","typ":"logout+jwt","kid"}`, claims
//! `iss aud iat exp jti events sub sid` in the provider's own `LogoutTokenClaims`, a fresh random
//! 128-bit `jti`) and POST it as `application/x-www-form-urlencoded` `logout_token=…` to a receiver,
//! over loopback HTTP/1.1 with reqwest (rustls build, no proxy, `TCP_NODELAY`, connections kept
//! alive and pooled as the provider's delivery client does), with C deliveries in flight at once.
//!
//! Delivery `k` goes to target `k mod T` with `sid` `{round label}-{k}.{target index}`. A receiver
//! answers 2xx only after it has verified the token, so the time of the last 2xx is the time the
//! last receiver held a verified token ("time to the 50th verified token" with D = 50 and 50
//! targets).
//!
//! One JSON line per round on standard output: `deliveries`, `ok`, `failed`, `elapsed_ms` (start
//! of the round → last answer), `first_verified_ms`, `last_verified_ms`, `deliveries_per_s`,
//! `cpu_us` and `cpu_us_per_delivery` (this process's utime + stime over the round, from
//! `/proc/self/stat`; `adieu-bench` also reads it from `/proc/<pid>/stat`, as it does for the
//! provider).
//!
//! With `--stdin` it first prints `{"ready":true,…}` (after the warm-up, if `--warmup`), then waits
//! for a line on standard input before each round, so that the harness decides when a round
//! starts; it exits at the end of its input (also after the last round, so that its CPU time can
//! still be read).
//!
//! Example: `adieu-ref-loop --targets-file targets.txt --deliveries 20000 --concurrency 256 --alg ES256`
//! where each line of `targets.txt` is `URL [AUD]` (default `aud`: `bench-{line index}`).

#[path = "../cpu.rs"]
#[allow(dead_code, reason = "machine_busy_secs is for the harness")]
mod cpu;
#[path = "../ref_key.rs"]
mod ref_key;

use adieu_core::{Clock, SystemClock};
use adieu_proto::logout::{LOGOUT_TOKEN_TYP, LogoutTokenClaims, logout_events};
use anyhow::{Context, Result, bail, ensure};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::Parser;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// `exp = iat + 120`, as the provider's logout tokens.
const LIFETIME_SECS: i64 = 120;

/// Signs logout tokens and POSTs them to receivers; the reference loop of scenario h.
#[derive(Debug, Parser)]
#[command(name = "adieu-ref-loop", version)]
struct Args {
    /// A receiver: `URL [AUD]` (its back-channel logout URL, and the `aud` it expects; default
    /// `bench-{index}`). Repeatable; comes before the file's targets.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// A file of receivers, one `URL [AUD]` per line.
    #[arg(long)]
    targets_file: Option<PathBuf>,
    /// Deliveries per round.
    #[arg(long, default_value_t = 50)]
    deliveries: usize,
    /// Deliveries in flight at once (the provider's worker: `delivery.global_concurrency` = 256).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// ES256 or RS256.
    #[arg(long, default_value = "ES256")]
    alg: String,
    /// The private key, PKCS#8 DER [default: a new one, whose JWK is printed on standard error].
    #[arg(long)]
    key: Option<PathBuf>,
    /// The key's `kid`.
    #[arg(long, default_value = "ref-loop")]
    kid: String,
    /// The tokens' `iss`.
    #[arg(long, default_value = "http://adieu-ref-loop.invalid")]
    issuer: String,
    /// The tokens' `sub`.
    #[arg(long, default_value = "ref-user")]
    sub: String,
    /// Rounds to run.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// First send one untimed token to every target (opens the connections).
    #[arg(long)]
    warmup: bool,
    /// Print a ready line, then wait for a line on standard input before each round.
    #[arg(long)]
    stdin: bool,
}

/// A pre-parsed private key.
#[derive(Debug)]
enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    fn parse(alg: &str, der: &[u8]) -> Result<Signer> {
        Ok(match alg {
            "ES256" => Signer::Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)?),
            "RS256" => Signer::Rsa(RsaKeyPair::from_pkcs8(der)?),
            other => bail!("unsupported algorithm {other} (ES256 or RS256)"),
        })
    }

    fn sign(&self, rng: &SystemRandom, input: &[u8]) -> Result<Vec<u8>> {
        Ok(match self {
            Signer::Ec(kp) => kp.sign(rng, input)?.as_ref().to_vec(),
            Signer::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, rng, input, &mut sig)?;
                sig
            }
        })
    }
}

/// One receiver.
#[derive(Debug)]
struct Target {
    url: String,
    aud: String,
}

/// Everything a round needs, shared by its tasks.
#[derive(Debug)]
struct Ctx {
    signer: Signer,
    rng: SystemRandom,
    /// base64url of the header JSON, the same for every token.
    header: String,
    issuer: String,
    sub: String,
    targets: Vec<Target>,
    http: reqwest::Client,
}

impl Ctx {
    /// A fresh logout token for `aud` and `sid`.
    fn mint(&self, aud: &str, sid: &str) -> Result<String> {
        let iat = SystemClock.now().as_secs();
        let mut jti = [0u8; 16];
        self.rng.fill(&mut jti)?;
        let claims = LogoutTokenClaims {
            iss: self.issuer.clone(),
            aud: aud.to_owned(),
            iat,
            exp: iat + LIFETIME_SECS,
            jti: B64.encode(jti),
            events: logout_events(),
            sub: Some(self.sub.clone()),
            sid: Some(sid.to_owned()),
            // The provider's tokens carry why the session ended; the same size here.
            initiator: Some("session-revoked".to_owned()),
        };
        let payload = serde_json::to_vec(&claims)?;
        let mut out = String::with_capacity(64 + payload.len() * 2 + 400);
        out.push_str(&self.header);
        out.push('.');
        B64.encode_string(payload, &mut out);
        let sig = self.signer.sign(&self.rng, out.as_bytes())?;
        out.push('.');
        B64.encode_string(sig, &mut out);
        Ok(out)
    }

    /// Signs and POSTs delivery `k` of a round; whether the receiver answered 2xx.
    async fn deliver(&self, label: &str, k: usize) -> Result<bool> {
        let index = k % self.targets.len();
        let target = &self.targets[index];
        let token = self.mint(&target.aud, &format!("{label}-{k}.{index}"))?;
        let body = url::form_urlencoded::Serializer::new(String::new()).append_pair("logout_token", &token).finish();
        let res = self
            .http
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        Ok(res.status().is_success())
    }
}

/// What one task of a round saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    failed: usize,
    first_ok: Option<Duration>,
    last_ok: Option<Duration>,
    error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.first_ok = match (self.first_ok, other.first_ok) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ok = self.last_ok.max(other.last_ok);
        self.error = self.error.take().or(other.error);
    }
}

/// One task: takes the next delivery number until all are taken.
async fn worker(ctx: Arc<Ctx>, next: Arc<AtomicUsize>, label: Arc<str>, deliveries: usize, start: Instant) -> Tally {
    let mut t = Tally::default();
    loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if k >= deliveries {
            return t;
        }
        match ctx.deliver(&label, k).await {
            Ok(true) => {
                let at = start.elapsed();
                t.ok += 1;
                t.first_ok = Some(t.first_ok.map_or(at, |f| f.min(at)));
                t.last_ok = Some(t.last_ok.map_or(at, |l| l.max(at)));
            }
            Ok(false) => {
                t.failed += 1;
                t.error.get_or_insert_with(|| "a receiver answered with an error status".into());
            }
            Err(e) => {
                t.failed += 1;
                t.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

/// Runs one round of `deliveries`, `concurrency` in flight; its report.
async fn round(ctx: &Arc<Ctx>, label: &str, deliveries: usize, concurrency: usize, ticks: f64) -> Result<Value> {
    let cpu0 = cpu::cpu_secs("self", ticks);
    let (next, label): (_, Arc<str>) = (Arc::new(AtomicUsize::new(0)), label.into());
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.clamp(1, deliveries.max(1)) {
        tasks.spawn(worker(ctx.clone(), next.clone(), label.clone(), deliveries, start));
    }
    let mut tally = Tally::default();
    while let Some(t) = tasks.join_next().await {
        tally.merge(t?);
    }
    let elapsed = start.elapsed();
    let cpu = cpu::cpu_secs("self", ticks) - cpu0;
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    Ok(json!({
        "deliveries": deliveries,
        "concurrency": concurrency,
        "ok": tally.ok,
        "failed": tally.failed,
        "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
        "first_verified_ms": ms(tally.first_ok),
        "last_verified_ms": ms(tally.last_ok),
        "deliveries_per_s": tally.ok as f64 / elapsed.as_secs_f64(),
        "cpu_us": cpu * 1e6,
        "cpu_us_per_delivery": cpu * 1e6 / deliveries.max(1) as f64,
        "error": tally.error,
    }))
}

/// The targets from `--target` and `--targets-file`, in that order.
fn targets(args: &Args) -> Result<Vec<Target>> {
    let mut lines = args.targets.clone();
    if let Some(path) = &args.targets_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        lines.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned));
    }
    let targets: Vec<Target> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut parts = line.split_whitespace();
            let url = parts.next().unwrap_or_default().to_owned();
            let aud = parts.next().map_or_else(|| format!("bench-{i}"), str::to_owned);
            Target { url, aud }
        })
        .collect();
    ensure!(!targets.is_empty(), "no targets: give --target or --targets-file");
    for t in &targets {
        url::Url::parse(&t.url).with_context(|| format!("bad target URL {:?}", t.url))?;
    }
    Ok(targets)
}

/// The parsed key, the header and the client; a new key's JWK goes to standard error.
fn context(args: &Args) -> Result<Ctx> {
    let der = match &args.key {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => {
            let der = ref_key::generate_pkcs8(&args.alg)?;
            eprintln!("adieu-ref-loop: new key, JWK {}", ref_key::public_jwk(&args.alg, &der, &args.kid)?);
            der
        }
    };
    let header = serde_json::to_vec(&json!({"alg": args.alg, "typ": LOGOUT_TOKEN_TYP, "kid": args.kid}))?;
    // The provider's delivery client, without its address-policy resolver (receivers are IP literals).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(32)
        .tcp_nodelay(true)
        .user_agent("adieu-ref-loop")
        .build()?;
    Ok(Ctx {
        signer: Signer::parse(&args.alg, &der)?,
        rng: SystemRandom::new(),
        header: B64.encode(header),
        issuer: args.issuer.clone(),
        sub: args.sub.clone(),
        targets: targets(args)?,
        http,
    })
}

/// Waits for a line on standard input; `false` at its end.
async fn go_line() -> Result<bool> {
    let n = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await??;
    Ok(n > 0)
}

async fn run(args: Args) -> Result<()> {
    let ticks = cpu::clock_ticks();
    let ctx = Arc::new(context(&args)?);
    let mut warmup = Value::Null;
    if args.warmup {
        warmup = round(&ctx, "refw", ctx.targets.len(), args.concurrency, ticks).await?;
    }
    if args.stdin {
        println!("{}", json!({"ready": true, "targets": ctx.targets.len(), "warmup": warmup}));
    }
    for r in 0..args.rounds {
        if args.stdin && !go_line().await? {
            break;
        }
        let mut report = round(&ctx, &format!("ref{r}"), args.deliveries, args.concurrency, ticks).await?;
        report["round"] = json!(r);
        report["alg"] = json!(args.alg);
        println!("{report}");
    }
    // Stay until the end of the input, so that the harness can read this process's CPU time
    // after the last round.
    while args.stdin && go_line().await? {}
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    // One worker thread per core, as the provider's runtime.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("adieu-ref-loop: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adieu-ref-loop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use std::io::Write;

    #[tokio::test]
    async fn tokens_verify_with_the_published_key() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        for (alg, algorithm) in [("ES256", Algorithm::ES256), ("RS256", Algorithm::RS256)] {
            let der = ref_key::generate_pkcs8(alg).unwrap();
            let mut key = tempfile::NamedTempFile::new().unwrap();
            key.write_all(&der).unwrap();
            let path = key.path().to_str().unwrap();
            let args = Args::parse_from([
                "adieu-ref-loop",
                "--target",
                "http://127.0.0.1:9/backchannel",
                "--target",
                "http://127.0.0.1:9/other app-x",
                "--alg",
                alg,
                "--key",
                path,
                "--kid",
                "k1",
                "--issuer",
                "https://ref.example",
            ]);
            let ctx = context(&args).unwrap();
            assert_eq!(ctx.targets[0].aud, "bench-0");
            assert_eq!(ctx.targets[1].aud, "app-x");
            let token = ctx.mint("bench-0", "ref0-0.0").unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(
                (header.typ.as_deref(), header.kid.as_deref(), header.alg),
                (Some("logout+jwt"), Some("k1"), algorithm)
            );
            let jwk: Jwk = serde_json::from_value(ref_key::public_jwk(alg, &der, "k1").unwrap()).unwrap();
            let mut v = Validation::new(algorithm);
            v.set_audience(&["bench-0"]);
            v.set_issuer(&["https://ref.example"]);
            let claims =
                jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap().claims;
            assert_eq!(claims["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
            assert_eq!((claims["sub"].as_str(), claims["sid"].as_str()), (Some("ref-user"), Some("ref0-0.0")));
            assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), LIFETIME_SECS);
            assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
            assert!(claims.get("nonce").is_none());
            assert_ne!(ctx.mint("bench-0", "ref0-0.0").unwrap(), token, "a fresh jti each time");
        }
    }
}
