//! Scenario **f**: load (issue 6, "Load"): a bounded run of sign-in and logout cycles against
//! (i) two `adieu serve` replicas on one PostgreSQL database, requests spread over both, and
//! (ii) one replica on SQLite.
//!
//! Each cycle is what a browser and an application do for one sign-in and sign-out, with a fresh
//! browser (no cookies):
//!
//! 1. `GET /authorize` (code flow) → redirect to the sign-in page;
//! 2. `GET /login?request=…` → the form and its CSRF cookie;
//! 3. `POST /login` → argon2id verification, a new session, redirect with the code;
//! 4. `POST /token` (the application, `client_secret_basic`) → ID token with `sid`;
//! 5. `POST /logout/confirm` → the session ends (`rp-logout`) and a back-channel delivery is written;
//!    the page waits up to `logout_wait_ms` (default 1 s) for the first attempt.
//!
//! Every request goes to the next replica in turn, as a round-robin load balancer without sticky
//! sessions would send it, so the steps of one cycle land on different replicas and everything
//! (pending sign-ins, sessions, codes, the delivery) goes through the shared database. A receiver
//! verifies every logout token and matches it to its cycle by `sid`: the delivery lag is from
//! sending step 5 to the receiver holding the verified token. `VUS` virtual users run cycles back
//! to back until `cycles` are done (after a warm-up that is not counted).
//!
//! Three runs: two PostgreSQL replicas with the default `logout_wait_ms` (1 s), the same with
//! `logout_wait_ms = 0` (a sign-out page waits only for the deliveries its own replica's worker
//! sends, so with two replicas part of the pages wait the whole budget), and one SQLite replica.
//!
//! PostgreSQL: a fresh schema per run in `ADIEU_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped at the end. The CPU of every PostgreSQL
//! process, and of the backends serving the two replicas (found by their `application_name`,
//! `adieu <replica id>`), is counted separately from everything else on the machine.

use super::{Opts, Verdict, ms, stats};
use crate::cpu::{clock_ticks, cpu_secs, machine_busy_secs};
use crate::harness::{Behaviour, Prepared, Provider, Receivers, Verify, client_id, join_next};
use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use serde_json::Value;
use sqlx::Connection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Virtual users: cycles in flight at once.
const VUS: usize = 12;
/// The steps of a cycle, in order; the labels of the report.
const STEPS: [&str; 5] = ["GET /authorize", "GET /login", "POST /login", "POST /token", "POST /logout/confirm"];
/// The default `delivery.logout_wait_ms`.
const LOGOUT_WAIT_MS: u64 = 1000;
const USERNAME: &str = "bench";
const PASSWORD: &str = "bench-password-1";

/// The database a run uses.
#[derive(Debug, Clone)]
enum Db {
    Sqlite,
    Postgres { base_url: String, schema: String },
}

impl Db {
    fn url(&self) -> Option<String> {
        match self {
            Db::Sqlite => None,
            Db::Postgres { base_url, schema } => {
                let mut url = url::Url::parse(base_url).ok()?;
                url.query_pairs_mut().append_pair("options", &format!("-c search_path={schema}"));
                Some(url.to_string())
            }
        }
    }
}

/// What one run measured.
#[derive(Debug)]
struct RunResult {
    label: String,
    logout_wait_ms: f64,
    postgres: bool,
    cycles: usize,
    wall: f64,
    steps: Vec<Vec<f64>>,
    lag: Vec<f64>,
    per_replica: Vec<usize>,
    duplicates: usize,
    cpu: Cpu,
    load_before: String,
    load_after: String,
    warns: usize,
    errors: usize,
}

/// CPU seconds by who used them, over the measured part of a run.
#[derive(Debug, Default)]
struct Cpu {
    wall: f64,
    machine: f64,
    replicas: f64,
    /// The PostgreSQL backends of this run's replicas' connections.
    backends: f64,
    /// Every PostgreSQL server process (the backends above, the server's own background processes,
    /// and the backends of anything else using the server meanwhile).
    postgres: f64,
    /// Interrupt handling counted by the kernel rather than any process (mostly loopback networking).
    interrupts: f64,
    harness: f64,
}

