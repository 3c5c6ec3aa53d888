//! The moving parts of the benchmark, independent of any one scenario:
//!
//! - [`Provider`]: the real `adieu` binary as a child process on a free loopback port, with a fresh
//!   SQLite database in a temporary directory, one user and one ES256 client per receiver, all made
//!   with the binary's own CLI ([`Prepared`], which a scenario may add to before the server starts).
//! - [`Receivers`]: N back-channel logout endpoints, each its own axum server on its own loopback
//!   address (`127.0.x.y`, so each is a distinct host to the provider's per-host limit; see
//!   [`Hosts`]). Each receipt is timestamped on arrival, after verification when the receiver
//!   verifies, and may carry the token's unverified `sub`, `sid` and `jti`. What they verify and
//!   whether they keep connections alive (or answer `Connection: close`) can change at run time.
//! - [`Web`] and [`Browser`]: a scripted browser that signs in (authorization code flow with the
//!   sign-in form), collects participations by single sign-on, and signs out at `/logout/confirm`.
//!   Cookies are kept by hand (two values per browser) so that thousands of browsers share one
//!   connection pool.

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// The one user every browser signs in as.
const USERNAME: &str = "bench";
/// Its password (argon2id-hashed by the provider; only the server's CPU time matters here).
const PASSWORD: &str = "bench-password-1";
/// The `events` member that marks a logout token.
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Waits for the next finished job of `jobs` (`None` when there are none left); a job's panic or
/// error becomes this function's error.
pub async fn join_next<T: 'static>(jobs: &mut JoinSet<Result<T>>) -> Result<Option<T>> {
    match jobs.join_next().await {
        None => Ok(None),
        Some(r) => Ok(Some(r??)),
    }
}

/// Keep each provider's temporary directory (database and log) instead of deleting it.
pub static KEEP: AtomicBool = AtomicBool::new(false);

/// The client id registered for receiver `i`.
pub fn client_id(i: usize) -> String {
    format!("bench-{i}")
}

// ------------------------------------------------------------------------------------------------
// The provider process

/// A running `adieu serve` with its own database, user and clients.
#[derive(Debug)]
pub struct Provider {
    child: Child,
    /// Process id, for `/proc/<pid>/status`.
    pub pid: u32,
    /// `http://127.0.0.1:PORT` (also the issuer: a loopback issuer is the development profile).
    pub base: String,
    /// The registered clients, in receiver order.
    pub clients: Vec<ClientReg>,
    /// The server's log (stdout and stderr).
    pub log: PathBuf,
    http: reqwest::Client,
    // Dropped last: holds the database and the log.
    dir: tempfile::TempDir,
}

/// A registered client: its id and its (unserved) redirect URI.
#[derive(Debug, Clone)]
pub struct ClientReg {
    /// `bench-{i}`.
    pub id: String,
    /// `http://{receiver address}/cb`; the harness reads the code from the `Location` header and
    /// never follows it.
    pub redirect_uri: String,
}

/// A free loopback port. The listener is dropped before the provider binds it: a small race that
/// only matters if something else on the machine grabs the same port in between.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A provider's directory and configuration before `adieu serve` starts: the database is migrated
/// and holds the benchmark user and one ES256 client per receiver, all made with the binary's CLI.
/// A scenario may add to the database (see [`Prepared::database_url`]) before [`Prepared::serve`].
#[derive(Debug)]
pub struct Prepared {
    adieu: PathBuf,
    env: Vec<(String, String)>,
    base: String,
    /// The registered clients, in receiver order.
    pub clients: Vec<ClientReg>,
    dir: tempfile::TempDir,
}

impl Prepared {
    /// Creates the database, the user and one ES256 client per receiver address with the CLI
    /// (`client add` gets `client_args` too, e.g. `--backchannel-logout-initiators account-deleted`);
    /// `extra_env` (e.g. `ADIEU_DELIVERY__LOGOUT_WAIT_MS=0`) applies to every command and to `serve`.
    pub async fn new(
        adieu: &Path,
        receivers: &[SocketAddr],
        extra_env: &[(&str, String)],
        client_args: &[&str],
    ) -> Result<Prepared> {
        Prepared::with_alg(adieu, receivers, extra_env, client_args, "ES256").await
    }

