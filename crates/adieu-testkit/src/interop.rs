//! panva's `oidc-provider` for Node.js (`tests/interop/op.mjs`, version pinned in its lockfile):
//! a provider we did not write, for the interoperability tests of `adieu-rp` (the demo
//! application) and of adieu's upstream sign-in; and panva's `openid-client`
//! (`tests/interop/token_status.mjs`), a client we did not write, against adieu's introspection
//! and revocation endpoints.
//!
//! ```no_run
//! # async fn run() {
//! use adieu_testkit::interop;
//! if interop::tool_version("node").is_some() {
//!     interop::ensure_node_modules();
//!     let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
//!     let (_op, issuer) = interop::start_op("http://127.0.0.1:3000", "app", "secret", lines.clone()).await;
//!     println!("oidc-provider at {issuer}");
//! }
//! # }
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

/// Lines a process wrote, kept to be shown when a test fails.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// `tests/interop`, where `op.mjs` and its lockfile are.
pub fn dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// `tool --version`, if the tool runs.
pub fn tool_version(tool: &str) -> Option<String> {
    let out = std::process::Command::new(tool).arg("--version").stdin(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `npm ci` from the committed lockfile when the packages are not installed yet.
pub fn ensure_node_modules() {
    let dir = dir();
    let installed = ["oidc-provider", "openid-client", "express-openid-connect", "express-session"];
    if installed.iter().all(|p| dir.join(format!("node_modules/{p}/package.json")).exists()) {
        return;
    }
    let out = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("running npm ci");
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `op.mjs` with one client (`client_id`, `client_secret`) of the application at
/// `rp_base`, and waits for its `OP_ISSUER=` line. Its output goes to `log`. The process is
/// killed when the returned `Child` is dropped.
pub async fn start_op(rp_base: &str, client_id: &str, client_secret: &str, log: Lines) -> (Child, String) {
    let mut child = Command::new("node")
        .arg("op.mjs")
        .args(["--port", "0", "--rp-base-url", rp_base, "--client-id", client_id, "--client-secret", client_secret])
        .current_dir(dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting node op.mjs");
    let push = |log: &Lines, line: String| log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    let (issuer_tx, issuer_rx) = tokio::sync::oneshot::channel();
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let out = log.clone();
    tokio::spawn(async move {
        let mut issuer_tx = Some(issuer_tx);
        while let Ok(Some(line)) = stdout.next_line().await {
            if let Some(issuer) = line.strip_prefix("OP_ISSUER=")
                && let Some(tx) = issuer_tx.take()
            {
                let _ = tx.send(issuer.to_owned());
            }
            push(&out, line);
        }
    });
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let err = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            push(&err, format!("stderr: {line}"));
        }
    });
    match tokio::time::timeout(Duration::from_secs(30), issuer_rx).await {
        Ok(Ok(issuer)) => (child, issuer),
        _ => panic!(
            "oidc-provider printed no OP_ISSUER line within 30 s:\n{}",
            log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
        ),
    }
}

/// The first `<form …>` that contains `marker` on the page at `page_url`: its absolute action
/// URL and its hidden inputs.
pub fn form(page_url: &Url, html: &str, marker: &str) -> (Url, Vec<(String, String)>) {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker:?} on {page_url}:\n{html}"));
    let start = html[..at].rfind("<form").unwrap_or_else(|| panic!("{marker:?} is not in a form on {page_url}"));
    let end = start + html[start..].find("</form>").expect("unclosed form");
    let form = &html[start..end];
    let action = attr(form, "action").expect("form without action");
    let action = page_url.join(&action).expect("form action is a URL");
    let hidden = form
        .split("<input")
        .skip(1)
        .filter(|i| attr(i, "type").as_deref() == Some("hidden"))
        .filter_map(|i| Some((attr(i, "name")?, attr(i, "value").unwrap_or_default())))
        .collect();
    (action, hidden)
}

/// The double-quoted attribute `name` of the first tag in `tag`, with entities decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let value = &tag[start..start + tag[start..].find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
