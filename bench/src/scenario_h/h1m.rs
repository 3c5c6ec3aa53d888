//! Scenario **h1m**: a million back-channel deliveries on two PostgreSQL replicas.
//!
//! 1. 1,000 receivers (each its own loopback host) and two `adieu serve` replicas (`h-1`, `h-2`, each
//!    with its delivery worker) on a fresh PostgreSQL database, 1,000 ES256 clients subscribed to
//!    `session-revoked`, `logout_wait_ms = 0`, other settings default.
//! 2. 100 users with 10 open sessions each, every client a participant of every session: 1,000,000
//!    participations, seeded with SQL before the replicas start (see [`super::cluster`]).
//! 3. Each user's sessions are ended with `DELETE /api/v1/users/{id}/sessions` (10,000 deliveries
//!    per call), the calls alternating between the replicas, 4 in flight.
//! 4. The receivers read every token's `sid` and `jti` (unverified) and fully verify a 1-in-1,000
//!    sample. The run waits until every (client, `sid`) has arrived once, then until both queues are
//!    empty, and counts later arrivals as duplicates.
//!
//! Measured: that all arrive (distinct (client, `sid`) pairs, distinct `jti`s, duplicates),
//! throughput (first → last arrival, and first request → last arrival), each replica's share and
//! peak resident memory (`VmHWM`), and CPU per delivery of the replicas and of PostgreSQL.

use super::Tracker;
use super::cluster::{Api, Backend, Cluster, Seed};
use crate::harness::{Behaviour, Hosts, Receivers, Verify, join_next};
use crate::scenario_f::used_between;
use crate::{Opts, Verdict};
use anyhow::{Result, ensure};
use jsonwebtoken::Algorithm;
use std::time::{Duration, Instant};
use tokio::task::{JoinHandle, JoinSet};

const CLIENTS: usize = 1_000;
const DELIVERIES: usize = 1_000_000;
const SESSIONS_PER_USER: usize = 10;
const CALLS_IN_FLIGHT: usize = 4;
/// The bound of scenario (d), for each replica.
const MEMORY_MB: f64 = 150.0;

/// What the run measured.
#[derive(Debug)]
struct Measured {
    total: usize,
    distinct: usize,
    duplicates: usize,
    jtis: usize,
    sampled: usize,
    /// First → last arrival, s.
    spread: f64,
    /// First request → last arrival, s.
    to_last: f64,
    /// First request → last request answered, s.
    ends: f64,
    cpu: f64,
    backends_cpu: f64,
    postgres_cpu: f64,
    per_replica: Vec<u64>,
    peak_kib: Vec<u64>,
    retries: u64,
    dead: u64,
    log: (usize, usize),
    harness_peak_kib: u64,
}

/// Ends every seeded user's sessions, `CALLS_IN_FLIGHT` at a time, replicas in turn; the time from
/// the first request to the last answer.
fn end_all(api: Api, seeds: Vec<Seed>) -> JoinHandle<Result<f64>> {
    tokio::spawn(async move {
        let t0 = Instant::now();
        let mut jobs = JoinSet::new();
        for (i, seed) in seeds.into_iter().enumerate() {
            if jobs.len() >= CALLS_IN_FLIGHT {
                join_next(&mut jobs).await?;
            }
            let api = api.clone();
            jobs.spawn(async move {
                let ended = api.end_user_sessions(i, &seed.user).await?;
                ensure!(ended == seed.sessions, "{}: {ended} sessions ended, {} seeded", seed.user, seed.sessions);
                Ok(())
            });
        }
        while join_next(&mut jobs).await?.is_some() {}
        Ok(t0.elapsed().as_secs_f64())
    })
}

/// This process's `VmHWM`, KiB.
fn own_peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

async fn measure(cluster: &Cluster, receivers: &mut Receivers, seeds: &[Seed]) -> Result<Measured> {
    receivers.set_verifier(cluster.verifier(Algorithm::ES256).await?)?;
    let total: usize = seeds.iter().map(Seed::deliveries).sum();
    let delivered0 = cluster.attempts("delivered").await?;
    let (cpu0, pg0) = (cluster.cpu().await?, cluster.postgres_cpu());
    eprintln!("(h1m) ending {} users' sessions → {total} deliveries…", seeds.len());
    let t0 = Instant::now();
    let driver = end_all(cluster.api.clone(), seeds.to_vec());
    let mut tracker = Tracker::new("h1m-");
    tracker.until(receivers, total, true).await?;
    let ends = driver.await??;
    cluster.wait_idle(Duration::from_secs(600)).await?;
    let (cpu, backends_cpu) = cluster.cpu_since(&cpu0).await?;
    let postgres_cpu = used_between(&pg0, &cluster.postgres_cpu());
    tracker.settle(receivers).await;
    tracker.check()?;
    let delivered = cluster.attempts("delivered").await?;
    Ok(Measured {
        total,
        distinct: tracker.seen.len(),
        duplicates: tracker.duplicates,
        jtis: tracker.jtis.len(),
        sampled: tracker.sampled,
        spread: tracker.spread(),
        to_last: tracker.last.map_or(0.0, |l| (l - t0).as_secs_f64()),
        ends,
        cpu,
        backends_cpu,
        postgres_cpu,
        per_replica: delivered.iter().zip(&delivered0).map(|(a, b)| a - b).collect(),
        peak_kib: cluster.peak_memory_kib()?,
        retries: cluster.attempts("retry").await?.iter().sum(),
        dead: cluster.attempts("dead").await?.iter().sum(),
        log: cluster.log_levels(),
        harness_peak_kib: own_peak_kib(),
    })
}