    /// [`Prepared::new`] with the clients' `id_token_signed_response_alg` (which also signs their
    /// logout tokens) set to `alg` (`ES256`, `RS256` or `EdDSA`).
    pub async fn with_alg(
        adieu: &Path,
        receivers: &[SocketAddr],
        extra_env: &[(&str, String)],
        client_args: &[&str],
        alg: &str,
    ) -> Result<Prepared> {
        let dir = tempfile::Builder::new().prefix("adieu-bench-").tempdir()?;
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut env: Vec<(String, String)> = vec![
            ("ADIEU_LISTEN".into(), format!("127.0.0.1:{port}")),
            ("ADIEU_DATABASE_URL".into(), format!("sqlite://{}/adieu.db", dir.path().display())),
            // One address signs in thousands of times: lift the attempt limits.
            ("ADIEU_LOGIN__MAX_ATTEMPTS_PER_ADDRESS".into(), "1000000".into()),
            ("ADIEU_LOGIN__MAX_FAILURES_PER_ACCOUNT".into(), "1000000".into()),
        ];
        env.extend(extra_env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut p = Prepared { adieu: adieu.to_owned(), env, base, clients: Vec::new(), dir };
        p.cli(&["migrate"]).await?;
        p.cli(&["user", "add", USERNAME, "--password", PASSWORD]).await?;
        // One client per receiver, four CLI processes at a time (SQLite serialises the writes).
        let mut jobs = JoinSet::new();
        for (i, addr) in receivers.iter().enumerate() {
            let reg = ClientReg { id: client_id(i), redirect_uri: format!("http://{addr}/cb") };
            let mut args: Vec<String> = [
                "client",
                "add",
                "--name",
                &format!("Bench app {i}"),
                "--client-id",
                &reg.id,
                "--redirect-uri",
                &reg.redirect_uri,
                "--backchannel-logout-uri",
                &format!("http://{addr}/backchannel"),
                "--id-token-signed-response-alg",
                alg,
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            args.extend(client_args.iter().map(|s| (*s).to_owned()));
            p.clients.push(reg);
            if jobs.len() >= 4 {
                join_next(&mut jobs).await?;
            }
            let mut c = p.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
            jobs.spawn(async move { run(&mut c, &args).await.map(drop) });
        }
        while join_next(&mut jobs).await?.is_some() {}
        Ok(p)
    }

    /// The `adieu` binary with this provider's configuration and nothing from the caller's
    /// environment that could change it (the log filter `ADIEU_LOG` may pass, e.g.
    /// `ADIEU_LOG=info,sqlx::query=debug` to time every statement).
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.adieu);
        for (k, _) in std::env::vars() {
            if k.starts_with("ADIEU_") && k != "ADIEU_LOG" {
                c.env_remove(k);
            }
        }
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).current_dir(self.dir.path()).args(args);
        c
    }

    /// Runs an `adieu` command on this provider's database; returns its standard output.
    pub async fn cli(&self, args: &[&str]) -> Result<String> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        run(&mut self.command(&args.iter().map(String::as_str).collect::<Vec<_>>()), &args).await
    }

    /// The SQLite database's URL (`sqlite:///tmp/adieu-bench-…/adieu.db`).
    pub fn database_url(&self) -> String {
        format!("sqlite://{}/adieu.db", self.dir.path().display())
    }

    /// `http://127.0.0.1:PORT`, where [`Prepared::serve`] will listen.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Another replica on the same database (for a shared one: `ADIEU_DATABASE_URL` in
    /// `extra_env` of [`Prepared::new`]): its own directory (for its log) and port, the same
    /// configuration, and `extra_env` on top (e.g. `ADIEU_DATABASE__REPLICA_ID`). Runs no command.
    pub fn replica(&self, extra_env: &[(&str, String)]) -> Result<Prepared> {
        let dir = tempfile::Builder::new().prefix("adieu-bench-replica-").tempdir()?;
        let port = free_port()?;
        let mut env: Vec<(String, String)> = self.env.iter().filter(|(k, _)| k != "ADIEU_LISTEN").cloned().collect();
        env.push(("ADIEU_LISTEN".into(), format!("127.0.0.1:{port}")));
        env.extend(extra_env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        Ok(Prepared {
            adieu: self.adieu.clone(),
            env,
            base: format!("http://127.0.0.1:{port}"),
            clients: self.clients.clone(),
            dir,
        })
    }

    /// Starts `adieu serve` and waits until `/healthz` answers.
    pub async fn serve(self) -> Result<Provider> {
        let log = self.dir.path().join("serve.log");
        let out = std::fs::File::create(&log)?;
        let child = self
            .command(&["serve"])
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start adieu serve")?;
        let pid = child.id().context("adieu serve exited at once")?;
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
        let Prepared { base, clients, dir, .. } = self;
        let mut p = Provider { child, pid, base, clients, log, http, dir };
        p.wait_healthy().await?;
        eprintln!("    adieu serve: pid {pid}, {}, log {}", p.base, p.log.display());
        Ok(p)
    }
}