impl Cpu {
    fn other(&self) -> f64 {
        (self.machine - self.replicas - self.postgres - self.interrupts - self.harness).max(0.0)
    }
}

/// CPU seconds so far of every process in `pids` that still exists.
pub(crate) fn cpu_of(pids: &[u32], ticks: f64) -> HashMap<u32, f64> {
    pids.iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .map(|p| (*p, cpu_secs(&p.to_string(), ticks)))
        .collect()
}

/// CPU seconds used between two snapshots by the processes of the second; a process that started
/// in between counts from zero, one that ended in between is not counted.
pub(crate) fn used_between(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after.iter().map(|(p, t)| (t - before.get(p).copied().unwrap_or(0.0)).max(0.0)).sum()
}

/// Every process whose command name is `postgres` (the server and its backends).
pub(crate) fn postgres_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .collect()
}

/// CPU seconds all cores spent in hard and soft interrupts so far (`/proc/stat`).
fn interrupt_secs(ticks: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let f: Vec<f64> = cpu.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    [5, 6].iter().filter_map(|&i| f.get(i)).sum::<f64>() / ticks
}

/// The database backends (`pg_stat_activity`) of connections named `adieu <prefix>…`.
pub(crate) async fn backend_pids(admin_url: &str, prefix: &str) -> Result<Vec<u32>> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1")
        .bind(format!("adieu {prefix}%"))
        .fetch_all(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(pids.into_iter().filter_map(|p| u32::try_from(p).ok()).collect())
}

/// One browser's sign-in and sign-out against the replicas, each request to the next replica.
#[derive(Debug, Clone)]
struct Cycle {
    http: reqwest::Client,
    bases: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    client: String,
    secret: String,
    redirect_uri: String,
}

/// A cycle's timings and its session's `sid` (from the ID token), with when step 5 was sent.
#[derive(Debug)]
struct Done {
    steps: [f64; 5],
    sid: String,
    logout_sent: Instant,
    replicas: [usize; 5],
}

fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get_all(reqwest::header::SET_COOKIE).iter().find_map(|h| {
        let (k, v) = h.to_str().ok()?.split(';').next()?.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_owned())
    })
}

fn location(res: &reqwest::Response) -> Result<String> {
    ensure!(res.status().is_redirection(), "expected a redirect, got {}", res.status());
    Ok(res.headers().get(reqwest::header::LOCATION).context("no Location")?.to_str()?.to_owned())
}

fn sid_of(id_token: &str) -> Result<String> {
    let payload = id_token.split('.').nth(1).context("not a JWT")?;
    let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    Ok(claims["sid"].as_str().context("no sid in the ID token")?.to_owned())
}

