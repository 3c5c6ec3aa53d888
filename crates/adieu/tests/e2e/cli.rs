//! The command line as an operator uses it: tables with headers or `--json`, RFC 3339 times, a
//! closed pipe, `logs --follow`, API tokens, `serve --listen`, taken ports, and `adieu demo`.

use super::binary::{command, free_port, healthy, run};
use adieu_core::UnixMillis;
use adieu_core::audit::{AuditEvent, AuditKind};
use adieu_core::store::AuditStore;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

async fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = run(dir, args, None).await;
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

fn is_rfc3339(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| s.ends_with('Z') && UnixMillis::parse_rfc3339(s).is_ok())
}

/// Proves: every list has a header and `--json` gives the same fields; times are RFC 3339.
#[tokio::test]
async fn lists_have_headers_json_and_rfc3339_times() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(dir.path(), &["user", "add", "alice", "--password-stdin"], Some("pw-1234567890\n")).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        dir.path(),
        &["client", "add", "--name", "App", "--client-id", "app", "--redirect-uri", "http://127.0.0.1:1/cb"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    for (args, header) in [
        (&["user", "list"][..], "id\tusername\temail"),
        (&["client", "list"][..], "client_id\tname\tbackchannel_logout_uri"),
        (&["deliveries", "list"][..], "id\tstatus\tclient\tinitiator\tattempts\tnext_attempt\tcreated\tlast_error"),
        (&["admin-token", "list"][..], "id\tkind\tlabel\tcreated"),
        (&["keys", "list"][..], "kid\talg\tgeneration\tstate\tcreated\tsigns_from\tretired\tprivate_key"),
    ] {
        let (ok, out, err) = run(dir.path(), args, None).await;
        assert!(ok && out.lines().next() == Some(header), "{args:?}: {out}{err}");
    }
    let users = json(dir.path(), &["user", "list", "--json"]).await;
    assert_eq!(users[0]["username"], "alice");
    let user = json(dir.path(), &["user", "show", "alice", "--json"]).await;
    assert!(is_rfc3339(&user["created"]), "{user}");
    let client = json(dir.path(), &["client", "show", "app", "--json"]).await;
    assert_eq!(client["redirect_uris"][0], "http://127.0.0.1:1/cb");
    assert!(is_rfc3339(&client["updated"]), "{client}");
    let (ok, _, err) = run(dir.path(), &["keys", "rotate", "--alg", "ES256"], None).await;
    assert!(ok, "{err}");
    let keys = json(dir.path(), &["keys", "list", "--json"]).await;
    assert!(keys.as_array().is_some_and(|k| !k.is_empty() && k.iter().all(|k| is_rfc3339(&k["created"]))), "{keys}");
    assert_eq!(json(dir.path(), &["deliveries", "list", "--json"]).await, serde_json::json!([]));
    let (ok, out, _) = run(dir.path(), &["user", "show", "alice"], None).await;
    let created = out.lines().find_map(|l| l.strip_prefix("created: ")).unwrap_or_default();
    assert!(ok && is_rfc3339(&created.into()), "{out}");
    let (ok, out, _) = run(dir.path(), &["logs", "--type", "user.created"], None).await;
    let event: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or("{}")).unwrap();
    assert!(ok && is_rfc3339(&event["at"]), "{out}");
    let (ok, out, _) = run(dir.path(), &["logs", "--since", "2100-01-01T00:00:00Z"], None).await;
    assert!(ok && out.is_empty(), "{out}");
    let (ok, _, err) = run(dir.path(), &["logs", "--since", "yesterday"], None).await;
    assert!(!ok && err.contains("RFC 3339"), "{err}");
}

/// Proves: `adieu logs | head -1` ends quietly with success (no panic, exit 0).
#[tokio::test]
async fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(dir.path(), &["migrate"], None).await;
    assert!(ok, "{err}");
    let url = format!("sqlite://{}", dir.path().join("adieu-data/adieu.db").display());
    let store = adieu_store::SqliteStore::open(&url).await.unwrap();
    for i in 0..1000 {
        let e = AuditEvent::new(
            AuditKind::UserCreated,
            "test",
            UnixMillis(i),
            serde_json::json!({ "pad": "x".repeat(200) }),
        );
        store.append_audit(&e).await.unwrap();
    }
    drop(store);
    let mut child = command(dir.path())
        .args(["logs", "--limit", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).await.unwrap();
    // The reader is gone: the rest (about 250 KB, more than a pipe holds) meets a closed pipe.
    assert!(first.starts_with('{'), "{first}");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
    let status = child.wait().await.unwrap();
    assert!(status.success() && !err.contains("panicked"), "{status:?}: {err}");
}

/// Proves: `logs --follow` prints the last events, then new ones as they are written.
#[tokio::test]
async fn logs_follow_prints_new_events_as_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(dir.path(), &["admin-token", "create", "--label", "first"], None).await;
    assert!(ok, "{err}");
    let mut child = command(dir.path()).args(["logs", "--follow"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.contains("api_token.created") && first.contains("first"), "{first}");
    let (ok, _, err) = run(dir.path(), &["admin-token", "create", "--label", "second"], None).await;
    assert!(ok, "{err}");
    let next = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.expect("a new line").unwrap();
    assert!(next.is_some_and(|l| l.contains("second")));
    child.kill().await.unwrap();
}

