//! The README's `adieu demo` tour in a real browser: headless Chromium, driven by
//! `tests/browser/tour.mjs` (Playwright), against the real `adieu demo` process. Screenshots of every
//! step land in `target/browser-tour/`.
//!
//! Needs Debian's Chromium at `/usr/bin/chromium` and Node.js. When they are missing the test fails if
//! `ADIEU_REQUIRE_BROWSER=1` (CI sets it and installs Chromium first); otherwise, as root with apt-get,
//! it installs Chromium itself so that `cargo test --workspace` sets itself up on a fresh machine, and
//! only when that is impossible it says loudly that it skipped.

use adieu_testkit::receiver::Behavior;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "browser/frontchannel.rs"]
mod frontchannel;

const BIN: &str = env!("CARGO_BIN_EXE_adieu");
const CHROMIUM: &str = "/usr/bin/chromium";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn required() -> bool {
    std::env::var("ADIEU_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

/// Runs a set-up command, echoing its output only when it fails (apt and npm are chatty).
fn run_quietly(cmd: &mut Command) -> bool {
    match cmd.output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "browser tour: {cmd:?} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!("browser tour: could not run {cmd:?}: {e}");
            false
        }
    }
}

fn node_works() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn install_chromium() -> bool {
    let has_apt = Command::new("apt-get").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !is_root() || !has_apt {
        return false;
    }
    eprintln!("browser tour: {CHROMIUM} is missing; installing Debian's chromium with apt-get (once per machine)");
    let install = || {
        run_quietly(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    // A fresh machine may have no package lists yet; update only then, it is slow.
    install() || (run_quietly(Command::new("apt-get").arg("update")) && install())
}

/// Makes sure Chromium, Node.js and `tests/browser/node_modules` are there. `Err` is why the tour
/// cannot run; the caller turns it into a failure or a skip.
fn prepare(browser_dir: &Path) -> Result<(), String> {
    if !node_works() {
        return Err("node is not installed (Node.js 20 or newer runs tests/browser/tour.mjs)".into());
    }
    if !Path::new(CHROMIUM).exists() && (required() || !install_chromium()) {
        return Err(format!("{CHROMIUM} is missing (Debian: apt-get install -y --no-install-recommends chromium)"));
    }
    if !browser_dir.join("node_modules/playwright-core").exists() {
        eprintln!("browser tour: running npm ci in {}", browser_dir.display());
        // Playwright's own browser download is never wanted: the tour uses Debian's Chromium.
        let ok = run_quietly(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(browser_dir)
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
        );
        if !ok {
            return Err(format!("npm ci failed in {}", browser_dir.display()));
        }
    }
    Ok(())
}

/// Stops `adieu demo` however the test ends, panics included.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        // SIGINT is the demo's Ctrl-C: it stops cleanly and deletes its temporary database; SIGKILL
        // is the fallback.
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What `adieu demo` prints about itself, read the way a person would read it.
#[derive(Debug, Default)]
struct Printed {
    provider: Option<String>,
    username: Option<String>,
    password: Option<String>,
    app_a: Option<String>,
    app_b: Option<String>,
}

impl Printed {
    fn read(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("provider:") {
            // "provider: http://…   user: demo / password: demo-password"
            let words: Vec<&str> = rest.split_whitespace().collect();
            self.provider = words.first().map(|s| s.to_string());
            let after =
                |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)).map(|s| s.to_string());
            self.username = after("user:");
            self.password = after("password:");
        } else if let Some(rest) = line.strip_prefix("App A:") {
            self.app_a = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("App B:") {
            self.app_b = Some(rest.trim().to_owned());
        }
    }
}

/// The demo prints its addresses before each application has finished discovering the provider, so
/// wait until the page answers before a browser is pointed at it.
fn wait_for_page(url: &str, deadline: Instant) -> bool {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut answer = String::new();
            let sent = s.write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).is_ok();
            if sent
                && s.read_to_string(&mut answer).is_ok()
                && answer.lines().next().is_some_and(|l| l.contains(" 200 "))
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Proves the README tour in headless Chromium: sign in to App A on the provider's sign-in page, App
/// B by single sign-on, sign out of App A through the provider's /logout, and App B's page then says
/// the user is signed out (back-channel logout). Each step is a screenshot in target/browser-tour/.
#[test]
fn readme_demo_tour_in_headless_chromium() {
    let root = workspace_root();
    let browser_dir = root.join("tests/browser");
    if let Err(why) = prepare(&browser_dir) {
        assert!(!required(), "browser tour: {why} (ADIEU_REQUIRE_BROWSER=1 makes this a failure)");
        eprintln!();
        eprintln!("**************************************************************************");
        eprintln!("*** SKIPPED the browser tour (crates/adieu/tests/browser.rs): {why}");
        eprintln!("*** Set ADIEU_REQUIRE_BROWSER=1 to make this a failure.");
        eprintln!("**************************************************************************");
        eprintln!();
        return;
    }

    // A test's environment does not carry Cargo's target directory, but a shell's CARGO_TARGET_DIR is
    // inherited; otherwise it is the workspace's `target/`.
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).filter(|p| p.is_absolute());
    let out = target.unwrap_or_else(|| root.join("target")).join("browser-tour");
    // Old screenshots would pass for this run's.
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();

    let work = tempfile::tempdir().unwrap();
    let log_path = out.join("demo.log");
    let (op, a, b) = (free_port(), free_port(), free_port());
    let mut child = Command::new(BIN)
        .args(["demo", "--port", &op.to_string(), "--app-a-port", &a.to_string(), "--app-b-port", &b.to_string()])
        .current_dir(work.path())
        .env_remove("ADIEU_ISSUER")
        .env_remove("ADIEU_DATABASE_URL")
        .env_remove("ADIEU_CONFIG")
        // Its log ends up in a failure message; colour codes would garble it.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // A file, not a pipe: nobody drains stderr, and a full pipe would block the demo.
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // The reader thread keeps draining stdout until the demo exits.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let mut printed = Printed::default();
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                printed.read(&line);
                seen.push_str(&line);
                seen.push('\n');
                if line.starts_with("Press Ctrl-C") {
                    break;
                }
            }
            Err(e) => panic!("adieu demo did not print its addresses ({e:?}); stdout:\n{seen}\nstderr:\n{}", log()),
        }
    }
    let field = |v: &Option<String>, what: &str| {
        v.clone().unwrap_or_else(|| panic!("adieu demo's output has no {what}:\n{seen}"))
    };
    let provider = field(&printed.provider, "provider URL");
    let app_a = field(&printed.app_a, "App A URL");
    let app_b = field(&printed.app_b, "App B URL");
    let username = field(&printed.username, "user");
    let password = field(&printed.password, "password");
    assert_eq!(provider, format!("http://127.0.0.1:{op}"), "the demo ignored --port");
    assert_eq!(app_a, format!("http://127.0.0.1:{a}"), "the demo ignored --app-a-port");
    assert_eq!(app_b, format!("http://127.0.0.1:{b}"), "the demo ignored --app-b-port");
    for app in [&app_a, &app_b] {
        assert!(wait_for_page(app, deadline), "{app} did not answer 200; demo stderr:\n{}", log());
    }
    eprintln!("browser tour: adieu demo up after {:.1}s", started.elapsed().as_secs_f64());

    let tour = Instant::now();
    let status = Command::new("node")
        .arg(browser_dir.join("tour.mjs"))
        .args(["--provider", &provider, "--app-a", &app_a, "--app-b", &app_b])
        .args(["--username", &username, "--password", &password])
        .arg("--out")
        .arg(&out)
        .arg("--chromium")
        .arg(CHROMIUM)
        .status()
        .expect("running node tests/browser/tour.mjs");
    eprintln!("browser tour: tour.mjs took {:.1}s; screenshots in {}", tour.elapsed().as_secs_f64(), out.display());
    assert!(
        status.success(),
        "tests/browser/tour.mjs failed ({status}); its message is above, screenshots in {}; demo stderr:\n{}",
        out.display(),
        log()
    );
    drop(demo);
}

