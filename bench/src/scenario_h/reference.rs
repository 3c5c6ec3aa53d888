//! The reference side of scenario h: the `adieu-ref-loop` process (see `bench/src/bin/ref_loop.rs`),
//! its signing key and its list of receivers.
//!
//! The harness starts it with `--stdin --warmup`: it parses its key, opens a connection to every
//! receiver with one untimed token each, prints a ready line and waits. For each round the harness
//! reads the process's CPU time from `/proc/<pid>/stat` (as for the provider), writes a line to its
//! standard input, and reads its report line when the round is done.

use crate::cpu::{clock_ticks, cpu_secs};
use crate::harness::{Verifier, client_id};
use crate::ref_key::{generate_pkcs8, public_jwk};
use anyhow::{Context, Result, bail, ensure};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The reference tokens' `iss`: not the provider's, so that a token is never mistaken for the
/// other's.
pub(crate) const ISSUER: &str = "http://adieu-ref-loop.invalid";

/// The reference loop's key: a PKCS#8 file for the process, and its public half for the receivers.
#[derive(Debug)]
pub(crate) struct RefKey {
    pub alg: String,
    pub kid: String,
    file: tempfile::NamedTempFile,
    jwk: Value,
}

impl RefKey {
    /// A new key for `alg` (`ES256` or `RS256`).
    pub(crate) fn generate(alg: &str) -> Result<RefKey> {
        let der = generate_pkcs8(alg)?;
        let kid = format!("ref-{alg}");
        let jwk = public_jwk(alg, &der, &kid)?;
        let mut file = tempfile::Builder::new().prefix("adieu-ref-key-").tempfile()?;
        file.write_all(&der)?;
        file.flush()?;
        Ok(RefKey { alg: alg.to_owned(), kid, file, jwk })
    }

    /// Makes `verifier` accept this key's tokens (issuer [`ISSUER`]).
    pub(crate) fn add_to(&self, verifier: &mut Verifier) -> Result<()> {
        let jwk: Jwk = serde_json::from_value(self.jwk.clone())?;
        verifier.add_key(ISSUER, &self.kid, DecodingKey::from_jwk(&jwk)?);
        Ok(())
    }
}

/// A file listing receivers `0..addrs.len()`, one `http://{addr}/backchannel bench-{i}` per line.
pub(crate) fn targets_file(addrs: &[SocketAddr]) -> Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new().prefix("adieu-ref-targets-").tempfile()?;
    for (i, addr) in addrs.iter().enumerate() {
        writeln!(file, "http://{addr}/backchannel {}", client_id(i))?;
    }
    file.flush()?;
    Ok(file)
}

/// `adieu-ref-loop` next to this executable (`target/release/`).
fn exe() -> Result<PathBuf> {
    let path = std::env::current_exe()?.parent().context("no directory")?.join("adieu-ref-loop");
    ensure!(path.exists(), "{} does not exist: build it with `cargo build --release -p adieu-bench`", path.display());
    Ok(path)
}

/// A running `adieu-ref-loop --stdin`, warmed up and waiting for its first round.
#[derive(Debug)]
pub(crate) struct RefLoop {
    child: Child,
    pid: String,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    ticks: f64,
}

/// What one reference run does per round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefPlan {
    pub deliveries: usize,
    pub concurrency: usize,
    pub rounds: usize,
}

impl RefLoop {
    /// Starts it on the receivers of `targets` and waits for its ready line (after the warm-up,
    /// which sends one token to each of them).
    pub(crate) async fn start(targets: &Path, key: &RefKey, plan: RefPlan) -> Result<RefLoop> {
        let mut child = Command::new(exe()?)
            .arg("--targets-file")
            .arg(targets)
            .arg("--key")
            .arg(key.file.path())
            .args(["--alg", &key.alg, "--kid", &key.kid, "--issuer", ISSUER, "--stdin", "--warmup"])
            .args(["--deliveries", &plan.deliveries.to_string()])
            .args(["--concurrency", &plan.concurrency.to_string()])
            .args(["--rounds", &plan.rounds.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start adieu-ref-loop")?;
        let pid = child.id().context("adieu-ref-loop exited at once")?.to_string();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let mut r = RefLoop { child, pid, stdin, stdout, ticks: clock_ticks() };
        let ready = r.line().await?;
        ensure!(ready["ready"] == true, "adieu-ref-loop said {ready}");
        ensure!(ready["warmup"]["failed"] == 0, "the reference warm-up failed: {ready}");
        Ok(r)
    }

    async fn line(&mut self) -> Result<Value> {
        match self.stdout.next_line().await? {
            Some(l) => Ok(serde_json::from_str(&l).with_context(|| format!("adieu-ref-loop printed {l:?}"))?),
            None => bail!("adieu-ref-loop ended early ({:?})", self.child.wait().await?),
        }
    }

    /// Its CPU seconds so far (utime + stime from `/proc/<pid>/stat`).
    pub(crate) fn cpu_secs(&self) -> f64 {
        cpu_secs(&self.pid, self.ticks)
    }

    /// Starts the next round.
    pub(crate) async fn go(&mut self) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
        Ok(())
    }

    /// The report of the round started last; fails if any delivery failed.
    pub(crate) async fn result(&mut self) -> Result<Value> {
        let report = self.line().await?;
        ensure!(report["failed"] == 0, "reference deliveries failed: {report}");
        Ok(report)
    }

    /// Ends it (end of its input) and waits for it.
    pub(crate) async fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait().await?;
        ensure!(status.success(), "adieu-ref-loop exited with {status}");
        Ok(())
    }
}
