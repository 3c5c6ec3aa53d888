//! `adieu check-rp CLIENT_ID`: tests a registered application's back-channel logout endpoint
//! (`adieu_server::check_rp`). Prints one line per probe (or the report as JSON with `--json`)
//! and exits non-zero when a probe failed.

use crate::config::Config;
use crate::out;
use adieu_core::SystemClock;
use std::sync::Arc;

/// Runs the check with the provider's keys and outbound policy, as `adieu serve` would.
pub async fn run(config: &Config, client_id: &str) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    let state = adieu_server::AppState::new(store, config.settings()?, Arc::new(SystemClock)).await?;
    let report = adieu_server::check_rp::check(&state, client_id).await?;
    if out::json() {
        out::line(serde_json::to_string_pretty(&report)?)?;
    } else {
        out::line(format_args!("checking {} at {}", report.client_id, report.backchannel_logout_uri))?;
        for r in &report.results {
            let verdict = serde_json::to_value(r.verdict)?;
            let probe = serde_json::to_value(r.probe)?;
            out::line(format_args!(
                "{:<5} {:<24} answered {}; requires {}",
                verdict.as_str().unwrap_or_default().to_uppercase(),
                probe.as_str().unwrap_or_default(),
                r.answered,
                r.requires
            ))?;
            if let Some(note) = r.note {
                out::line(format_args!("      {note}"))?;
            }
            if let Some(fix) = r.fix {
                out::line(format_args!("      fix: {fix}"))?;
            }
        }
        out::line(format_args!("{} passed, {} warnings, {} failed", report.passed, report.warnings, report.failed))?;
    }
    anyhow::ensure!(report.failed == 0, "{} of {} probes failed", report.failed, report.results.len());
    Ok(())
}