/// Stops `adieu serve` however the test ends.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the binary with `args` in `dir` to completion, feeding `stdin`; panics with its output if
/// it fails.
fn adieu(dir: &Path, args: &[&str], stdin: &str) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("ADIEU_ISSUER")
        .env_remove("ADIEU_DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "adieu {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// An empty `target/{name}` (or under an absolute `CARGO_TARGET_DIR`) for a test's screenshots.
fn out_dir(root: &Path, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).filter(|p| p.is_absolute());
    let out = target.unwrap_or_else(|| root.join("target")).join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    out
}

/// Sets up a provider in `work` (SQLite, one user `alice`, and a client per entry of `clients`,
/// each the arguments of `adieu client add`), starts `adieu serve` with its log in `out`, and waits
/// until it answers. Returns the process, the provider's address and the log's path.
fn serve_provider(work: &Path, out: &Path, clients: &[&[&str]]) -> (Serve, String, PathBuf) {
    let port = free_port();
    let provider = format!("http://127.0.0.1:{port}");
    let config = work.join("adieu.toml");
    std::fs::write(
        &config,
        format!(
            "issuer = \"{provider}\"\nlisten = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}/adieu.db\"\n\
             [delivery]\nallow_private_cidrs = [\"127.0.0.0/8\"]\nlogout_wait_ms = 1000\n",
            work.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    adieu(work, &["--config", cfg, "migrate"], "");
    adieu(work, &["--config", cfg, "user", "add", "alice", "--password-stdin"], "correct horse battery\n");
    for client in clients {
        let mut args = vec!["--config", cfg, "client", "add"];
        args.extend_from_slice(client);
        adieu(work, &args, "");
    }
    let log_path = out.join("serve.log");
    let child = Command::new(BIN)
        .args(["--config", cfg, "serve"])
        .current_dir(work)
        .env_remove("ADIEU_ISSUER")
        .env_remove("ADIEU_DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let serve = Serve(child);
    let up = wait_for_page(&provider, Instant::now() + Duration::from_secs(60));
    assert!(up, "adieu serve did not come up: {}", std::fs::read_to_string(&log_path).unwrap_or_default());
    (serve, provider, log_path)
}

/// Proves in headless Chromium, with the provider's Content Security Policy in force: the
/// signed-out page says an application with a slow back-channel endpoint is being told, and then,
/// without a reload, that it is signed out (its script reads `/logout/status/…`); the status page
/// passes axe-core in both colour schemes. Screenshots in target/browser-tour/ (20-, 21-).
#[test]
fn signed_out_page_updates_itself_in_headless_chromium() {
    let root = workspace_root();
    let browser_dir = root.join("tests/browser");
    if let Err(why) = prepare(&browser_dir) {
        assert!(!required(), "live signed-out page: {why} (ADIEU_REQUIRE_BROWSER=1 makes this a failure)");
        eprintln!("*** SKIPPED the live signed-out page in a browser: {why}");
        return;
    }
    let out = out_dir(&root, "browser-live");

    // The application's back-channel endpoint answers 200 after 2.5 s: longer than the page waits
    // (`logout_wait_ms`, 1 s), so the page shows it being told first.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slow = Behavior::Slow(200, Duration::from_millis(2500));
    let receiver = rt.block_on(adieu_testkit::receiver::Receiver::start(slow));
    let app = receiver.uri.split("/backchannel").next().unwrap().to_owned();
    let redirect = format!("{app}/callback");

    let work = tempfile::tempdir().unwrap();
    let client: &[&str] = &[
        "--name",
        "Slow App",
        "--client-id",
        "slow-app",
        "--redirect-uri",
        &redirect,
        "--backchannel-logout-uri",
        &receiver.uri,
        "--backchannel-logout-initiators",
        "all",
    ];
    let (_serve, provider, log) = serve_provider(work.path(), &out, &[client]);
    let log = || std::fs::read_to_string(&log).unwrap_or_default();

    let status = Command::new("node")
        .arg(browser_dir.join("live.mjs"))
        .args(["--provider", &provider, "--client-id", "slow-app", "--redirect-uri", &redirect])
        .args(["--username", "alice", "--password", "correct horse battery", "--chromium", CHROMIUM])
        .arg("--out")
        .arg(&out)
        .status()
        .expect("running node tests/browser/live.mjs");
    assert!(
        status.success(),
        "tests/browser/live.mjs failed ({status}); screenshots in {}; log:\n{}",
        out.display(),
        log()
    );
    drop(rt);
}