/// Runs a prepared `adieu` command to completion; its standard output, or an error with its stderr.
async fn run(c: &mut Command, args: &[String]) -> Result<String> {
    let out = c.output().await.context("cannot run the adieu binary (build it with --release first)")?;
    ensure!(out.status.success(), "adieu {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Provider {
    /// [`Prepared::new`] without extra client arguments, then [`Prepared::serve`].
    pub async fn start(adieu: &Path, receivers: &[SocketAddr], extra_env: &[(&str, String)]) -> Result<Provider> {
        Prepared::new(adieu, receivers, extra_env, &[]).await?.serve().await
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("adieu serve exited ({status}); its log:\n{}", self.log_tail(30));
            }
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "adieu serve did not become healthy; log:\n{}", self.log_tail(30));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// How many log lines are at WARN and ERROR level.
    pub fn log_levels(&self) -> (usize, usize) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let count = |level: &str| text.lines().filter(|l| l.contains(level)).count();
        (count(" WARN "), count(" ERROR "))
    }

    /// A verifier for this provider's ES256 logout tokens, from discovery and the JWKS (see
    /// [`Verifier::expecting`] for another algorithm).
    pub async fn verifier(&self) -> Result<Verifier> {
        let discovery: Value =
            self.http.get(format!("{}/.well-known/openid-configuration", self.base)).send().await?.json().await?;
        let issuer = discovery["issuer"].as_str().context("discovery has no issuer")?.to_owned();
        let jwks: JwkSet = self.http.get(format!("{}/jwks", self.base)).send().await?.json().await?;
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            if let Some(kid) = &jwk.common.key_id {
                keys.insert(kid.clone(), (issuer.clone(), DecodingKey::from_jwk(jwk)?));
            }
        }
        ensure!(keys.keys().any(|k| k.starts_with("ES256")), "the JWKS has no ES256 key");
        Ok(Verifier { alg: Algorithm::ES256, keys })
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        Ok(self.http.get(format!("{}/metrics", self.base)).send().await?.error_for_status()?.text().await?)
    }

    /// One sample (without labels) from `/metrics`, e.g. `adieu_delivery_queue_depth`.
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let text = self.metrics().await?;
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .with_context(|| format!("{name} is not in /metrics"))?;
        Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
    }

    /// Sum of `adieu_delivery_attempts_total` with the given outcome, over all clients.
    pub async fn attempts(&self, outcome: &str) -> Result<u64> {
        let text = self.metrics().await?;
        let prefix = format!("adieu_delivery_attempts_total{{outcome=\"{outcome}\",");
        Ok(text
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum())
    }

    /// Waits until no delivery is pending or in flight (the previous round is fully recorded).
    pub async fn wait_idle(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while self.metric("adieu_delivery_queue_depth").await? > 0.0 {
            ensure!(Instant::now() < deadline, "the delivery queue did not drain within {within:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// `VmHWM` (peak resident set) and `VmRSS` of the server, in KiB, from `/proc/<pid>/status`.
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
            Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// The temporary directory (database and log); removed when the provider is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (SIGKILL: nothing of its state is needed afterwards) and removes its
    /// directory unless [`KEEP`] is set.
    pub async fn stop(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        if KEEP.load(Ordering::Relaxed) {
            eprintln!("    kept {}", self.dir.keep().display());
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------------
// Verifying logout tokens

/// Verifies logout tokens as a relying party would (Back-Channel Logout 1.0 §2.6).
#[derive(Debug)]
pub struct Verifier {
    /// The one algorithm accepted (ES256 unless [`Verifier::expecting`] says otherwise).
    alg: Algorithm,
    /// `kid` → the issuer whose key it is, and the key.
    keys: HashMap<String, (String, DecodingKey)>,
}

impl Verifier {
    /// Accepts `alg` instead (and only it).
    pub fn expecting(mut self, alg: Algorithm) -> Verifier {
        self.alg = alg;
        self
    }

    /// Also accepts tokens of `issuer` signed with `key` under `kid` (e.g. a reference sender's).
    pub fn add_key(&mut self, issuer: &str, kid: &str, key: DecodingKey) {
        self.keys.insert(kid.to_owned(), (issuer.to_owned(), key));
    }

    /// Checks header (`typ`, `alg` as expected, known `kid`), signature, `iss` (the issuer of that
    /// `kid`), `aud`, `exp`, `iat`, the back-channel `events` member, no `nonce`, and `sid`.
    /// Returns the `sid`.
    pub fn verify(&self, token: &str, audience: &str) -> Result<String> {
        let header = jsonwebtoken::decode_header(token)?;
        ensure!(header.typ.as_deref() == Some("logout+jwt"), "typ is {:?}", header.typ);
        ensure!(header.alg == self.alg, "alg is {:?}", header.alg);
        let kid = header.kid.context("no kid")?;
        let (issuer, key) = self.keys.get(&kid).with_context(|| format!("unknown kid {kid}"))?;
        let mut v = Validation::new(self.alg);
        v.set_audience(&[audience]);
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Value>(token, key, &v)?.claims;
        ensure!(claims["events"].get(BACKCHANNEL_EVENT).is_some_and(Value::is_object), "no back-channel event");
        ensure!(claims.get("nonce").is_none(), "a logout token must not carry a nonce");
        ensure!(claims["jti"].is_string(), "no jti");
        Ok(claims["sid"].as_str().context("no sid")?.to_owned())
    }
}

// ------------------------------------------------------------------------------------------------
// Receivers

/// What a receiver does with a logout token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Verify (or count) it and answer 200.
    Answer,
    /// Never answer: the handler sleeps forever (the provider's request timeout ends the attempt).
    Hang,
}

/// Where the receivers listen.
///
/// adieu limits concurrent deliveries per *host name* (the URI's host, without the port), so
/// receivers that differ only by port share one limit. To make each receiver a distinct host, as
/// separate applications usually are, each gets its own loopback address (Linux routes all of
/// 127.0.0.0/8 to the loopback interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosts {
    /// Receiver `i` on `127.0.{1 + i / 200}.{10 + i % 200}`: one host each.
    Distinct,
    /// All receivers on `127.0.0.1`, distinct ports: one host for adieu's per-host limit.
    Shared,
}

impl Hosts {
    /// The address of receiver `i`.
    pub fn ip(self, i: usize) -> IpAddr {
        match self {
            Hosts::Shared => IpAddr::V4(Ipv4Addr::LOCALHOST),
            // Both octets stay within 1..=210 for any realistic receiver count.
            Hosts::Distinct => IpAddr::V4(Ipv4Addr::new(127, 0, (1 + i / 200) as u8, (10 + i % 200) as u8)),
        }
    }
}

/// Which tokens the receivers verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Every token (a receipt counts only once verified).
    All,
    /// Every `k`-th token across all receivers; the others are only counted.
    Sample(u64),
}

impl Verify {
    /// Every how many tokens one is verified (1: all).
    fn every(self) -> u64 {
        match self {
            Verify::All => 1,
            Verify::Sample(k) => k.max(1),
        }
    }
}

/// One logout token that arrived.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// Which receiver.
    pub receiver: usize,
    /// When it arrived (after verification, if verified).
    pub at: Instant,
    /// `Some(Ok(sid))` verified, `Some(Err(_))` failed verification, `None` not verified.
    pub verified: Option<Result<String, String>>,
    /// `(sub, sid)` read from the token's payload without checking it, when the receivers peek
    /// ([`Receivers::peek_subjects`]); `None` otherwise or if the payload has no such strings.
    pub subject: Option<(String, String)>,
    /// The token's `jti`, unverified, when the receivers peek.
    pub jti: Option<String>,
}

/// `(sub, sid)` and `jti` from a JWT's payload, unverified (cheap: no signature check).
fn peek_claims(token: &str) -> (Option<(String, String)>, Option<String>) {
    use base64::Engine;
    let Some(payload) = token.split('.').nth(1) else { return (None, None) };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else { return (None, None) };
    let Ok(claims) = serde_json::from_slice::<Value>(&bytes) else { return (None, None) };
    let subject = claims["sub"].as_str().zip(claims["sid"].as_str()).map(|(a, b)| (a.to_owned(), b.to_owned()));
    (subject, claims["jti"].as_str().map(str::to_owned))
}

#[derive(Debug)]
struct Shared {
    tx: mpsc::UnboundedSender<Receipt>,
    verifier: OnceLock<Verifier>,
    /// Verify every `sample`-th token (1: every one); see [`Verify`].
    sample: AtomicU64,
    peek: AtomicBool,
    /// Answer with `Connection: close`, so that every POST needs a new connection.
    close: AtomicBool,
    seen: AtomicU64,
}

#[derive(Debug)]
struct Endpoint {
    index: usize,
    client_id: String,
    behaviour: Behaviour,
    shared: Arc<Shared>,
}

/// N receivers, each on its own port, reporting receipts on one channel.
#[derive(Debug)]
pub struct Receivers {
    /// Address of receiver `i`.
    pub addrs: Vec<SocketAddr>,
    rx: mpsc::UnboundedReceiver<Receipt>,
    shared: Arc<Shared>,
    servers: Vec<JoinHandle<()>>,
}

async fn backchannel(State(ep): State<Arc<Endpoint>>, Form(form): Form<HashMap<String, String>>) -> Response {
    if ep.behaviour == Behaviour::Hang {
        std::future::pending::<()>().await;
    }
    let status = receive(&ep, form.get("logout_token"));
    if ep.shared.close.load(Ordering::Relaxed) {
        // hyper closes the connection after a response that carries `Connection: close`.
        (status, [(header::CONNECTION, "close")]).into_response()
    } else {
        status.into_response()
    }
}

/// Verifies (or counts) one token and reports its receipt; the status to answer.
fn receive(ep: &Endpoint, token: Option<&String>) -> StatusCode {
    let Some(token) = token else { return StatusCode::BAD_REQUEST };
    let n = ep.shared.seen.fetch_add(1, Ordering::Relaxed);
    let check = n.is_multiple_of(ep.shared.sample.load(Ordering::Relaxed).max(1));
    let verified = check.then(|| match ep.shared.verifier.get() {
        Some(v) => v.verify(token, &ep.client_id).map_err(|e| format!("{e:#}")),
        None => Err("the receiver has no verifier yet".to_owned()),
    });
    let ok = !matches!(verified, Some(Err(_)));
    let (subject, jti) = if ep.shared.peek.load(Ordering::Relaxed) { peek_claims(token) } else { (None, None) };
    let _ = ep.shared.tx.send(Receipt { receiver: ep.index, at: Instant::now(), verified, subject, jti });
    if ok { StatusCode::OK } else { StatusCode::BAD_REQUEST }
}

impl Receivers {
    /// Starts `n` receivers; receiver `i` listens on `hosts.ip(i)`, behaves as `behaviour(i)` and
    /// expects `aud` = [`client_id`]`(i)`.
    pub async fn start(
        n: usize,
        hosts: Hosts,
        behaviour: impl Fn(usize) -> Behaviour,
        verify: Verify,
    ) -> Result<Receivers> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            tx,
            verifier: OnceLock::new(),
            sample: AtomicU64::new(verify.every()),
            peek: AtomicBool::new(false),
            close: AtomicBool::new(false),
            seen: AtomicU64::new(0),
        });
        let mut addrs = Vec::with_capacity(n);
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let listener = TcpListener::bind((hosts.ip(i), 0)).await?;
            addrs.push(listener.local_addr()?);
            let ep = Arc::new(Endpoint {
                index: i,
                client_id: client_id(i),
                behaviour: behaviour(i),
                shared: shared.clone(),
            });
            let app = Router::new().route("/backchannel", post(backchannel)).with_state(ep);
            servers.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(Receivers { addrs, rx, shared, servers })
    }

    /// Installs the verifier (known only once the provider runs, which needs the addresses first).
    pub fn set_verifier(&self, v: Verifier) -> Result<()> {
        self.shared.verifier.set(v).map_err(|_| anyhow!("the verifier is already set"))
    }

    /// From now on, read `sub` and `sid` of every token (unverified) into [`Receipt::subject`],
    /// and its `jti` into [`Receipt::jti`].
    pub fn peek_subjects(&self) {
        self.shared.peek.store(true, Ordering::Relaxed);
    }

    /// From now on, verify as `verify` says.
    pub fn set_verify(&self, verify: Verify) {
        self.shared.sample.store(verify.every(), Ordering::Relaxed);
    }

    /// From now on, answer every POST with `Connection: close` (`true`: a connection per POST)
    /// or keep connections alive (`false`, the default).
    pub fn close_connections(&self, close: bool) {
        self.shared.close.store(close, Ordering::Relaxed);
    }

    /// The next receipt, waiting at most until `deadline`.
    pub async fn next(&mut self, deadline: tokio::time::Instant) -> Result<Receipt> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => bail!("the receivers stopped"),
            Err(_) => bail!("no logout token arrived before the deadline"),
        }
    }

    /// Throws away receipts that arrived so far.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    /// Waits for `n` receipts, at most `within`.
    pub async fn collect(&mut self, n: usize, within: Duration) -> Result<Vec<Receipt>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) => out.push(r),
                Ok(None) => bail!("the receivers stopped"),
                Err(_) => bail!("only {} of {n} logout tokens arrived within {within:?}", out.len()),
            }
        }
        Ok(out)
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        for s in &self.servers {
            s.abort();
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The scripted browser

/// One browser: its CSRF cookie and its session cookie at the provider.
#[derive(Debug, Clone)]
pub struct Browser {
    csrf: String,
    session: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        format!("adieu_csrf={}; adieu_session={}", self.csrf, self.session)
    }
}

