//! Front-Channel Logout 1.0 in headless Chromium (`tests/browser/frontchannel.mjs`).

use super::*;

/// Proves, with the provider's Content Security Policy in force: an application without a back
/// channel, signed in with its own cookie session, is told through the signed-out page's frame
/// (with `iss`, `sid` and its own query) and ends its session, whether the user signs out at the
/// provider or from the application (then the browser is sent back with `state` after the frame
/// loaded); the application is third-party, so the first sign-in shows the consent screen; that
/// screen and the page with a frame pass axe-core in English, German, French and Spanish.
/// Screenshots in target/browser-frontchannel/.
#[test]
fn frontchannel_logout_ends_the_session_of_an_application_without_a_back_channel() {
    let root = workspace_root();
    let browser_dir = root.join("tests/browser");
    if let Err(why) = prepare(&browser_dir) {
        assert!(!required(), "front-channel logout: {why} (ADIEU_REQUIRE_BROWSER=1 makes this a failure)");
        eprintln!("*** SKIPPED front-channel logout in a browser: {why}");
        return;
    }
    let out = out_dir(&root, "browser-frontchannel");
    let rp_port = free_port().to_string();
    let rp = format!("http://127.0.0.1:{rp_port}");
    let (redirect, bye, front) =
        (format!("{rp}/callback"), format!("{rp}/bye"), format!("{rp}/frontchannel?tenant=t1"));
    let client: &[&str] = &[
        "--name",
        "Browser-only App",
        "--client-id",
        "fc-app",
        "--public",
        "--redirect-uri",
        &redirect,
        "--post-logout-redirect-uri",
        &bye,
        "--frontchannel-logout-uri",
        &front,
        "--frontchannel-logout-session-required",
        "--third-party",
    ];
    let work = tempfile::tempdir().unwrap();
    let (_serve, provider, log) = serve_provider(work.path(), &out, &[client]);
    let status = Command::new("node")
        .arg(browser_dir.join("frontchannel.mjs"))
        .args(["--provider", &provider, "--client-id", "fc-app", "--rp-port", &rp_port])
        .args(["--username", "alice", "--password", "correct horse battery", "--chromium", CHROMIUM])
        .arg("--out")
        .arg(&out)
        .status()
        .expect("running node tests/browser/frontchannel.mjs");
    assert!(
        status.success(),
        "tests/browser/frontchannel.mjs failed ({status}); screenshots in {}; log:\n{}",
        out.display(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
