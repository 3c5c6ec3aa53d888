//! Scenario **e**: deleting 10,000 users with 3 sessions × 2 applications each (issue 5, "What must
//! be shown"): 60,000 back-channel deliveries with initiator `account-deleted`.
//!
//! 1. [`Prepared`]: a fresh database with two ES256 clients whose logout URIs point at two
//!    in-process receivers (each its own loopback host), subscribed to `account-deleted`.
//! 2. [`seed`]: the users, their sessions and the sessions' participations (one `sid` per
//!    session and client) are written directly with `adieu-store`'s SQLite store before the server
//!    starts; 30,000 browser sign-ins with argon2 would take far longer and measure something else.
//! 3. An admin token is made with `adieu admin-token create`; then `adieu serve` starts on that
//!    database.
//! 4. All users are deleted through the management API (`DELETE /api/v1/users/{id}`, 16 requests
//!    in flight). The clock starts at the first request and stops at the last delivery.
//! 5. The receivers read `sub` and `sid` of every token (unverified) and fully verify a 1-in-100
//!    sample. Every delivery must arrive: the `(sub, sid, client)` keys must be exactly the seeded
//!    ones, each once; a second arrival counts as a duplicate (delivery is at-least-once).
//!
//! Measured: time from the first delete to the last delivery, deletes/s, deliveries/s, and the
//! server's peak memory (`VmHWM`), with the CPU used by the server, the harness and everything else,
//! and the machine's load average before and after.

use super::{CpuWatch, Opts, Verdict, mean_attempt_ms, ms, stats};
use crate::harness::{Behaviour, ClientReg, Prepared, Receipt, Receivers, Verify, join_next};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::session::Session;
use adieu_core::store::{SessionStore, UserStore};
use adieu_core::user::User;
use adieu_core::{Clock, SystemClock};
use adieu_store::SqliteStore;
use anyhow::{Context, Result, ensure};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const CLIENTS: usize = 2;
const SESSIONS_PER_USER: usize = 3;
const DELETE_CONCURRENCY: usize = 16;
const SAMPLE: u64 = 100;

/// What was seeded: the users' ids in order, and for each `sid` its user and client index.
#[derive(Debug)]
struct Seeded {
    users: Vec<UserId>,
    sids: HashMap<String, (usize, usize)>,
}

/// Writes `users` accounts, each with `SESSIONS_PER_USER` open sessions in which every client of
/// `clients` took part, straight into the database at `url` (the server is not running yet).
/// The accounts have no usable password: nobody signs in with them.
async fn seed(url: &str, clients: &[ClientReg], users: usize) -> Result<Seeded> {
    let store = SqliteStore::open(url).await?;
    let now = SystemClock.now();
    let mut seeded = Seeded { users: Vec::with_capacity(users), sids: HashMap::new() };
    for u in 0..users {
        let name = format!("bench-user-{u:05}");
        let user = User {
            id: UserId::new(&name),
            username: name,
            email: None,
            password_hash: "!seeded-without-a-password".into(),
            created_at: now,
            updated_at: now,
        };
        store.create_user(&user).await?;
        for k in 0..SESSIONS_PER_USER {
            let session = Session {
                id: SessionId::new(format!("bench-session-{u:05}-{k}")),
                user_id: user.id.clone(),
                auth_time: now,
                created_at: now,
                last_seen_at: now,
                ended_at: None,
                end_reason: None,
            };
            store.create_session(&session, &format!("bench-cookie-{u:05}-{k}")).await?;
            for (c, client) in clients.iter().enumerate() {
                let sid = Sid::new(format!("bench-sid-{u:05}-{k}-{c}"));
                let p = store.ensure_participation(&session.id, &ClientId::new(&client.id), &sid, now).await?;
                seeded.sids.insert(p.sid.into_string(), (u, c));
            }
        }
        seeded.users.push(user.id);
    }
    Ok(seeded)
}

/// The 1-, 5- and 15-minute load averages from `/proc/loadavg`.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

