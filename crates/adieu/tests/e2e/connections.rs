//! Connection hygiene of the real `adieu serve` (issue 11 item 5): 20,000 idle connections and
//! 2,000 slowloris connections, opened by Python helper processes (`flood.py`, one process per
//! 5,000 sockets so that no process runs out of file descriptors) from loopback addresses other
//! than the test's own. `/healthz` keeps answering, the server holds a bounded number of
//! connections (and memory), and request heads that never finish are cut by the header timeout.

use crate::hostile::Op;
use std::time::{Duration, Instant};
use tokio::process::Command;

const FLOOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/flood.py");

fn flood(op: &Op, mode: &str, source: &str, n: usize, seconds: u32) -> tokio::process::Child {
    Command::new("python3")
        .args([FLOOD, mode, "127.0.0.1", &op.addr.port().to_string(), source, &n.to_string(), &seconds.to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 (the flood helper)")
}

/// The server's resident memory (kB) and open file descriptors.
fn server_footprint(op: &Op) -> (u64, usize) {
    let pid = op.child.id().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    (rss, fds)
}

async fn healthz_ms(op: &Op) -> u128 {
    let start = Instant::now();
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let res = fresh.get(format!("{}/healthz", op.base)).timeout(Duration::from_secs(5)).send().await;
    assert!(res.is_ok_and(|r| r.status() == 200), "/healthz did not answer under the flood");
    start.elapsed().as_millis()
}

/// Proves: 20,000 idle connections from one address leave `/healthz` answering on a new
/// connection; the server keeps at most `http.max_connections_per_address` of them, so its
/// descriptors and memory stay bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_idle_connections_leave_health_answering() {
    let op = Op::start(None, &[]).await;
    let (rss_before, fds_before) = server_footprint(&op);
    let mut helpers: Vec<_> = (0..4).map(|_| flood(&op, "idle", "127.0.0.2", 5000, 8)).collect();
    // For as long as the helpers connect and hold.
    let (mut worst, mut checks) = (0, 0);
    let mut peak = (0, 0);
    while helpers.iter_mut().any(|h| h.try_wait().ok().flatten().is_none()) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        worst = worst.max(healthz_ms(&op).await);
        checks += 1;
        let f = server_footprint(&op);
        peak = (peak.0.max(f.0), peak.1.max(f.1));
    }
    let mut lines = Vec::new();
    for h in helpers {
        let out = h.wait_with_output().await.unwrap();
        lines.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    println!(
        "20,000 idle connections: helpers {lines:?}; /healthz answered {checks} times, worst {worst} ms; server fds {fds_before} → peak {}, \
         RSS {rss_before} kB → peak {} kB",
        peak.1, peak.0
    );
    let opened: usize = lines
        .iter()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("opened=")))
        .filter_map(|v| v.parse::<usize>().ok())
        .sum();
    assert!(opened >= 19_000, "the helpers opened only {opened} connections");
    assert!(peak.1 <= fds_before + 256 + 16, "the server held {} descriptors", peak.1);
    assert!(peak.0 < rss_before + 64 * 1024, "the server's memory grew from {rss_before} kB to {} kB", peak.0);
    op.works("after 20,000 idle connections").await;
}

/// Proves: 2,000 connections that send a request head one byte every half second are all closed
/// by the header timeout, and `/healthz` answers meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_by_the_header_timeout() {
    let op = Op::start(
        None,
        &[("ADIEU_HTTP__HEADER_READ_TIMEOUT_SECS", "2"), ("ADIEU_HTTP__MAX_CONNECTIONS_PER_ADDRESS", "5000")],
    )
    .await;
    let helper = flood(&op, "slow", "127.0.0.3", 2000, 15);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let worst = healthz_ms(&op).await;
    let out = helper.wait_with_output().await.unwrap();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    println!("2,000 slowloris connections: {line}; /healthz {worst} ms meanwhile");
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line:?}"))
    };
    assert!(field("opened=") >= 1990.0, "{line}");
    assert_eq!(field("opened="), field("closed_by_server="), "every slow connection is closed: {line}");
    op.works("after 2,000 slowloris connections").await;
}

/// Proves: SIGTERM ends the process within the grace period plus the lease release, whatever the
/// clients do: 200 connections hold request bodies half sent, and 200 more idle connections stay
/// open, while the provider stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_within_the_grace_period_with_clients_holding_requests_open() {
    use tokio::io::AsyncWriteExt;
    let mut op = Op::start(None, &[("ADIEU_DELIVERY__SHUTDOWN_GRACE_SECS", "2")]).await;
    let mut held = Vec::new();
    for i in 0..400 {
        let mut s = tokio::net::TcpStream::connect(op.addr).await.unwrap();
        if i % 2 == 0 {
            // A request whose body never finishes.
            let head = "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=";
            s.write_all(head.as_bytes()).await.unwrap();
        }
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = op.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stopping = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(15), op.child.wait()).await;
    let took = stopping.elapsed();
    println!("SIGTERM with 400 connections held open: stopped in {took:?}");
    let status = status.expect("the provider did not stop within 15 s").unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(2 + 5), "stopped after {took:?}: beyond the grace period and lease release");
    drop(held);
}
