//! `adieu-bench`: end-to-end benchmarks of adieu's back-channel logout delivery.
//!
//! It runs the real release binary (`adieu serve`, a child process on a free loopback port with a
//! fresh SQLite database; user and clients made with the binary's CLI) against N in-process
//! receivers, each an axum server on its own loopback address (a distinct host to adieu's per-host
//! limit), and prints a Markdown table per scenario, then a summary against the targets:
//!
//! - **a** Latency from sending the logout (`POST /logout/confirm`) to the moment the *last* of N
//!   receivers holds a verified ES256 logout token, N = 1, 10, 50, 200 (`logout_wait_ms = 0`, so the
//!   page does not wait; timestamps are taken by the receivers). Each round is a fresh browser
//!   session signed in to all N clients, then the logout. Target: median < 15 ms for N = 50,
//!   < 50 ms for N = 200.
//! - **b** Response time of the logout page when 10% of N = 50 receivers never answer, with the
//!   default budget `logout_wait_ms = 1000`. Target: within the budget + 10 ms.
//! - **c** Throughput of a mass logout (1,000 sessions × 20 clients = 20,000 deliveries, all logouts
//!   fired at once, 64 in flight), compared with the raw ES256 signing rate of all cores. Target:
//!   ≥ 50% of that rate. Receivers only count here and verify a 1% sample.
//! - **d** Peak memory (`VmHWM`) of the server during c. Target: < 150 MB.
//! - **e** Account deletion at scale ([`scenario_e`]): 10,000 users with 3 sessions × 2 applications
//!   each, seeded with `adieu-store` before the server starts, all deleted through the management API
//!   (16 requests in flight): time from the first delete to the last of the 60,000 deliveries
//!   (`account-deleted`), deletes/s, deliveries/s, duplicates, and the server's peak memory.
//!
//! - **f** Load ([`scenario_f`], `--scenario f`, not part of `all`: it needs PostgreSQL): a bounded
//!   run of sign-in and sign-out cycles (authorize → sign-in form → code → token → logout) against two
//!   replicas on one PostgreSQL database, requests spread over both (with the default sign-out wait
//!   and without it), then against one replica on SQLite: throughput, p50/p99 per endpoint, the
//!   delivery lag, and who used the CPU.
//! - **g** Isolation ([`scenario_g`], `--scenario g`, not part of `all`): 50 applications on one
//!   host name, 5 of them never answer; 30 logouts back to back, time to the last healthy token.
//! - **h** Mass logout near the limit ([`scenario_h`], `--scenario h`, not part of `all`: it needs
//!   PostgreSQL): 20,000 deliveries from the provider and from a reference loop (`adieu-ref-loop`)
//!   to the same receivers, and N = 50 fan-outs, on SQLite and two PostgreSQL replicas, ES256 and
//!   RS256, kept-alive and connection-per-POST receivers: rate, CPU and latency ratios.
//!   **h1m** (`--scenario h1m`): 1,000,000 deliveries on two PostgreSQL replicas.
//!
//! Everything (server, receivers, browsers) shares the machine's cores; see docs/benchmarks.md.
//! Run: `cargo build --release -p adieu -p adieu-bench && target/release/adieu-bench --scenario all`.

mod cpu;
mod harness;
mod ref_key;
mod scenario_e;
mod scenario_f;
mod scenario_g;
mod scenario_h;

use cpu::{clock_ticks, cpu_secs, machine_busy_secs};

