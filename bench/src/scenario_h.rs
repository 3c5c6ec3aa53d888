//! Scenario **h** ("mass logout near the limit"): how close the provider's delivery comes to a
//! reference loop that does only what a delivery must (`adieu-ref-loop`: sign a fresh logout token
//! with a pre-parsed key and POST it, see `bench/src/bin/ref_loop.rs`), against the same receivers,
//! at the same concurrency, in the same run.
//!
//! For each configuration, {SQLite (one replica), PostgreSQL (two replicas, each with its delivery
//! worker)} × {ES256, RS256} × {receivers that keep connections alive, receivers that answer
//! `Connection: close`, so every POST needs a new connection}:
//!
//! 1. 200 receivers (each its own loopback host) and a fresh provider ([`cluster`]): 200 clients
//!    signing with the algorithm, subscribed to `session-revoked`, `logout_wait_ms = 0`, other
//!    settings default; per receiver kind, a user with 100 open sessions in each of which all 200
//!    clients took part (seeded with SQL before the servers start), a warm-up session, and 21
//!    sessions with 50 clients each.
//! 2. Warm-up: one session with 200 participations is ended (opens the provider's connections).
//! 3. **(a) provider mass logout**: one admin action, `DELETE /api/v1/users/{id}/sessions`, ends the
//!    100 sessions: 20,000 deliveries. Rate = deliveries / (first receipt → last receipt). CPU =
//!    utime + stime of every `adieu serve` process from just before the request until every
//!    replica's queue is empty, divided by the deliveries (the PostgreSQL backends serving the
//!    replicas are reported beside it).
//! 4. **(b) reference mass logout**: `adieu-ref-loop` sends 20,000 tokens to the same 200 receivers
//!    with 256 in flight per provider worker (`delivery.global_concurrency`, default 256; 512 for two
//!    replicas), after a warm-up of one token per receiver. Rate as in (a); CPU = the process's
//!    utime + stime over the round, read from `/proc/<pid>/stat` like the provider's.
//! 5. **(c) N = 50**: 20 rounds, alternating: the provider ends one session with 50 participations
//!    (`DELETE /api/v1/sessions/{id}`, replicas in turn), and the reference loop sends 50 tokens to
//!    the same 50 receivers. Each: from the request (for the reference: writing its "go" line) to
//!    the moment the last of the 50 receivers holds a verified token. One warm-up round each.
//!
//! Receivers read every token's `sub`, `sid` and `jti` (unverified) and count each (client, `sid`)
//! once; in the mass logouts they fully verify a 1-in-100 sample (`--verify-all`: every token), in
//! the N = 50 rounds every token. Targets: rate ratio (provider / reference) ≥ 0.5, CPU ratio
//! (provider / reference, per delivery) ≤ 2, N = 50 ratio (median provider / median reference) ≤ 2,
//! for ES256 on SQLite and on two PostgreSQL replicas; RS256 is reported.
//!
//! Scenario **h1m** ([`h1m`]): a million deliveries on two PostgreSQL replicas.

mod cluster;
mod h1m;
mod reference;
mod report;

pub(crate) use h1m::run as run_1m;

use crate::harness::{Behaviour, Hosts, Receipt, Receivers, Verify};
use crate::{Opts, Verdict, ms, stats};
use anyhow::{Context, Result, bail, ensure};
use cluster::{Backend, Cluster, Seed};
use jsonwebtoken::Algorithm;
use reference::{RefKey, RefLoop, RefPlan, targets_file};
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::time::{Duration, Instant};

/// Clients (and receivers) of the mass logout; `--quick`: 50.
const CLIENTS: usize = 200;
/// Deliveries of the mass logout (`--deliveries` overrides; `--quick`: 1,000).
const DELIVERIES: usize = 20_000;
/// Receivers of the fan-out rounds.
const N50: usize = 50;
/// Counted fan-out rounds (`--quick`: 3).
const ROUNDS: usize = 20;
/// The provider's default `delivery.global_concurrency`: attempts in flight per worker.
const WORKER_CONCURRENCY: usize = 256;
/// A mass logout fails if nothing arrives for this long.
const STALL: Duration = Duration::from_secs(60);
const RATE_TARGET: f64 = 0.5;
const CPU_TARGET: f64 = 2.0;
const N50_TARGET: f64 = 2.0;