/// Proves: API tokens can be listed (never shown) and revoked by id, and both are audited.
#[tokio::test]
async fn admin_tokens_are_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let created = json(dir.path(), &["admin-token", "create", "--label", "ci", "--json"]).await;
    let (id, token) = (created["id"].as_str().unwrap(), created["token"].as_str().unwrap());
    let (ok, list, _) = run(dir.path(), &["admin-token", "list"], None).await;
    assert!(ok && list.contains(&format!("{id}\tadmin\tci\t")) && !list.contains(token), "{list}");
    let (ok, out, err) = run(dir.path(), &["admin-token", "revoke", id], None).await;
    assert!(ok && out.contains("revoked"), "{err}");
    assert_eq!(json(dir.path(), &["admin-token", "list", "--json"]).await, serde_json::json!([]));
    let (ok, _, err) = run(dir.path(), &["admin-token", "revoke", id], None).await;
    assert!(!ok && err.contains("no API token"), "{err}");
    let (_, log, _) = run(dir.path(), &["logs", "--type", "api_token."], None).await;
    assert!(log.contains("api_token.revoked") && log.contains("api_token.created"), "{log}");
}

/// Proves: `serve --listen` overrides the setting, and a taken address fails at once naming the
/// address and the setting.
#[tokio::test]
async fn serve_listen_and_a_taken_address() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = command(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("ADIEU_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(healthy(port).await, "serve --listen 127.0.0.1:{port} did not answer");
    let other = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (ok, _, err) = run(other.path(), &["serve", "--listen", &format!("127.0.0.1:{port}")], None).await;
    assert!(!ok && err.contains(&format!("127.0.0.1:{port}")) && err.contains("listen"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "it failed at once");
    child.kill().await.unwrap();
}

/// Proves: `adieu demo` with a taken port fails at once, saying which option moves it; it does
/// not offer or accept `--config`.
#[cfg(feature = "demo")]
#[tokio::test]
async fn demo_fails_fast_on_a_taken_port_and_takes_no_config() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port().to_string();
    let (a, b) = (free_port().to_string(), free_port().to_string());
    for (args, option) in [
        (vec!["demo", "--port", &taken, "--app-a-port", &a, "--app-b-port", &b], "--port"),
        (vec!["demo", "--port", &a, "--app-a-port", &taken, "--app-b-port", &b], "--app-a-port"),
    ] {
        let run = run(dir.path(), &args, None);
        let (ok, _, err) = tokio::time::timeout(Duration::from_secs(20), run).await.expect("the demo did not hang");
        assert!(!ok && err.contains(&format!("127.0.0.1:{taken}")) && err.contains(option), "{err}");
    }
    let (ok, help, _) = run(dir.path(), &["demo", "--help"], None).await;
    assert!(ok && !help.contains("--config"), "{help}");
    let (ok, _, err) = run(dir.path(), &["demo", "--config", "x.toml"], None).await;
    assert!(!ok && err.contains("does not read a configuration file"), "{err}");
}

/// Starts `adieu serve` with `env`, its log going to a file, until it answers; then stops it and
/// returns the log.
async fn serve_log(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("serve.log");
    let mut child = command(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("ADIEU_LISTEN")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // The log is read whether it came up or not (the caller's assertions say what is missing).
    // The log is written by a background thread, and a killed process loses what it had not
    // written yet: wait (a bounded time) for the start-up line before stopping it.
    if healthy(port).await {
        for _ in 0..100 {
            if std::fs::read_to_string(&log).is_ok_and(|l| l.contains("adieu is listening")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    child.kill().await.unwrap();
    std::fs::read_to_string(&log).unwrap()
}

/// Proves: `log_format = "json"` writes one JSON object per line; text written to a file has no
/// colour codes.
#[tokio::test]
async fn logs_are_json_lines_or_plain_text_without_colour_codes() {
    let json_log = serve_log(&[("ADIEU_LOG_FORMAT", "json")]).await;
    let lines: Vec<&str> = json_log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.iter().any(|l| l.contains("adieu is listening")), "{json_log}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    let text_log = serve_log(&[]).await;
    assert!(text_log.contains("adieu is listening") && !text_log.contains('\u{1b}'), "{text_log}");
}

/// Proves: shell completions and the manual page are generated from the command line's
/// definition (every command appears in both).
#[tokio::test]
async fn completions_and_the_man_page_come_from_the_definition() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, bash, err) = run(dir.path(), &["completions", "bash"], None).await;
    assert!(ok && bash.contains("_adieu()") && bash.contains("admin-token") && bash.contains("--json"), "{err}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (ok, out, err) = run(dir.path(), &["completions", shell], None).await;
        assert!(ok && out.contains("deliveries"), "{shell}: {err}");
    }
    let (ok, _, err) = run(dir.path(), &["completions", "tcsh"], None).await;
    assert!(!ok && err.contains("invalid value"), "{err}");
    let (ok, man, err) = run(dir.path(), &["man"], None).await;
    assert!(ok && man.contains(".TH adieu"), "{err}{man}");
    for cmd in ["serve", "deliveries", "admin\\-token", "keys", "completions"] {
        assert!(man.contains(cmd), "{cmd} missing from the man page");
    }
    let pages = dir.path().join("man");
    let (ok, _, err) = run(dir.path(), &["man", "--out-dir", pages.to_str().unwrap()], None).await;
    assert!(ok, "{err}");
    for page in ["adieu.1", "adieu-serve.1", "adieu-deliveries-retry.1", "adieu-admin-token-revoke.1"] {
        let text = std::fs::read_to_string(pages.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
}