use anyhow::{Context, Result, bail, ensure};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use clap::{Parser, ValueEnum};
use harness::{Behaviour, Hosts, Provider, Receivers, Verify, Web, join_next};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Delivery latency to the last of N receivers (N = 1, 10, 50, 200).
    A,
    /// Logout page response time with 10% hanging receivers.
    B,
    /// Mass-logout throughput versus raw signing rate, and the server's peak memory (d).
    C,
    /// Account deletion: 10,000 users × 3 sessions × 2 applications = 60,000 deliveries.
    E,
    /// Load: sign-in + sign-out cycles on two PostgreSQL replicas and one SQLite replica (needs
    /// PostgreSQL: ADIEU_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test).
    F,
    /// Isolation: 50 applications on one host, 5 never answer; 30 logouts back to back.
    G,
    /// Mass logout near the limit: provider against a reference loop, SQLite and two PostgreSQL
    /// replicas (needs PostgreSQL: ADIEU_TEST_POSTGRES_URL, default
    /// postgres://postgres@127.0.0.1:5432/postgres; a fresh database per configuration).
    H,
    /// 1,000,000 deliveries on two PostgreSQL replicas.
    H1m,
    /// a, b, c (with d) and e (not f, which needs PostgreSQL, nor g).
    All,
}

/// End-to-end benchmarks of adieu's back-channel logout delivery (see docs/benchmarks.md).
#[derive(Debug, Parser)]
#[command(name = "adieu-bench", version)]
struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// The adieu binary [default: `adieu` next to this executable, i.e. target/release/adieu].
    #[arg(long)]
    adieu: Option<PathBuf>,
    /// Fewer rounds and sessions: a smoke run, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Put all receivers on 127.0.0.1 (distinct ports only), so that adieu's per-host limit
    /// (32 in flight per host name) applies to all of them together. By default each receiver has
    /// its own loopback address, i.e. is its own host.
    #[arg(long)]
    shared_host: bool,
    /// Keep each provider's temporary directory (database and `serve.log`) for inspection.
    #[arg(long)]
    keep: bool,
    /// h and h1m: deliveries per mass logout [default: 20,000 in h, 1,000,000 in h1m].
    #[arg(long)]
    deliveries: Option<usize>,
    /// h and h1m: the receivers verify every token of the mass logouts, not a sample.
    #[arg(long)]
    verify_all: bool,
    /// h: the signing algorithms to run (for a shorter A/B run, `--algs ES256`).
    #[arg(long, value_delimiter = ',', default_value = "ES256,RS256")]
    algs: Vec<String>,
}

/// What every scenario needs to know.
#[derive(Debug)]
struct Opts {
    adieu: PathBuf,
    quick: bool,
    hosts: Hosts,
    /// `--deliveries` (h, h1m).
    deliveries: Option<usize>,
    /// `--verify-all` (h, h1m).
    verify_all: bool,
    /// `--algs` (h).
    algs: Vec<String>,
}