pub(crate) async fn run(opts: &Opts) -> Result<Vec<Verdict>> {
    let users = if opts.quick { 500 } else { 10_000 };
    let total = users * SESSIONS_PER_USER * CLIENTS;
    let load_before = loadavg();
    eprintln!(
        "(e) {CLIENTS} receivers; seeding {users} users × {SESSIONS_PER_USER} sessions × {CLIENTS} applications…"
    );
    let mut receivers = Receivers::start(CLIENTS, opts.hosts, |_| Behaviour::Answer, Verify::Sample(SAMPLE)).await?;
    receivers.peek_subjects();
    let prepared =
        Prepared::new(&opts.adieu, &receivers.addrs, &[], &["--backchannel-logout-initiators", "account-deleted"])
            .await?;
    let started = Instant::now();
    let seeded = seed(&prepared.database_url(), &prepared.clients, users).await.context("seeding")?;
    let seed_secs = started.elapsed().as_secs_f64();
    ensure!(seeded.sids.len() == total, "seeded {} participations, expected {total}", seeded.sids.len());
    let token = prepared.cli(&["admin-token", "create", "--label", "bench e"]).await?.trim().to_owned();
    let provider = prepared.serve().await?;
    receivers.set_verifier(provider.verifier().await?)?;
    let (hwm_start, _) = provider.memory_kib()?;
    let watch = CpuWatch::start(&provider);
    let ticks = super::clock_ticks();
    let pid = provider.pid.to_string();

    eprintln!("(e) deleting {users} users, {DELETE_CONCURRENCY} requests in flight → {total} deliveries…");
    let (server_cpu0, self_cpu0) = (super::cpu_secs(&pid, ticks), super::cpu_secs("self", ticks));
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(120)).build()?;
    let t0 = Instant::now();
    let driver = {
        let (base, ids) = (format!("{}/api/v1/users/", provider.base), seeded.users.clone());
        tokio::spawn(async move {
            let mut jobs = JoinSet::new();
            let mut times = Vec::with_capacity(ids.len());
            for id in ids {
                if jobs.len() >= DELETE_CONCURRENCY {
                    times.extend(join_next(&mut jobs).await?);
                }
                let req = http.delete(format!("{base}{id}")).bearer_auth(&token);
                jobs.spawn(async move {
                    let sent = Instant::now();
                    let res = req.send().await?;
                    ensure!(res.status() == 200, "DELETE user {id} answered {}", res.status());
                    Ok(sent.elapsed())
                });
            }
            while let Some(t) = join_next(&mut jobs).await? {
                times.push(t);
            }
            anyhow::Ok((times, Instant::now()))
        })
    };

    // Receipts until every seeded (sub, sid, client) has arrived once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
    let mut seen: HashSet<(String, String, usize)> = HashSet::with_capacity(total);
    let (mut duplicates, mut wrong, mut sampled, mut sample_failures) = (0usize, Vec::new(), 0usize, 0usize);
    let mut last_at = t0;
    let mut check = |r: Receipt, seen: &mut HashSet<_>| -> bool {
        match &r.verified {
            Some(Ok(_)) => sampled += 1,
            Some(Err(e)) => {
                sampled += 1;
                sample_failures += 1;
                wrong.push(format!("receiver {}: invalid token: {e}", r.receiver));
            }
            None => {}
        }
        let Some((sub, sid)) = r.subject else {
            wrong.push(format!("receiver {}: a token without sub and sid", r.receiver));
            return false;
        };
        let Some(&(u, c)) = seeded.sids.get(&sid) else {
            wrong.push(format!("receiver {}: unknown sid {sid}", r.receiver));
            return false;
        };
        if c != r.receiver || seeded.users[u].as_str() != sub {
            wrong.push(format!("receiver {}: sid {sid} with sub {sub}", r.receiver));
            return false;
        }
        if seen.insert((sub, sid, c)) {
            last_at = last_at.max(r.at);
            true
        } else {
            duplicates += 1;
            false
        }
    };
    // Stop early, not at the deadline, if the deletes are done and the queue is empty but tokens
    // are missing: they will never come.
    while seen.len() < total {
        match receivers.next(tokio::time::Instant::now() + Duration::from_secs(5)).await {
            Ok(r) => {
                check(r, &mut seen);
            }
            Err(_) => {
                let missing = || format!("only {} of {total} distinct logout tokens arrived", seen.len());
                ensure!(tokio::time::Instant::now() < deadline, "{}", missing());
                let idle = provider.metric("adieu_delivery_queue_depth").await? == 0.0;
                ensure!(!(driver.is_finished() && idle), "{}, and the delivery queue is empty", missing());
            }
        }
    }
    let (delete_times, deletes_done) = driver.await??;
    let (server_cpu1, self_cpu1) = (super::cpu_secs(&pid, ticks), super::cpu_secs("self", ticks));
    // Anything still in flight (a retried attempt whose first answer was lost) shows up as a duplicate.
    provider.wait_idle(Duration::from_secs(120)).await?;
    while let Ok(r) = receivers.next(tokio::time::Instant::now() + Duration::from_millis(200)).await {
        check(r, &mut seen);
    }
    ensure!(wrong.is_empty(), "{} wrong tokens, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);

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
    let load_after = loadavg();

    let to_last = (last_at - t0).as_secs_f64();
    let deletes_secs = (deletes_done - t0).as_secs_f64();
    let delete = stats(&delete_times.iter().copied().map(ms).collect::<Vec<_>>());
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    println!(
        "## (e) Account deletion: {users} users × {SESSIONS_PER_USER} sessions × {CLIENTS} applications = {total} deliveries\n"
    );
    println!(
        "Users, sessions and participations seeded with the SQLite store before the server started; all users \
         deleted through `DELETE /api/v1/users/{{id}}` ({DELETE_CONCURRENCY} in flight); both applications \
         subscribe to `account-deleted`. Receivers read `sub` and `sid` of every token and fully verify a \
         1-in-{SAMPLE} sample.\n"
    );
    println!(
        "| deliveries | first delete → last delivery | deliveries/s | deletes | first → last delete answered | deletes/s | peak memory (VmHWM) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {total} | {to_last:.2} s | {:.0} | {users} | {deletes_secs:.2} s | {:.0} | {:.1} MB |",
        total as f64 / to_last,
        users as f64 / deletes_secs,
        hwm_kib as f64 / 1024.0
    );
    println!();
    println!(
        "- Every delivery arrived: {} distinct (sub, sid, client) of {total} seeded, {duplicates} duplicates, \
         0 with a wrong sub or sid; verified sample {sampled}, {sample_failures} invalid.",
        seen.len()
    );
    println!(
        "- DELETE response time: median {:.1} ms, p99 {:.1} ms, max {:.1} ms. The last delivery arrived {:.2} s \
         after the last delete was answered.",
        delete.median,
        delete.p99,
        delete.max,
        to_last - deletes_secs
    );
    println!(
        "- CPU from the first delete to the last delivery: provider {:.2} s ({:.0} µs per delivery), this harness \
         (receivers + API client) {:.2} s, over {to_last:.2} s of wall time on {threads} cores.",
        server_cpu1 - server_cpu0,
        (server_cpu1 - server_cpu0) / total as f64 * 1e6,
        self_cpu1 - self_cpu0
    );
    println!(
        "- Provider counters: {delivered} delivered, {retries} retries, {dead} dead; mean attempt latency \
         {attempt_ms:.2} ms; server log: {warns} WARN, {errors} ERROR lines; database files {:.1} MB.",
        db_bytes as f64 / 1e6
    );
    println!(
        "- Memory: VmHWM {:.1} MB after start-up, {:.1} MB at the end; VmRSS at the end {:.1} MB (MB = MiB).",
        hwm_start as f64 / 1024.0,
        hwm_kib as f64 / 1024.0,
        rss_kib as f64 / 1024.0
    );
    println!("- Seeding (not measured above): {seed_secs:.1} s.");
    println!("- {cpu}");
    println!("- Load average (1, 5, 15 min) before the scenario: {load_before}; after: {load_after}.\n");
    Ok(vec![
        Verdict {
            what: format!("(e) account deletion: all {total} deliveries, once each, right sub"),
            target: "every one arrives".into(),
            measured: format!(
                "{} distinct, {duplicates} duplicates; last at {to_last:.2} s ({:.0}/s)",
                seen.len(),
                total as f64 / to_last
            ),
            pass: seen.len() == total && duplicates == 0,
        },
        Verdict {
            what: "(e) provider peak memory".into(),
            target: "< 150 MB (the bound of (d))".into(),
            measured: format!("{:.1} MB (VmHWM)", hwm_kib as f64 / 1024.0),
            pass: (hwm_kib as f64 / 1024.0) < 150.0,
        },
    ])
}