/// How the receivers treat connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Receiving {
    KeepAlive,
    /// `Connection: close` on every answer: a new TCP connection per POST.
    Close,
}

impl Receiving {
    fn label(self) -> &'static str {
        match self {
            Receiving::KeepAlive => "kept alive",
            Receiving::Close => "connection per POST",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Receiving::KeepAlive => "keep",
            Receiving::Close => "close",
        }
    }
}

/// Sizes of one configuration.
#[derive(Debug, Clone, Copy)]
struct Plan {
    clients: usize,
    /// Sessions of the mass logout's user.
    sessions: usize,
    rounds: usize,
}

impl Plan {
    fn new(opts: &Opts) -> Plan {
        let clients = if opts.quick { N50 } else { CLIENTS };
        let deliveries = opts.deliveries.unwrap_or(if opts.quick { 1_000 } else { DELIVERIES });
        Plan { clients, sessions: (deliveries / clients).max(1), rounds: if opts.quick { 3 } else { ROUNDS } }
    }

    fn warm(self, r: Receiving) -> Seed {
        Seed { user: format!("h-{}-warm", r.tag()), sessions: 1, clients: self.clients }
    }

    fn mass(self, r: Receiving) -> Seed {
        Seed { user: format!("h-{}-mass", r.tag()), sessions: self.sessions, clients: self.clients }
    }

    fn fan_out(self, r: Receiving) -> Seed {
        Seed { user: format!("h-{}-n50", r.tag()), sessions: self.rounds + 1, clients: N50 }
    }

    fn seeds(self) -> Vec<Seed> {
        [Receiving::KeepAlive, Receiving::Close]
            .into_iter()
            .flat_map(|r| [self.warm(r), self.mass(r), self.fan_out(r)])
            .collect()
    }
}

/// The receivers' verification in the mass logouts.
fn mass_verify(opts: &Opts) -> Verify {
    if opts.verify_all { Verify::All } else { Verify::Sample(100) }
}

// ------------------------------------------------------------------------------------------------
// Counting arrivals

/// What arrived during one mass logout: each (receiver, `sid`) once, the rest as duplicates.
#[derive(Debug)]
struct Tracker {
    /// Every expected `sid` starts with it (and ends with `.{receiver index}`).
    prefix: String,
    seen: HashSet<(usize, Box<str>)>,
    /// Hashes of the `jti`s seen.
    jtis: HashSet<u64>,
    hasher: RandomState,
    duplicates: usize,
    first: Option<Instant>,
    last: Option<Instant>,
    sampled: usize,
    invalid: usize,
    wrong: usize,
    examples: Vec<String>,
}

impl Tracker {
    fn new(prefix: impl Into<String>) -> Tracker {
        Tracker {
            prefix: prefix.into(),
            seen: HashSet::new(),
            jtis: HashSet::new(),
            hasher: RandomState::new(),
            duplicates: 0,
            first: None,
            last: None,
            sampled: 0,
            invalid: 0,
            wrong: 0,
            examples: Vec::new(),
        }
    }

    fn note(&mut self, what: String) {
        self.wrong += 1;
        if self.examples.len() < 5 {
            self.examples.push(what);
        }
    }

    fn add(&mut self, r: Receipt) {
        match &r.verified {
            Some(Ok(_)) => self.sampled += 1,
            Some(Err(e)) => {
                self.sampled += 1;
                self.invalid += 1;
                self.note(format!("receiver {}: invalid token: {e}", r.receiver));
            }
            None => {}
        }
        if let Some(jti) = &r.jti {
            self.jtis.insert(self.hasher.hash_one(jti));
        }
        let Some((_, sid)) = r.subject else { return self.note(format!("receiver {}: no sid", r.receiver)) };
        if !sid.starts_with(&self.prefix) || !sid.ends_with(&format!(".{}", r.receiver)) {
            return self.note(format!("receiver {}: unexpected sid {sid}", r.receiver));
        }
        if self.seen.insert((r.receiver, sid.into())) {
            self.first = Some(self.first.map_or(r.at, |f| f.min(r.at)));
            self.last = Some(self.last.map_or(r.at, |l| l.max(r.at)));
        } else {
            self.duplicates += 1;
        }
    }