/// One target from the issue with its measurement.
#[derive(Debug)]
struct Verdict {
    what: String,
    target: String,
    measured: String,
    pass: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Two worker threads would be tokio's default here too (one per core); the receivers and the
    // scripted browsers run on them, beside the provider process.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    // jsonwebtoken picks its crypto backend at run time.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    harness::KEEP.store(args.keep, std::sync::atomic::Ordering::Relaxed);
    let adieu = match args.adieu {
        Some(p) => p,
        None => std::env::current_exe()?.parent().context("no directory")?.join("adieu"),
    };
    ensure!(adieu.exists(), "{} does not exist: build it with `cargo build --release -p adieu`", adieu.display());
    print_machine(&adieu).await;
    let mut verdicts = Vec::new();
    let opts = Opts {
        adieu,
        quick: args.quick,
        hosts: if args.shared_host { Hosts::Shared } else { Hosts::Distinct },
        deliveries: args.deliveries,
        verify_all: args.verify_all,
        algs: args.algs.clone(),
    };
    if opts.quick {
        println!("**--quick: a smoke run with few rounds; these numbers are not measurements.**\n");
    }
    match opts.hosts {
        // g puts its receivers on 127.0.0.1, h and h1m each on its own address, whatever
        // --shared-host says.
        _ if matches!(args.scenario, Scenario::G | Scenario::H | Scenario::H1m) => {}
        Hosts::Distinct => println!("Receivers: each on its own loopback address (one host each).\n"),
        Hosts::Shared => {
            println!("Receivers: **all on 127.0.0.1** (--shared-host): one host for adieu's per-host limit.\n")
        }
    }
    if matches!(args.scenario, Scenario::A | Scenario::All) {
        verdicts.extend(scenario_a(&opts).await.context("scenario a")?);
    }
    if matches!(args.scenario, Scenario::B | Scenario::All) {
        verdicts.extend(scenario_b(&opts).await.context("scenario b")?);
    }
    if matches!(args.scenario, Scenario::C | Scenario::All) {
        verdicts.extend(scenario_c(&opts).await.context("scenario c")?);
    }
    if matches!(args.scenario, Scenario::E | Scenario::All) {
        verdicts.extend(scenario_e::run(&opts).await.context("scenario e")?);
    }
    if matches!(args.scenario, Scenario::F) {
        verdicts.extend(scenario_f::run(&opts).await.context("scenario f")?);
    }
    if matches!(args.scenario, Scenario::G) {
        verdicts.extend(scenario_g::run(&opts).await.context("scenario g")?);
    }
    if matches!(args.scenario, Scenario::H) {
        verdicts.extend(scenario_h::run(&opts).await.context("scenario h")?);
    }
    if matches!(args.scenario, Scenario::H1m) {
        verdicts.extend(scenario_h::run_1m(&opts).await.context("scenario h1m")?);
    }
    println!("## Summary\n");
    println!("| Target | Goal | Measured | Result |");
    println!("|---|---|---|---|");
    for v in &verdicts {
        println!("| {} | {} | {} | {} |", v.what, v.target, v.measured, if v.pass { "pass" } else { "**FAIL**" });
    }
    println!();
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Statistics

/// Nearest-rank percentile (`p` in 0..=100) of samples sorted ascending: the smallest sample with
/// at least `p`% of the samples at or below it. With fewer than 100 samples, p99 is the maximum.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "no samples");
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median (the mean of the two middle samples for an even count) of sorted samples.
fn median(sorted: &[f64]) -> f64 {
    assert!(!sorted.is_empty(), "no samples");
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// Summary of a set of samples.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    p99: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[f64]) -> Stats {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    Stats { median: median(&s), p99: percentile(&s, 99.0), min: s[0], max: s[s.len() - 1] }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ------------------------------------------------------------------------------------------------
// Machine and process facts

async fn print_machine(adieu: &std::path::Path) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = tokio::process::Command::new(adieu)
        .arg("--version")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("# adieu back-channel logout benchmarks\n");
    println!("- CPU: {model}, {cores} cores available");
    println!("- Memory: {:.1} GiB", mem_kib as f64 / 1024.0 / 1024.0);
    println!("- Kernel: Linux {}", kernel.trim());
    println!("- Provider: {version} ({})\n", adieu.display());
}

/// Who used the machine's CPU during a scenario: the provider, this harness, and everything else
/// (another build on the same machine would show up as "other").
#[derive(Debug)]
struct CpuWatch {
    ticks: f64,
    pid: String,
    started: Instant,
    machine: f64,
    provider: f64,
    harness: f64,
}

impl CpuWatch {
    fn start(provider: &Provider) -> CpuWatch {
        let ticks = clock_ticks();
        let pid = provider.pid.to_string();
        CpuWatch {
            machine: machine_busy_secs(ticks),
            provider: cpu_secs(&pid, ticks),
            harness: cpu_secs("self", ticks),
            started: Instant::now(),
            ticks,
            pid,
        }
    }