impl Cycle {
    fn pick(&self) -> (usize, &str) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len();
        (i, &self.bases[i])
    }

    async fn run(&self) -> Result<Done> {
        let mut steps = [0.0; 5];
        let mut replicas = [0; 5];
        // 1. The authorization request.
        let (r, base) = self.pick();
        replicas[0] = r;
        let t = Instant::now();
        let url = url::Url::parse_with_params(
            &format!("{base}/authorize"),
            [
                ("response_type", "code"),
                ("client_id", self.client.as_str()),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("scope", "openid"),
                ("state", "load"),
                ("nonce", "load"),
            ],
        )?;
        let res = self.http.get(url).send().await?;
        let login = location(&res)?;
        steps[0] = ms(t.elapsed());
        let request = login.split_once("request=").map(|(_, r)| r.to_owned()).context("no sign-in request")?;
        // 2. The sign-in page.
        let (r, base) = self.pick();
        replicas[1] = r;
        let t = Instant::now();
        let res = self.http.get(format!("{base}{login}")).send().await?.error_for_status()?;
        let csrf = set_cookie(&res, "adieu_csrf").context("no CSRF cookie")?;
        res.bytes().await?;
        steps[1] = ms(t.elapsed());
        // 3. Signing in.
        let (r, base) = self.pick();
        replicas[2] = r;
        let t = Instant::now();
        let res = self
            .http
            .post(format!("{base}/login"))
            .header(reqwest::header::COOKIE, format!("adieu_csrf={csrf}"))
            .form(&[("username", USERNAME), ("password", PASSWORD), ("csrf", &csrf), ("request", &request)])
            .send()
            .await?;
        let session = set_cookie(&res, "adieu_session").context("signing in set no session cookie")?;
        let back = location(&res)?;
        steps[2] = ms(t.elapsed());
        let code = url::Url::parse(&back)?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .with_context(|| format!("no code in {back}"))?;
        // 4. The application redeems the code.
        let (r, base) = self.pick();
        replicas[3] = r;
        let t = Instant::now();
        let res = self
            .http
            .post(format!("{base}/token"))
            .basic_auth(&self.client, Some(&self.secret))
            .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &self.redirect_uri)])
            .send()
            .await?;
        ensure!(res.status() == 200, "the token endpoint answered {}", res.status());
        let tokens: Value = res.json().await?;
        steps[3] = ms(t.elapsed());
        let sid = sid_of(tokens["id_token"].as_str().context("no id_token")?)?;
        // 5. Signing out.
        let (r, base) = self.pick();
        replicas[4] = r;
        let logout_sent = Instant::now();
        let res = self
            .http
            .post(format!("{base}/logout/confirm"))
            .header(reqwest::header::COOKIE, format!("adieu_csrf={csrf}; adieu_session={session}"))
            .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
            .send()
            .await?;
        let status = res.status();
        let body = res.text().await?;
        steps[4] = ms(logout_sent.elapsed());
        ensure!(status == 200 && body.contains("Your session has ended"), "logout answered {status}");
        Ok(Done { steps, sid, logout_sent, replicas })
    }
}