    /// Receives until `total` distinct tokens have arrived; fails if none comes for [`STALL`].
    async fn until(&mut self, receivers: &mut Receivers, total: usize, progress: bool) -> Result<()> {
        while self.seen.len() < total {
            let deadline = tokio::time::Instant::now() + STALL;
            let r = receivers.next(deadline).await.with_context(|| {
                format!("{} of {total} distinct tokens had arrived, then none for {STALL:?}", self.seen.len())
            })?;
            self.add(r);
            if progress && self.seen.len().is_multiple_of(100_000) {
                eprintln!("    {} of {total} delivered", self.seen.len());
            }
        }
        Ok(())
    }

    /// Takes in whatever still arrives (a second arrival is a duplicate) until 300 ms pass quietly.
    async fn settle(&mut self, receivers: &mut Receivers) {
        while let Ok(r) = receivers.next(tokio::time::Instant::now() + Duration::from_millis(300)).await {
            self.add(r);
        }
    }

    fn check(&self) -> Result<()> {
        ensure!(self.wrong == 0, "{} wrong tokens, e.g. {:?}", self.wrong, self.examples);
        Ok(())
    }

    /// First → last distinct arrival, seconds.
    fn spread(&self) -> f64 {
        self.first.zip(self.last).map_or(0.0, |(f, l)| (l - f).as_secs_f64())
    }
}

/// One mass logout, by the provider or by the reference loop.
#[derive(Debug, Clone, Default)]
struct Mass {
    deliveries: usize,
    /// First → last arrival, s.
    spread: f64,
    /// The request (or "go") → last arrival, s.
    to_last: f64,
    /// CPU seconds of the sending processes.
    cpu: f64,
    /// CPU seconds of the PostgreSQL backends serving the replicas (0 otherwise).
    db_cpu: f64,
    duplicates: usize,
    jtis: usize,
    sampled: usize,
    /// Deliveries per replica (provider only).
    per_replica: Vec<u64>,
}

impl Mass {
    fn new(t: &Tracker, t0: Instant, cpu: f64, db_cpu: f64) -> Mass {
        Mass {
            deliveries: t.seen.len(),
            spread: t.spread(),
            to_last: t.last.map_or(0.0, |l| (l - t0).as_secs_f64()),
            cpu,
            db_cpu,
            duplicates: t.duplicates,
            jtis: t.jtis.len(),
            sampled: t.sampled,
            per_replica: Vec::new(),
        }
    }

    fn rate(&self) -> f64 {
        self.deliveries as f64 / self.spread
    }

    fn cpu_us(&self) -> f64 {
        self.cpu / self.deliveries as f64 * 1e6
    }

    fn db_us(&self) -> f64 {
        self.db_cpu / self.deliveries as f64 * 1e6
    }
}

/// The fan-out rounds of one configuration, ms.
#[derive(Debug, Clone, Default)]
struct FanOut {
    provider: Vec<f64>,
    reference: Vec<f64>,
    /// The reference loop's own time to its last 2xx.
    reference_self: Vec<f64>,
}

/// One configuration's results.
#[derive(Debug)]
struct Row {
    backend: Backend,
    alg: &'static str,
    receiving: Receiving,
    provider: Mass,
    reference: Mass,
    fan_out: FanOut,
    seed_secs: f64,
}

impl Row {
    fn rate_ratio(&self) -> f64 {
        self.provider.rate() / self.reference.rate()
    }

    fn cpu_ratio(&self) -> f64 {
        self.provider.cpu_us() / self.reference.cpu_us()
    }

    fn n50_ratio(&self) -> f64 {
        stats(&self.fan_out.provider).median / stats(&self.fan_out.reference).median
    }
}