    /// A sentence for the report (call before the provider stops).
    fn report(&self) -> String {
        let wall = self.started.elapsed().as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(2, usize::from) as f64;
        let machine = machine_busy_secs(self.ticks) - self.machine;
        let provider = cpu_secs(&self.pid, self.ticks) - self.provider;
        let harness = cpu_secs("self", self.ticks) - self.harness;
        let other = (machine - provider - harness).max(0.0);
        format!(
            "CPU over the whole scenario ({wall:.0} s wall, {:.0} CPU-s available): provider {provider:.1} CPU-s, \
             harness {harness:.1} CPU-s, other processes {other:.1} CPU-s ({:.1}% of the machine).",
            wall * cores,
            other / (wall * cores) * 100.0
        )
    }
}

/// Mean attempt latency as the provider measured it (send to answer), from its histogram.
async fn mean_attempt_ms(p: &Provider) -> Result<f64> {
    let sum = p.metric("adieu_delivery_attempt_duration_seconds_sum").await?;
    let count = p.metric("adieu_delivery_attempt_duration_seconds_count").await?;
    Ok(if count > 0.0 { sum / count * 1000.0 } else { 0.0 })
}

// ------------------------------------------------------------------------------------------------
// (a) Latency to the last of N receivers

async fn scenario_a(opts: &Opts) -> Result<Vec<Verdict>> {
    const SIZES: [usize; 4] = [1, 10, 50, 200];
    eprintln!("(a) starting 200 receivers and the provider (logout_wait_ms = 0)…");
    let mut receivers = Receivers::start(200, opts.hosts, |_| Behaviour::Answer, Verify::All).await?;
    let provider =
        Provider::start(&opts.adieu, &receivers.addrs, &[("ADIEU_DELIVERY__LOGOUT_WAIT_MS", "0".into())]).await?;
    receivers.set_verifier(provider.verifier().await?)?;
    let web = Web::new(&provider)?;
    let (ticks, pid) = (clock_ticks(), provider.pid.to_string());
    let watch = CpuWatch::start(&provider);
    let mut sids = HashSet::new();
    let mut rows = Vec::new();
    let mut strays = 0;
    for n in SIZES {
        let rounds = if opts.quick {
            3
        } else if n <= 50 {
            30
        } else {
            15
        };
        let clients = &provider.clients[..n];
        let (mut last, mut first, mut page) = (Vec::new(), Vec::new(), Vec::new());
        let mut warmup = 0.0;
        // CPU seconds used by the provider and by this process (receivers verifying, browser) from
        // the logout request to the last receipt, summed over the counted rounds.
        let (mut server_cpu, mut self_cpu) = (0.0, 0.0);
        eprintln!("(a) N = {n}: 1 warm-up round + {rounds} rounds");
        // Round 0 warms the provider's connections to the receivers and is not counted.
        for round in 0..=rounds {
            let browser = web.sign_in_to(clients, 8).await?;
            provider.wait_idle(Duration::from_secs(30)).await?;
            strays += receivers.drain();
            let (server0, self0) = (cpu_secs(&pid, ticks), cpu_secs("self", ticks));
            let t0 = Instant::now();
            let (took, _) = web.logout(&browser).await?;
            let got = receivers.collect(n, Duration::from_secs(60)).await?;
            let (server1, self1) = (cpu_secs(&pid, ticks), cpu_secs("self", ticks));
            // Each receiver exactly once, each token verified, each sid never seen before.
            let distinct: HashSet<usize> = got.iter().map(|r| r.receiver).collect();
            ensure!(distinct.len() == n && distinct.iter().all(|&i| i < n), "wrong receivers got tokens");
            for r in &got {
                match &r.verified {
                    Some(Ok(sid)) => ensure!(sids.insert(sid.clone()), "sid {sid} was delivered twice"),
                    Some(Err(e)) => bail!("receiver {} got an invalid token: {e}", r.receiver),
                    None => bail!("receiver {} did not verify", r.receiver),
                }
            }
            let last_at = got.iter().map(|r| r.at).max().context("no receipt")?;
            let first_at = got.iter().map(|r| r.at).min().context("no receipt")?;
            if round == 0 {
                warmup = ms(last_at - t0);
                continue;
            }
            server_cpu += server1 - server0;
            self_cpu += self1 - self0;
            last.push(ms(last_at - t0));
            first.push(ms(first_at - t0));
            page.push(ms(took));
        }
        let cpu = (server_cpu * 1000.0 / f64::from(rounds), self_cpu * 1000.0 / f64::from(rounds));
        rows.push((n, rounds, stats(&last), stats(&first), stats(&page), warmup, cpu));
    }
    provider.wait_idle(Duration::from_secs(30)).await?;
    strays += receivers.drain();
    let attempt_ms = mean_attempt_ms(&provider).await?;
    let (retries, dead) = (provider.attempts("retry").await?, provider.attempts("dead").await?);
    let (warns, errors) = provider.log_levels();
    let cpu = watch.report();
    provider.stop().await?;

    println!("## (a) Latency to the last of N receivers holding a verified token\n");
    println!("ES256 clients, `logout_wait_ms = 0`; from sending `POST /logout/confirm` to the last receiver's");
    println!("receipt (timestamped after it verified the token). One warm-up round per N not counted.\n");
    println!(
        "| N | rounds | median | p99 | min | max | first token (median) | logout response (median) | warm-up round | CPU per round: provider / harness |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, rounds, l, f, p, w, (cs, ch)) in &rows {
        println!(
            "| {n} | {rounds} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {w:.1} ms | {cs:.0} / {ch:.0} ms |",
            l.median, l.p99, l.min, l.max, f.median, p.median
        );
    }
    println!();
    println!(
        "\"First token\" is the first receiver's receipt; \"logout response\" is when the signed-out page \
         was complete (it does not wait for deliveries here). CPU per round is the mean CPU time the \
         provider process and this process (receivers verifying, the browser) used from the logout \
         request to the last receipt; /proc counts it in 10 ms ticks, so small values are coarse.\n"
    );
    println!(
        "Provider's mean attempt latency (send → answer, its histogram): {attempt_ms:.2} ms; \
         retries: {retries}, dead: {dead}; unexpected extra receipts: {strays}; \
         server log: {warns} WARN, {errors} ERROR lines. {cpu}\n"
    );
    let mut verdicts = Vec::new();
    for (n, goal) in [(50, 15.0), (200, 50.0)] {
        if let Some((_, _, l, ..)) = rows.iter().find(|r| r.0 == n) {
            verdicts.push(Verdict {
                what: format!("(a) median latency, N = {n}, ES256"),
                target: format!("< {goal:.0} ms"),
                measured: format!("{:.1} ms (p99 {:.1} ms)", l.median, l.p99),
                pass: l.median < goal,
            });
        }
    }
    Ok(verdicts)
}

// ------------------------------------------------------------------------------------------------
// (b) The logout page with hanging receivers

async fn scenario_b(opts: &Opts) -> Result<Vec<Verdict>> {
    const N: usize = 50;
    const BUDGET_MS: u64 = 1000;
    let hangs = |i: usize| i % 10 == 9;
    let hanging = (0..N).filter(|&i| hangs(i)).count();
    let rounds = if opts.quick { 3 } else { 30 };
    eprintln!("(b) {N} receivers, {hanging} never answer; logout_wait_ms = {BUDGET_MS}; 1 warm-up + {rounds} rounds");
    let mut receivers =
        Receivers::start(N, opts.hosts, |i| if hangs(i) { Behaviour::Hang } else { Behaviour::Answer }, Verify::All)
            .await?;
    let provider =
        Provider::start(&opts.adieu, &receivers.addrs, &[("ADIEU_DELIVERY__LOGOUT_WAIT_MS", BUDGET_MS.to_string())])
            .await?;
    receivers.set_verifier(provider.verifier().await?)?;
    let web = Web::new(&provider)?;
    let watch = CpuWatch::start(&provider);
    let (mut page, mut healthy_last) = (Vec::new(), Vec::new());
    let mut shown_signed_out = Vec::new();
    for round in 0..=rounds {
        let browser = web.sign_in_to(&provider.clients, 8).await?;
        receivers.drain();
        let t0 = Instant::now();
        let (took, body) = web.logout(&browser).await?;
        let got = receivers.collect(N - hanging, Duration::from_secs(30)).await?;
        ensure!(got.iter().all(|r| matches!(r.verified, Some(Ok(_)))), "an invalid token arrived");
        if round == 0 {
            continue;
        }
        page.push(ms(took));
        healthy_last.push(ms(got.iter().map(|r| r.at).max().context("no receipt")? - t0));
        shown_signed_out.push(body.matches("(signed out)").count() as f64);
    }
    let attempt_ms = mean_attempt_ms(&provider).await?;
    let (warns, errors) = provider.log_levels();
    let cpu = watch.report();
    provider.stop().await?;

    let p = stats(&page);
    let h = stats(&healthy_last);
    let shown = stats(&shown_signed_out);
    println!("## (b) Logout page response time with {hanging} of {N} receivers never answering\n");
    println!(
        "`logout_wait_ms = {BUDGET_MS}` (the default); time from sending `POST /logout/confirm` to the whole page.\n"
    );
    println!("| N | hanging | budget | rounds | median | p99 | min | max | over budget (median / p99) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {N} | {hanging} | {BUDGET_MS} ms | {rounds} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | +{:.1} / +{:.1} ms |",
        p.median,
        p.p99,
        p.min,
        p.max,
        p.median - BUDGET_MS as f64,
        p.p99 - BUDGET_MS as f64
    );
    println!();
    println!(
        "The {} answering receivers all held a verified token after {:.1} ms (median; max {:.1} ms); \
         the page listed a median of {:.0} applications as \"signed out\". Provider's mean attempt \
         latency: {attempt_ms:.1} ms (includes the 5 s timeouts); server log: {warns} WARN, {errors} ERROR lines. {cpu}\n",
        N - hanging,
        h.median,
        h.max,
        shown.median
    );
    let goal = BUDGET_MS as f64 + 10.0;
    Ok(vec![Verdict {
        what: format!("(b) logout page, {hanging}/{N} receivers hang"),
        target: format!("≤ {goal:.0} ms (budget + 10 ms)"),
        measured: format!("median {:.1} ms, p99 {:.1} ms", p.median, p.p99),
        pass: p.p99 <= goal,
    }])
}

// ------------------------------------------------------------------------------------------------
// (c) Mass-logout throughput, and (d) the server's peak memory

async fn scenario_c(opts: &Opts) -> Result<Vec<Verdict>> {
    const CLIENTS: usize = 20;
    const SAMPLE: u64 = 100;
    const SIGN_IN_CONCURRENCY: usize = 8;
    const LOGOUT_CONCURRENCY: usize = 64;
    let sessions = if opts.quick { 50 } else { 1000 };
    let total = sessions * CLIENTS;
    eprintln!("(c) {CLIENTS} receivers (counting, 1% verified); signing in {sessions} sessions…");
    let mut receivers = Receivers::start(CLIENTS, opts.hosts, |_| Behaviour::Answer, Verify::Sample(SAMPLE)).await?;
    let provider =
        Provider::start(&opts.adieu, &receivers.addrs, &[("ADIEU_DELIVERY__LOGOUT_WAIT_MS", "0".into())]).await?;
    receivers.set_verifier(provider.verifier().await?)?;
    let web = Web::new(&provider)?;
    let (hwm_start, _) = provider.memory_kib()?;
    let watch = CpuWatch::start(&provider);

    // Sign in `sessions` browsers, each to all clients, a few browsers at a time.
    let started = Instant::now();
    let mut browsers = Vec::with_capacity(sessions);
    let mut jobs = JoinSet::new();
    for _ in 0..sessions {
        if jobs.len() >= SIGN_IN_CONCURRENCY {
            browsers.extend(join_next(&mut jobs).await?);
        }
        let (web, clients) = (web.clone(), provider.clients.clone());
        jobs.spawn(async move { web.sign_in_to(&clients, 1).await });
    }
    while let Some(b) = join_next(&mut jobs).await? {
        browsers.push(b);
    }
    let sign_in_secs = started.elapsed().as_secs_f64();
    provider.wait_idle(Duration::from_secs(30)).await?;
    let (hwm_signed_in, _) = provider.memory_kib()?;
    receivers.drain();

    // Fire all logouts, LOGOUT_CONCURRENCY in flight, from a task of their own so that receipts are
    // collected meanwhile.
    eprintln!("(c) {sessions} logouts → {total} deliveries…");
    let ticks = clock_ticks();
    let pid = provider.pid.to_string();
    let (server_cpu0, self_cpu0) = (cpu_secs(&pid, ticks), cpu_secs("self", ticks));
    let t0 = Instant::now();
    let driver = {
        let web = web.clone();
        tokio::spawn(async move {
            let mut jobs = JoinSet::new();
            let mut times = Vec::with_capacity(browsers.len());
            for b in browsers {
                if jobs.len() >= LOGOUT_CONCURRENCY {
                    times.extend(join_next(&mut jobs).await?);
                }
                let web = web.clone();
                jobs.spawn(async move { web.logout(&b).await.map(|(t, _)| t) });
            }
            while let Some(t) = join_next(&mut jobs).await? {
                times.push(t);
            }
            anyhow::Ok((times, Instant::now()))
        })
    };
    let got = receivers.collect(total, Duration::from_secs(900)).await?;
    let (logout_times, logouts_done) = driver.await??;
    let (server_cpu1, self_cpu1) = (cpu_secs(&pid, ticks), cpu_secs("self", ticks));
    let last_at = got.iter().map(|r| r.at).max().context("no receipt")?;
    let elapsed = (last_at - t0).as_secs_f64();
    let rate = total as f64 / elapsed;
    let sampled: Vec<_> = got.iter().filter_map(|r| r.verified.as_ref()).collect();
    let sample_failures = sampled.iter().filter(|v| v.is_err()).count();
    let mut per_receiver = vec![0usize; CLIENTS];
    for r in &got {
        per_receiver[r.receiver] += 1;
    }
    ensure!(per_receiver.iter().all(|&c| c == sessions), "uneven receipts per receiver: {per_receiver:?}");

    provider.wait_idle(Duration::from_secs(60)).await?;
    let (hwm_kib, rss_kib) = provider.memory_kib()?;
    let delivered = provider.attempts("delivered").await?;
    let (retries, dead) = (provider.attempts("retry").await?, provider.attempts("dead").await?);
    let attempt_ms = mean_attempt_ms(&provider).await?;
    let (warns, errors) = provider.log_levels();
    let cpu = watch.report();
    let db_bytes: u64 = std::fs::read_dir(provider.dir())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    provider.stop().await?;
    drop(receivers);

    // The raw signing rate, measured with the provider stopped and the receivers idle.
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    eprintln!("(c) raw ES256 signing rate on {threads} threads…");
    let (machine0, self0, sign_started) = (machine_busy_secs(ticks), cpu_secs("self", ticks), Instant::now());
    let raw = tokio::task::spawn_blocking(move || raw_sign_rate(threads, Duration::from_secs(3))).await??;
    let sign_other = ((machine_busy_secs(ticks) - machine0) - (cpu_secs("self", ticks) - self0)).max(0.0)
        / (sign_started.elapsed().as_secs_f64() * threads as f64);
    let ratio = rate / raw;
    let logout = stats(&logout_times.iter().copied().map(ms).collect::<Vec<_>>());

    println!("## (c) Mass logout: {sessions} sessions × {CLIENTS} clients = {total} deliveries\n");
    println!(
        "All {sessions} `POST /logout/confirm` fired at once, {LOGOUT_CONCURRENCY} in flight, `logout_wait_ms = 0`; \
         from the first logout request to the last receipt. Receivers do **not** verify \
         (they count), except a 1-in-{SAMPLE} sample that is fully verified.\n"
    );
    println!("| deliveries | time | deliveries/s | raw ES256 signs/s ({threads} threads) | ratio | verification |");
    println!("|---:|---:|---:|---:|---:|---|");
    println!(
        "| {total} | {elapsed:.2} s | {rate:.0} | {raw:.0} | {:.1}% | off (sample of {}: {} invalid) |",
        ratio * 100.0,
        sampled.len(),
        sample_failures
    );
    println!();
    println!(
        "- Sign-in phase (not measured above): {sessions} sign-ins + {} SSO authorizations in {sign_in_secs:.1} s.",
        sessions * (CLIENTS - 1)
    );
    println!(
        "- Logout responses: median {:.1} ms, p99 {:.1} ms, max {:.1} ms; the last one returned {:.2} s after the first request.",
        logout.median,
        logout.p99,
        logout.max,
        (logouts_done - t0).as_secs_f64()
    );
    println!(
        "- CPU during the logout phase: provider {:.2} s ({:.0} µs per delivery), this harness \
         (receivers + browsers) {:.2} s, over {elapsed:.2} s of wall time on {threads} cores.",
        server_cpu1 - server_cpu0,
        (server_cpu1 - server_cpu0) / total as f64 * 1e6,
        self_cpu1 - self_cpu0
    );
    println!(
        "- Provider counters: {delivered} delivered, {retries} retries, {dead} dead; mean attempt latency \
         {attempt_ms:.2} ms; server log: {warns} WARN, {errors} ERROR lines; database files {:.1} MB.",
        db_bytes as f64 / 1e6
    );
    println!("- {cpu} (Sign-in and logout phases; the signing-rate measurement ran afterwards.)");
    println!(
        "- Raw signing rate: {:.0} signs/s per thread, measured after the provider stopped; other processes \
         used {:.1}% of the machine meanwhile.\n",
        raw / threads as f64,
        sign_other * 100.0
    );
    println!("## (d) Peak memory of the provider during (c)\n");
    println!("| VmHWM (peak RSS) | VmRSS after (c) | VmHWM after start-up | VmHWM after the sign-in phase |");
    println!("|---:|---:|---:|---:|");
    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| {:.1} MB | {:.1} MB | {:.1} MB | {:.1} MB |\n",
        mb(hwm_kib),
        mb(rss_kib),
        mb(hwm_start),
        mb(hwm_signed_in)
    );
    println!("MB here are MiB (1024 × 1024 bytes), as /proc reports kB = KiB.\n");
    Ok(vec![
        Verdict {
            what: format!("(c) mass-logout throughput ({total} deliveries)"),
            target: "≥ 50% of raw all-core ES256 signing rate".into(),
            measured: format!("{rate:.0}/s = {:.1}% of {raw:.0}/s", ratio * 100.0),
            pass: ratio >= 0.5,
        },
        Verdict {
            what: "(d) provider peak memory during (c)".into(),
            target: "< 150 MB".into(),
            measured: format!("{:.1} MB (VmHWM)", hwm_kib as f64 / 1024.0),
            pass: (hwm_kib as f64 / 1024.0) < 150.0,
        },
    ])
}

/// ES256 signatures per second over `threads` threads for `dur`, each signing a ~400-byte message
/// (about a logout token's signing input) with one pre-parsed key pair.
fn raw_sign_rate(threads: usize, dur: Duration) -> Result<f64> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())?;
    let message = [0x5a_u8; 400];
    let rates: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let rng = SystemRandom::new();
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < dur {
                        for _ in 0..64 {
                            if key.sign(&rng, &message).is_ok() {
                                n += 1;
                            }
                        }
                    }
                    n as f64 / start.elapsed().as_secs_f64()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).collect()
    });
    Ok(rates.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&s, 100.0), 100.0);
        assert_eq!(percentile(&s, 0.0), 1.0);
        // Fewer than 100 samples: p99 is the maximum.
        let s: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(percentile(&s, 99.0), 30.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
        let st = stats(&[5.0, 1.0, 3.0]);
        assert_eq!((st.min, st.median, st.max), (1.0, 3.0, 5.0));
    }
}