/// Runs `count` cycles, `VUS` at a time.
async fn cycles(cycle: &Cycle, count: usize) -> Result<Vec<Done>> {
    let left = Arc::new(AtomicUsize::new(count));
    let mut jobs = JoinSet::new();
    for _ in 0..VUS.min(count) {
        let (cycle, left) = (cycle.clone(), left.clone());
        jobs.spawn(async move {
            let mut done = Vec::new();
            while left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                done.push(cycle.run().await?);
            }
            anyhow::Ok(done)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(done) = join_next(&mut jobs).await? {
        all.extend(done);
    }
    Ok(all)
}

/// One run: `replicas` servers on `db`, a warm-up, then `count` measured cycles.
async fn run_once(
    opts: &Opts,
    db: &Db,
    replicas: usize,
    logout_wait_ms: u64,
    count: usize,
    warmup: usize,
) -> Result<RunResult> {
    let label = match db {
        Db::Sqlite => format!("SQLite, {replicas} replica"),
        Db::Postgres { .. } => format!("PostgreSQL, {replicas} replicas"),
    };
    let label = format!("{label}, `logout_wait_ms` = {logout_wait_ms}");
    eprintln!("(f) {label}: preparing…");
    let mut receivers = Receivers::start(1, opts.hosts, |_| Behaviour::Answer, Verify::All).await?;
    receivers.peek_subjects();
    let rx_addr = receivers.addrs[0];
    let mut env: Vec<(&str, String)> = vec![("ADIEU_DELIVERY__LOGOUT_WAIT_MS", logout_wait_ms.to_string())];
    if let Some(url) = db.url() {
        env.push(("ADIEU_DATABASE_URL", url));
        env.push(("ADIEU_DATABASE__REPLICA_ID", "load-1".into()));
    }
    let prepared = Prepared::new(&opts.adieu, &[], &env, &[]).await?;
    let redirect_uri = format!("http://{rx_addr}/cb");
    let out = prepared
        .cli(&[
            "client",
            "add",
            "--name",
            "Load app",
            "--client-id",
            &client_id(0),
            "--redirect-uri",
            &redirect_uri,
            "--backchannel-logout-uri",
            &format!("http://{rx_addr}/backchannel"),
            "--id-token-signed-response-alg",
            "ES256",
        ])
        .await?;
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .context("client add printed no secret")?
        .trim()
        .to_owned();
    let issuer = prepared.base().to_owned();
    let mut more = Vec::new();
    for r in 2..=replicas {
        more.push(
            prepared
                .replica(&[("ADIEU_ISSUER", issuer.clone()), ("ADIEU_DATABASE__REPLICA_ID", format!("load-{r}"))])?,
        );
    }
    let mut providers: Vec<Provider> = vec![prepared.serve().await?];
    for p in more {
        providers.push(p.serve().await?);
    }
    receivers.set_verifier(providers[0].verifier().await?)?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(VUS * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let cycle = Cycle {
        http,
        bases: Arc::new(providers.iter().map(|p| p.base.clone()).collect()),
        next: Arc::new(AtomicUsize::new(0)),
        client: client_id(0),
        secret,
        redirect_uri,
    };

    eprintln!("(f) {label}: {warmup} warm-up cycles…");
    cycles(&cycle, warmup).await?;
    for p in &providers {
        p.wait_idle(Duration::from_secs(60)).await?;
    }
    receivers.collect(warmup, Duration::from_secs(60)).await.context("warm-up deliveries")?;

    // CPU from here: the replicas, their database backends, this process, the machine.
    let ticks = clock_ticks();
    let replica_pids: Vec<u32> = providers.iter().map(|p| p.pid).collect();
    let postgres = matches!(db, Db::Postgres { .. });
    let pg_all0 = if postgres { cpu_of(&postgres_pids(), ticks) } else { HashMap::new() };
    let backends0 = match db {
        Db::Postgres { base_url, .. } => cpu_of(&backend_pids(base_url, "load-").await?, ticks),
        Db::Sqlite => HashMap::new(),
    };
    let (m0, i0, r0, h0) =
        (machine_busy_secs(ticks), interrupt_secs(ticks), cpu_of(&replica_pids, ticks), cpu_secs("self", ticks));

    // Receipts are matched to cycles by sid while the cycles run.
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let collector = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while let Ok(r) = receivers.next(tokio::time::Instant::now() + Duration::from_secs(600)).await {
                match (r.verified, r.subject) {
                    (Some(Ok(_)), Some((_, sid))) => arrivals.lock().expect("not poisoned").push((sid, r.at)),
                    (v, _) => failures.push(format!("{v:?}")),
                }
            }
            failures
        })
    };
    let load_before = loadavg();
    eprintln!("(f) {label}: {count} cycles, {VUS} at a time…");
    let t0 = Instant::now();
    let done = cycles(&cycle, count).await?;
    let wall = t0.elapsed().as_secs_f64();
    // Every logout's delivery, within a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().expect("not poisoned").len() < count {
        ensure!(
            Instant::now() < deadline,
            "only {} of {count} deliveries arrived",
            arrivals.lock().expect("not poisoned").len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (machine, interrupts) = (machine_busy_secs(ticks) - m0, interrupt_secs(ticks) - i0);
    let (r1, h1) = (cpu_of(&replica_pids, ticks), cpu_secs("self", ticks));
    let (pg_all1, backends1) = match db {
        // Backends the pools opened during the run count too (from zero).
        Db::Postgres { base_url, .. } => {
            (cpu_of(&postgres_pids(), ticks), cpu_of(&backend_pids(base_url, "load-").await?, ticks))
        }
        Db::Sqlite => (HashMap::new(), HashMap::new()),
    };
    let cpu = Cpu {
        wall: t0.elapsed().as_secs_f64(),
        machine,
        replicas: used_between(&r0, &r1),
        backends: used_between(&backends0, &backends1),
        postgres: used_between(&pg_all0, &pg_all1),
        interrupts,
        harness: h1 - h0,
    };
    let load_after = loadavg();
    for p in &providers {
        p.wait_idle(Duration::from_secs(60)).await?;
    }
    collector.abort();
    let arrivals = std::mem::take(&mut *arrivals.lock().expect("not poisoned"));

    let mut first: HashMap<&str, Instant> = HashMap::new();
    let mut duplicates = 0;
    for (sid, at) in &arrivals {
        if first.insert(sid.as_str(), *at).is_some() {
            duplicates += 1;
        }
    }
    let mut lag = Vec::with_capacity(count);
    for d in &done {
        let Some(at) = first.get(d.sid.as_str()) else { bail!("the logout of sid {} was never delivered", d.sid) };
        lag.push(ms(at.saturating_duration_since(d.logout_sent)));
    }
    let steps = (0..STEPS.len()).map(|i| done.iter().map(|d| d.steps[i]).collect()).collect();
    let mut per_replica = vec![0; replicas];
    for d in &done {
        for r in d.replicas {
            per_replica[r] += 1;
        }
    }
    let (mut warns, mut errors) = (0, 0);
    for p in &providers {
        let (w, e) = p.log_levels();
        warns += w;
        errors += e;
    }
    for p in providers {
        p.stop().await?;
    }
    Ok(RunResult {
        label,
        logout_wait_ms: logout_wait_ms as f64,
        postgres,
        cycles: count,
        wall,
        steps,
        lag,
        per_replica,
        duplicates,
        cpu,
        load_before,
        load_after,
        warns,
        errors,
    })
}

/// The 1-, 5- and 15-minute load averages from `/proc/loadavg`.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Creates a fresh schema; its name.
async fn create_schema(base_url: &str) -> Result<String> {
    let mut conn = sqlx::PgConnection::connect(base_url)
        .await
        .with_context(|| format!("PostgreSQL at {base_url} (set ADIEU_TEST_POSTGRES_URL)"))?;
    let name: String = sqlx::query_scalar("SELECT 'bench_load_' || replace(gen_random_uuid()::text, '-', '')")
        .fetch_one(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await?;
    let _ = conn.close().await;
    Ok(name)
}

async fn drop_schema(base_url: &str, name: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(base_url).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut conn).await?;
    let _ = conn.close().await;
    Ok(())
}

fn report(r: &RunResult) {
    let cycles_per_s = r.cycles as f64 / r.wall;
    println!("### {}: {} cycles, {VUS} virtual users, {:.1} s\n", r.label, r.cycles, r.wall);
    println!("| step | requests/s | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for (name, samples) in STEPS.iter().zip(&r.steps) {
        let s = stats(samples);
        println!("| `{name}` | {:.1} | {:.1} ms | {:.1} ms | {:.1} ms |", cycles_per_s, s.median, s.p99, s.max);
    }
    // The sign-out page waits for this process's worker only; a page that waited the whole budget
    // most likely had its delivery sent by another replica's worker.
    let waited = r.steps[4].iter().filter(|&&t| r.logout_wait_ms > 0.0 && t >= r.logout_wait_ms).count();
    let l = stats(&r.lag);
    println!(
        "| delivery lag (logout sent → receiver holds the verified token) | | {:.1} ms | {:.1} ms | {:.1} ms |",
        l.median, l.p99, l.max
    );
    println!();
    let c = &r.cpu;
    let cores = std::thread::available_parallelism().map_or(2, usize::from) as f64;
    println!(
        "- Throughput: **{cycles_per_s:.1} sign-in + sign-out cycles/s** ({:.1} requests/s). Requests per replica: {:?}.",
        cycles_per_s * STEPS.len() as f64,
        r.per_replica
    );
    println!(
        "- Sign-out pages that waited the whole `logout_wait_ms` ({:.0} ms): {waited} of {} ({:.1}%).",
        r.logout_wait_ms,
        r.cycles,
        waited as f64 / r.cycles as f64 * 100.0
    );
    println!(
        "- Every logout delivered: {} tokens verified for {} cycles, {} duplicates; server logs: {} WARN, {} ERROR lines.",
        r.lag.len() + r.duplicates,
        r.cycles,
        r.duplicates,
        r.warns,
        r.errors
    );
    let database = if r.postgres {
        format!(
            "PostgreSQL {:.1} CPU-s (of which the backends of these replicas' connections {:.1}; the rest is \
             the server's own processes and other clients' backends), ",
            c.postgres, c.backends
        )
    } else {
        String::new()
    };
    println!(
        "- CPU over the measured part ({:.1} s wall, {:.1} CPU-s available): adieu {} {:.1} CPU-s \
         ({:.1} ms per cycle), {database}kernel interrupts (mostly loopback networking) {:.1} CPU-s, load \
         generator and receiver {:.1} CPU-s, **other processes {:.1} CPU-s ({:.0}% of the machine)**.",
        c.wall,
        c.wall * cores,
        if r.postgres { "replicas" } else { "replica" },
        c.replicas,
        c.replicas / r.cycles as f64 * 1000.0,
        c.interrupts,
        c.harness,
        c.other(),
        c.other() / (c.wall * cores) * 100.0
    );
    println!("- Load average (1, 5, 15 min) before the measured cycles: {}; after: {}.\n", r.load_before, r.load_after);
}

pub(crate) async fn run(opts: &Opts) -> Result<Vec<Verdict>> {
    let (count, warmup) = if opts.quick { (60, 12) } else { (1200, 48) };
    let base_url = std::env::var("ADIEU_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut runs = Vec::new();
    // Two replicas on PostgreSQL with the default sign-out wait, then without it (the sign-out page
    // waits only for deliveries its own replica sends), then one replica on SQLite.
    for wait in [LOGOUT_WAIT_MS, 0] {
        let schema = create_schema(&base_url).await?;
        let db = Db::Postgres { base_url: base_url.clone(), schema: schema.clone() };
        let run = run_once(opts, &db, 2, wait, count, warmup).await;
        if let Err(e) = drop_schema(&base_url, &schema).await {
            eprintln!("(f) could not drop schema {schema}: {e:#}");
        }
        runs.push(run?);
    }
    runs.push(run_once(opts, &Db::Sqlite, 1, LOGOUT_WAIT_MS, count, warmup).await?);

    println!("## (f) Load: sign-in and sign-out cycles, two PostgreSQL replicas and one SQLite replica\n");
    println!(
        "Each cycle is `GET /authorize` → `GET /login` → `POST /login` (argon2id) → `POST /token` → \
         `POST /logout/confirm` with a fresh browser, then the back-channel delivery of its logout to \
         one receiver, which verifies every token (ES256). {VUS} cycles run at a time, back to back, \
         after a warm-up; every request goes to the next replica in turn. One user signs in over and \
         over (sign-in limits lifted). The sign-out page waits for the first delivery attempt up to \
         `logout_wait_ms` (default 1 s; 0 in the second PostgreSQL run). Requests/s per step equals \
         cycles/s: each cycle makes one request of each.\n"
    );
    for r in &runs {
        report(r);
    }
    let mut verdicts = Vec::new();
    for r in &runs {
        verdicts.push(Verdict {
            what: format!("(f) load, {}: every logout delivered once", r.label),
            target: format!("{} of {}", r.cycles, r.cycles),
            measured: format!(
                "{} delivered, {} duplicates; {:.1} cycles/s",
                r.lag.len(),
                r.duplicates,
                r.cycles as f64 / r.wall
            ),
            pass: r.lag.len() == r.cycles && r.duplicates == 0,
        });
    }
    Ok(verdicts)
}
