//! A PostgreSQL server restart during a fan-out (issue 11): a private PostgreSQL instance of the
//! test's own (`initdb` and `pg_ctl` as the `postgres` user, on its own port and socket
//! directory, so the shared CI database is not disturbed), two `adieu serve` replicas on it, a
//! sign-out-everywhere that ends 100 sessions, and a restart of the server process while their
//! deliveries are going out. The replicas recover by themselves and every committed delivery
//! arrives.

use crate::binary::{free_port, serve_with};
use crate::hostile::Op;
use crate::support::peek_claims;
use adieu_testkit::receiver::Behavior;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A PostgreSQL cluster of the test's own; stopped when dropped.
struct Cluster {
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn as_postgres(args: &[&str]) -> bool {
    Command::new("runuser").args(["-u", "postgres", "--"]).args(args).status().is_ok_and(|s| s.success())
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let have = Command::new("initdb").arg("--version").output().is_ok_and(|o| o.status.success());
        if !have || !as_postgres(&["true"]) {
            let required = std::env::var("ADIEU_REQUIRE_POSTGRES").as_deref() == Ok("1");
            assert!(!required, "ADIEU_REQUIRE_POSTGRES=1 but initdb/pg_ctl cannot run as the postgres user");
            eprintln!("\nSKIPPED: the PostgreSQL restart test needs initdb, pg_ctl and a postgres user\n");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert!(Command::new("chown").args(["postgres:"]).arg(dir.path()).status().unwrap().success());
        let d = data.to_str().unwrap();
        assert!(as_postgres(&["initdb", "-D", d, "-A", "trust", "-U", "postgres", "--no-sync"]), "initdb");
        let c = Cluster { port: free_port(), data, _dir: dir };
        c.pg_ctl("start");
        Some(c)
    }

    fn pg_ctl(&self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.parent().unwrap().display()
        );
        let log = self.data.parent().unwrap().join("postgres.log");
        let ok = as_postgres(&[
            "pg_ctl",
            "-D",
            self.data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            log.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            action,
        ]);
        assert!(ok, "pg_ctl {action}");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> &Path {
        &self.data
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&["pg_ctl", "-D", self.data().to_str().unwrap_or(""), "-m", "immediate", "stop"]);
    }
}

/// Proves: the PostgreSQL server restarting mid fan-out loses nothing; both replicas heal
/// without a restart of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_server_restart_mid_fan_out_loses_no_delivery() {
    const N: usize = 100;
    let Some(pg) = Cluster::start() else { return };
    let url = pg.url();
    let op = Op::start(
        None,
        &[
            ("ADIEU_DATABASE_URL", url.as_str()),
            ("ADIEU_DATABASE__REPLICA_ID", "replica-a"),
            ("ADIEU_DELIVERY__LEASE_SECS", "5"),
            ("ADIEU_DELIVERY__INITIAL_BACKOFF_MS", "200"),
            ("ADIEU_DELIVERY__MAX_BACKOFF_SECS", "2"),
        ],
    )
    .await;
    let other_dir = tempfile::tempdir().unwrap();
    let other_port = free_port();
    let issuer = op.base.clone();
    let _other = serve_with(
        other_dir.path(),
        other_port,
        &[
            ("ADIEU_DATABASE_URL", url.as_str()),
            ("ADIEU_DATABASE__REPLICA_ID", "replica-b"),
            ("ADIEU_ISSUER", issuer.as_str()),
            ("ADIEU_DELIVERY__LEASE_SECS", "5"),
            ("ADIEU_DELIVERY__INITIAL_BACKOFF_MS", "200"),
            ("ADIEU_DELIVERY__MAX_BACKOFF_SECS", "2"),
        ],
    )
    .await;
    // A slowish application, so that the fan-out is still going out when the server restarts.
    op.receiver.set_default(Behavior::Slow(200, Duration::from_millis(400)));
    let mut sids = HashSet::new();
    let mut last = String::new();
    for _ in 0..N {
        let (cookie, sid) = op.sign_in_to_conf("a session before the restart").await;
        sids.insert(sid);
        last = cookie;
    }
    let res = op
        .http
        .post(format!("{}/account/sign-out-everywhere", op.base))
        .header("cookie", format!("adieu_session={last}; adieu_csrf=c"))
        .form(&[("csrf", "c")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_redirection(), "sign out everywhere: {}", res.status());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = op.receiver.received().len();
    let restart = Instant::now();
    pg.pg_ctl("restart");
    println!("PostgreSQL restarted in {:?} with {before} of {N} deliveries received", restart.elapsed());
    assert!(before < N, "the fan-out was over before the restart; nothing was tested");

    op.receiver.set_default(Behavior::Status(200));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashSet<String> = op
            .receiver
            .received()
            .iter()
            .filter_map(|r| peek_claims(r.logout_token())["sid"].as_str().map(str::to_owned))
            .collect();
        let missing = sids.difference(&got).count();
        if missing == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{missing} of {N} committed deliveries never arrived after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = op.receiver.received().len();
    println!(
        "all {N} deliveries arrived {:?} after the restart ({} duplicates)",
        restart.elapsed(),
        total.saturating_sub(N)
    );
    op.works("replica a after the PostgreSQL restart").await;
    let ready = reqwest::get(format!("http://127.0.0.1:{other_port}/readyz")).await.unwrap().status();
    assert_eq!(ready, 200, "replica b is ready again");
}