// ------------------------------------------------------------------------------------------------
// The phases

/// Ends the warm-up session (one token per client) and waits until it is all recorded.
async fn warm_up(cluster: &Cluster, receivers: &mut Receivers, seed: &Seed) -> Result<()> {
    cluster.api.end_session(0, &seed.session_id(0)).await?;
    let got = receivers.collect(seed.clients, Duration::from_secs(60)).await.context("provider warm-up")?;
    ensure!(!got.iter().any(|r| matches!(r.verified, Some(Err(_)))), "an invalid token in the warm-up");
    cluster.wait_idle(Duration::from_secs(60)).await
}

/// (a) One admin action ends all sessions of `seed`'s user; waits for every delivery.
async fn provider_mass(cluster: &Cluster, receivers: &mut Receivers, seed: &Seed) -> Result<Mass> {
    eprintln!("(h)   provider: {} deliveries…", seed.deliveries());
    let delivered0 = cluster.attempts("delivered").await?;
    let cpu0 = cluster.cpu().await?;
    let t0 = Instant::now();
    let ended = cluster.api.end_user_sessions(0, &seed.user).await?;
    ensure!(ended == seed.sessions, "{ended} sessions ended, {} seeded", seed.sessions);
    let mut tracker = Tracker::new(format!("{}-", seed.user));
    tracker.until(receivers, seed.deliveries(), false).await?;
    cluster.wait_idle(Duration::from_secs(120)).await?;
    let (cpu, db_cpu) = cluster.cpu_since(&cpu0).await?;
    tracker.settle(receivers).await;
    tracker.check()?;
    let mut m = Mass::new(&tracker, t0, cpu, db_cpu);
    m.per_replica = cluster.attempts("delivered").await?.iter().zip(&delivered0).map(|(a, b)| a - b).collect();
    Ok(m)
}

/// (b) The reference loop sends `deliveries` tokens to the receivers in `targets`.
async fn reference_mass(
    receivers: &mut Receivers,
    key: &RefKey,
    targets: &Path,
    clients: usize,
    plan: RefPlan,
) -> Result<Mass> {
    eprintln!("(h)   reference loop: {} deliveries, {} in flight…", plan.deliveries, plan.concurrency);
    let mut rl = RefLoop::start(targets, key, plan).await?;
    let warm = receivers.collect(clients, Duration::from_secs(10)).await.context("reference warm-up")?;
    ensure!(!warm.iter().any(|r| matches!(r.verified, Some(Err(_)))), "an invalid reference token");
    let cpu0 = rl.cpu_secs();
    let t0 = Instant::now();
    rl.go().await?;
    let mut tracker = Tracker::new("ref0-");
    tracker.until(receivers, plan.deliveries, false).await?;
    rl.result().await?;
    let cpu = rl.cpu_secs() - cpu0;
    rl.finish().await?;
    tracker.settle(receivers).await;
    tracker.check()?;
    Ok(Mass::new(&tracker, t0, cpu, 0.0))
}

/// The latest arrival of one fan-out round, after checking that every receiver got one verified
/// token whose `sid` starts with `prefix` and names it.
fn last_verified(got: &[Receipt], prefix: &str) -> Result<Instant> {
    let mut seen = HashSet::new();
    for r in got {
        match &r.verified {
            Some(Ok(sid)) if sid.starts_with(prefix) && sid.ends_with(&format!(".{}", r.receiver)) => {}
            other => bail!("receiver {}: {other:?} (expected a verified sid {prefix}…)", r.receiver),
        }
        ensure!(seen.insert(r.receiver), "receiver {} got two tokens in one round", r.receiver);
    }
    got.iter().map(|r| r.at).max().context("no receipt")
}

/// One provider fan-out round: session `k` of `seed` ends at replica `k mod replicas`.
async fn provider_round(cluster: &Cluster, receivers: &mut Receivers, seed: &Seed, k: usize) -> Result<f64> {
    let id = seed.session_id(k);
    let t0 = Instant::now();
    cluster.api.end_session(k, &id).await?;
    let got = receivers.collect(seed.clients, Duration::from_secs(30)).await?;
    Ok(ms(last_verified(&got, &format!("{id}."))? - t0))
}