/// HTTP to the provider, shared by all browsers (one connection pool, no redirects followed).
#[derive(Debug, Clone)]
pub struct Web {
    http: reqwest::Client,
    base: Arc<str>,
}

/// The value of cookie `name` among the response's `Set-Cookie` headers.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get_all(reqwest::header::SET_COOKIE).iter().find_map(|h| {
        let first = h.to_str().ok()?.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_owned())
    })
}

fn location(res: &reqwest::Response) -> Result<String> {
    ensure!(res.status() == StatusCode::SEE_OTHER, "expected 303, got {}", res.status());
    Ok(res.headers().get(reqwest::header::LOCATION).context("no Location")?.to_str()?.to_owned())
}

impl Web {
    /// A client for `provider`.
    pub fn new(provider: &Provider) -> Result<Web> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Web { http, base: provider.base.as_str().into() })
    }

    fn authorize_url(&self, c: &ClientReg) -> Result<url::Url> {
        Ok(url::Url::parse_with_params(
            &format!("{}/authorize", self.base),
            [
                ("response_type", "code"),
                ("client_id", c.id.as_str()),
                ("redirect_uri", c.redirect_uri.as_str()),
                ("scope", "openid"),
                ("state", "bench"),
            ],
        )?)
    }

    fn expect_code(loc: &str, c: &ClientReg) -> Result<()> {
        ensure!(
            loc.starts_with(&c.redirect_uri) && loc.contains("code="),
            "expected a code for {} but was sent to {loc}",
            c.id
        );
        Ok(())
    }

    /// A new browser signs in at `/authorize` for `first`: `/authorize` → `/login` form → code.
    pub async fn sign_in(&self, first: &ClientReg) -> Result<Browser> {
        let res = self.http.get(self.authorize_url(first)?).send().await?;
        let login = location(&res)?;
        ensure!(login.contains("/login?request="), "expected the sign-in page, was sent to {login}");
        let request = login.split_once("request=").map(|(_, r)| r.to_owned()).unwrap_or_default();
        let res = self.http.get(format!("{}{login}", self.base)).send().await?.error_for_status()?;
        let csrf = set_cookie(&res, "adieu_csrf").context("the sign-in page set no CSRF cookie")?;
        let res = self
            .http
            .post(format!("{}/login", self.base))
            .header(reqwest::header::COOKIE, format!("adieu_csrf={csrf}"))
            .form(&[("username", USERNAME), ("password", PASSWORD), ("csrf", &csrf), ("request", &request)])
            .send()
            .await?;
        let session = set_cookie(&res, "adieu_session").context("signing in set no session cookie")?;
        Self::expect_code(&location(&res)?, first)?;
        Ok(Browser { csrf, session })
    }

    /// Single sign-on to `c` in `b`'s session (creates the participation that earns `c` a token).
    pub async fn authorize(&self, b: &Browser, c: &ClientReg) -> Result<()> {
        let res =
            self.http.get(self.authorize_url(c)?).header(reqwest::header::COOKIE, b.cookie_header()).send().await?;
        Self::expect_code(&location(&res)?, c)
    }

    /// A new browser signed in to every client in `clients`: sign-in for the first, then SSO for
    /// the rest, `concurrency` at a time.
    pub async fn sign_in_to(&self, clients: &[ClientReg], concurrency: usize) -> Result<Browser> {
        let (first, rest) = clients.split_first().context("no clients")?;
        let b = self.sign_in(first).await?;
        let mut jobs = JoinSet::new();
        for c in rest {
            if jobs.len() >= concurrency {
                join_next(&mut jobs).await?;
            }
            let (web, b, c) = (self.clone(), b.clone(), c.clone());
            jobs.spawn(async move { web.authorize(&b, &c).await });
        }
        while join_next(&mut jobs).await?.is_some() {}
        Ok(b)
    }

    /// Signs out at `/logout/confirm` (initiator `rp-logout`). Returns the time to the whole
    /// response body and the page.
    pub async fn logout(&self, b: &Browser) -> Result<(Duration, String)> {
        let started = Instant::now();
        let res = self
            .http
            .post(format!("{}/logout/confirm", self.base))
            .header(reqwest::header::COOKIE, b.cookie_header())
            .form(&[("csrf", b.csrf.as_str()), ("confirm", "yes")])
            .send()
            .await?;
        let status = res.status();
        let body = res.text().await?;
        let took = started.elapsed();
        ensure!(status == StatusCode::OK, "logout answered {status}");
        ensure!(body.contains("Your session has ended"), "logout did not end a session: {body}");
        Ok((took, body))
    }
}