fn report(m: &Measured, users: usize, clients: usize, seed_secs: f64) {
    let mb = |kib: u64| kib as f64 / 1024.0;
    let per = |s: f64| s / m.distinct as f64 * 1e6;
    println!("## (h1m) {} deliveries on two PostgreSQL replicas\n", m.total);
    println!(
        "{users} users × {SESSIONS_PER_USER} sessions × {clients} clients, seeded with SQL; each user's sessions \
         ended by `DELETE /api/v1/users/{{id}}/sessions`, replicas in turn, {CALLS_IN_FLIGHT} calls in flight. \
         Receivers count every (client, `sid`) and verify a 1-in-1,000 sample.\n"
    );
    println!(
        "| deliveries | distinct (client, sid) | duplicates | distinct jti | first → last arrival | deliveries/s \
         | first request → last arrival | delivered by h-1 / h-2 | VmHWM h-1 / h-2 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---|");
    let share: Vec<String> = m.per_replica.iter().map(u64::to_string).collect();
    let peaks: Vec<String> = m.peak_kib.iter().map(|k| format!("{:.1} MB", mb(*k))).collect();
    println!(
        "| {} | {} | {} | {} | {:.1} s | {:.0} | {:.1} s | {} | {} |\n",
        m.total,
        m.distinct,
        m.duplicates,
        m.jtis,
        m.spread,
        m.distinct as f64 / m.spread,
        m.to_last,
        share.join(" / "),
        peaks.join(" / "),
    );
    println!(
        "- CPU per delivery: replicas {:.0} µs, their PostgreSQL backends {:.0} µs, all PostgreSQL processes {:.0} µs.",
        per(m.cpu),
        per(m.backends_cpu),
        per(m.postgres_cpu)
    );
    println!(
        "- The last end-sessions call was answered {:.1} s after the first request; counters: {} retries, {} dead; \
         {} verified samples; server logs {} WARN, {} ERROR lines.",
        m.ends, m.retries, m.dead, m.sampled, m.log.0, m.log.1
    );
    println!(
        "- Seeding (not measured above): {seed_secs:.1} s. This harness's own peak memory: {:.0} MB.\n",
        mb(m.harness_peak_kib)
    );
}

/// Runs scenario h1m.
pub(crate) async fn run(opts: &Opts) -> Result<Vec<Verdict>> {
    let clients = if opts.quick { 100 } else { CLIENTS };
    let requested = opts.deliveries.unwrap_or(if opts.quick { 10_000 } else { DELIVERIES });
    let sessions = (requested / clients).max(1);
    let per_user = SESSIONS_PER_USER.min(sessions);
    let users = sessions / per_user;
    let seeds: Vec<Seed> =
        (0..users).map(|u| Seed { user: format!("h1m-{u:05}"), sessions: per_user, clients }).collect();
    eprintln!("(h1m) {clients} receivers; {users} users × {per_user} sessions × {clients} clients…");
    let verify = if opts.verify_all { Verify::All } else { Verify::Sample(1000) };
    // One host per receiver, whatever --shared-host says (see scenario h).
    let mut receivers = Receivers::start(clients, Hosts::Distinct, |_| Behaviour::Answer, verify).await?;
    receivers.peek_subjects();
    let cluster = Cluster::start(opts, Backend::Postgres, "ES256", &receivers.addrs, &seeds).await?;
    let seed_secs = cluster.seed_secs;
    let result = measure(&cluster, &mut receivers, &seeds).await;
    let stopped = cluster.stop().await;
    let m = result?;
    stopped?;
    report(&m, users, clients, seed_secs);
    let peak_mb = m.peak_kib.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
    Ok(vec![
        Verdict {
            what: format!("(h1m) all {} deliveries arrive, two PostgreSQL replicas", m.total),
            target: "every (client, sid) once".into(),
            measured: format!(
                "{} distinct, {} duplicates, {:.0}/s",
                m.distinct,
                m.duplicates,
                m.distinct as f64 / m.spread
            ),
            pass: m.distinct == m.total && m.duplicates == 0,
        },
        Verdict {
            what: "(h1m) peak memory per replica".into(),
            target: format!("< {MEMORY_MB:.0} MB (the bound of (d))"),
            measured: format!("{peak_mb:.1} MB (largest VmHWM)"),
            pass: peak_mb < MEMORY_MB,
        },
    ])
}