/// (c) The N = 50 rounds, provider and reference in turn, after a warm-up round each.
async fn fan_out(
    cluster: &Cluster,
    receivers: &mut Receivers,
    key: &RefKey,
    targets: &Path,
    seed: &Seed,
    concurrency: usize,
) -> Result<FanOut> {
    let rounds = seed.sessions - 1;
    eprintln!("(h)   N = {N50}: {rounds} rounds each…");
    receivers.set_verify(Verify::All);
    let mut rl = RefLoop::start(targets, key, RefPlan { deliveries: N50, concurrency, rounds }).await?;
    last_verified(&receivers.collect(N50, Duration::from_secs(10)).await?, "refw-")?;
    provider_round(cluster, receivers, seed, 0).await?;
    let mut out = FanOut::default();
    for r in 1..=rounds {
        cluster.wait_idle(Duration::from_secs(30)).await?;
        out.provider.push(provider_round(cluster, receivers, seed, r).await?);
        cluster.wait_idle(Duration::from_secs(30)).await?;
        let t0 = Instant::now();
        rl.go().await?;
        let got = receivers.collect(N50, Duration::from_secs(30)).await?;
        out.reference.push(ms(last_verified(&got, &format!("ref{}-", r - 1))? - t0));
        let report = rl.result().await?;
        out.reference_self.push(report["last_verified_ms"].as_f64().unwrap_or(f64::NAN));
    }
    rl.finish().await?;
    Ok(out)
}

/// Everything for one database and algorithm: both receiver kinds, each with (a), (b) and (c).
async fn configuration(opts: &Opts, backend: Backend, alg: &'static str, plan: Plan) -> Result<Vec<Row>> {
    // Always one host per receiver (whatever --shared-host says): the reference loop has no
    // per-host limit, so receivers sharing the provider's would not compare like with like.
    let mut receivers =
        Receivers::start(plan.clients, Hosts::Distinct, |_| Behaviour::Answer, mass_verify(opts)).await?;
    receivers.peek_subjects();
    let cluster = Cluster::start(opts, backend, alg, &receivers.addrs, &plan.seeds()).await?;
    let result = measure(opts, &cluster, &mut receivers, alg, plan).await;
    let stopped = cluster.stop().await;
    let rows = result?;
    stopped?;
    Ok(rows)
}

async fn measure(
    opts: &Opts,
    cluster: &Cluster,
    receivers: &mut Receivers,
    alg: &'static str,
    plan: Plan,
) -> Result<Vec<Row>> {
    let key = RefKey::generate(alg)?;
    let mut verifier = cluster.verifier(if alg == "RS256" { Algorithm::RS256 } else { Algorithm::ES256 }).await?;
    key.add_to(&mut verifier)?;
    receivers.set_verifier(verifier)?;
    let (all, fifty) = (targets_file(&receivers.addrs)?, targets_file(&receivers.addrs[..N50])?);
    let concurrency = WORKER_CONCURRENCY * cluster.backend.replicas();
    let mut rows = Vec::new();
    for receiving in [Receiving::KeepAlive, Receiving::Close] {
        eprintln!("(h) {}, {alg}, receivers: {}", cluster.backend.label(), receiving.label());
        receivers.close_connections(receiving == Receiving::Close);
        receivers.set_verify(mass_verify(opts));
        warm_up(cluster, receivers, &plan.warm(receiving)).await?;
        let mass = plan.mass(receiving);
        let provider = provider_mass(cluster, receivers, &mass).await?;
        let ref_plan = RefPlan { deliveries: mass.deliveries(), concurrency, rounds: 1 };
        let reference = reference_mass(receivers, &key, all.path(), plan.clients, ref_plan).await?;
        let fan_out = fan_out(cluster, receivers, &key, fifty.path(), &plan.fan_out(receiving), concurrency).await?;
        let seed_secs = cluster.seed_secs;
        rows.push(Row { backend: cluster.backend, alg, receiving, provider, reference, fan_out, seed_secs });
    }
    Ok(rows)
}

/// Runs scenario h: every configuration, then the table.
pub(crate) async fn run(opts: &Opts) -> Result<Vec<Verdict>> {
    let plan = Plan::new(opts);
    let total = plan.sessions * plan.clients;
    let mut rows = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for alg in ["ES256", "RS256"].into_iter().filter(|a| opts.algs.iter().any(|x| x.eq_ignore_ascii_case(a))) {
            rows.extend(configuration(opts, backend, alg, plan).await.with_context(|| format!("{backend:?} {alg}"))?);
        }
    }
    println!("## (h) Mass logout near the limit: the provider against a reference loop\n");
    println!(
        "{total} deliveries per mass logout ({} sessions × {} clients, ended by one \
         `DELETE /api/v1/users/{{id}}/sessions`), against `adieu-ref-loop` sending as many to the same \
         receivers with {WORKER_CONCURRENCY} in flight per provider worker. Rates from the first to the \
         last arrival at the receivers; CPU of the sending processes (utime + stime) per delivery; N=50: \
         from the request to the last of 50 receivers holding a verified token, {} rounds each, in turn. \
         Mass-logout receivers verify {}.\n",
        plan.sessions,
        plan.clients,
        plan.rounds,
        if opts.verify_all { "every token" } else { "a 1-in-100 sample and count the rest" },
    );
    report::print_table(&rows);
    rows.iter().for_each(report::print_details);
    println!();
    Ok(report::verdicts(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(receiver: usize, sid: &str, jti: &str) -> Receipt {
        Receipt {
            receiver,
            at: Instant::now(),
            verified: None,
            subject: Some(("sub".into(), sid.into())),
            jti: Some(jti.into()),
        }
    }

    #[test]
    fn tracker_counts_each_client_and_sid_once() {
        let mut t = Tracker::new("h-keep-mass-");
        t.add(receipt(0, "h-keep-mass-0.0", "a"));
        t.add(receipt(1, "h-keep-mass-0.1", "b"));
        // A second attempt of the same delivery: a fresh jti, the same (client, sid).
        t.add(receipt(0, "h-keep-mass-0.0", "c"));
        assert_eq!((t.seen.len(), t.duplicates, t.jtis.len()), (2, 1, 3));
        assert!(t.check().is_ok());
        // A sid of another client, and one of another run.
        t.add(receipt(2, "h-keep-mass-0.1", "d"));
        t.add(receipt(0, "h-close-mass-0.0", "e"));
        assert_eq!((t.seen.len(), t.wrong), (2, 2));
        assert!(t.check().is_err());
    }

    #[test]
    fn a_fan_out_round_needs_every_receiver_once_verified() {
        let verified =
            |receiver: usize, sid: &str| Receipt { verified: Some(Ok(sid.to_owned())), ..receipt(receiver, sid, "j") };
        let good = [verified(0, "s-1.0"), verified(1, "s-1.1")];
        assert!(last_verified(&good, "s-1.").is_ok());
        assert!(last_verified(&[verified(0, "s-1.0"), verified(0, "s-1.0")], "s-1.").is_err());
        assert!(last_verified(&[verified(0, "s-10.0")], "s-1.").is_err());
        assert!(last_verified(&[receipt(0, "s-1.0", "j")], "s-1.").is_err());
    }

    #[test]
    fn plan_sizes() {
        let opts = |quick, deliveries| Opts {
            adieu: "adieu".into(),
            quick,
            hosts: Hosts::Distinct,
            deliveries,
            verify_all: false,
            algs: vec!["ES256".into()],
        };
        let p = Plan::new(&opts(false, None));
        assert_eq!((p.clients, p.sessions, p.rounds), (200, 100, 20));
        assert_eq!(p.mass(Receiving::KeepAlive).deliveries(), 20_000);
        assert_eq!(p.seeds().len(), 6);
        assert_eq!(p.fan_out(Receiving::Close).sessions, 21);
        let q = Plan::new(&opts(true, Some(5_000)));
        assert_eq!((q.clients, q.sessions, q.rounds), (50, 100, 3));
    }
}
