//! Retention (`[retention]`): finished deliveries with their attempts, and audit events, are
//! deleted once they are older than a configurable age, so the database does not grow without
//! bound under normal use.
//!
//! Defaults: deliveries 30 days after they finished (delivered, rejected, dead or discarded;
//! pending ones are never pruned), audit events 365 days (a year of history for security
//! reviews). `0` keeps them forever. The pruner runs at start and every `interval_secs`
//! (default 300) and deletes `batch_size` rows (default 500) per transaction, pausing between
//! batches, so a logout that comes while it runs waits at most for one small batch. To keep
//! more, export first: `adieu logs` and `GET /api/v1/logs`, `adieu deliveries list` and
//! `GET /api/v1/deliveries` read the same rows.

use crate::AppState;
use adieu_core::store::StoreResult;
use adieu_core::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::task::JoinHandle;

/// `[retention]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days a finished delivery (and its attempts) is kept (default 30; 0 = forever).
    pub deliveries_days: u32,
    /// Days an audit event is kept (default 365; 0 = forever).
    pub audit_days: u32,
    /// Rows deleted per transaction (default 500).
    pub batch_size: u32,
    /// Seconds between two pruning runs (default 300).
    pub interval_secs: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { deliveries_days: 30, audit_days: 365, batch_size: 500, interval_secs: 300 }
    }
}

/// What one pruning run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Finished deliveries (with their attempts).
    pub deliveries: u64,
    /// Audit events.
    pub audit_events: u64,
}

const DAY_MS: i64 = 86_400_000;

/// The pause between two batches: other writers go first.
const PAUSE: Duration = Duration::from_millis(5);

/// Deletes everything past its age at the clock's now, batch by batch.
pub async fn prune_once(state: &AppState) -> StoreResult<Pruned> {
    let r = &state.settings.retention;
    let now = state.clock.now();
    let batch = r.batch_size.max(1);
    let cutoff = |days: u32| UnixMillis(now.0 - i64::from(days) * DAY_MS);
    let store = &state.store;
    let mut pruned = Pruned::default();
    if r.deliveries_days > 0 {
        let before = cutoff(r.deliveries_days);
        pruned.deliveries = drain(batch, || store.prune_deliveries(before, batch)).await?;
    }
    if r.audit_days > 0 {
        let before = cutoff(r.audit_days);
        pruned.audit_events = drain(batch, || store.prune_audit(before, batch)).await?;
    }
    Ok(pruned)
}

/// Runs one batch after another, pausing between them, until a batch comes back short; returns
/// how many rows went in all.
async fn drain<F, Fut>(batch: u32, mut one: F) -> StoreResult<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<u64>>,
{
    let mut total = 0;
    loop {
        let n = one().await?;
        total += n;
        if n < u64::from(batch) {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// Prunes at start, then every `retention.interval_secs`.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(state.settings.retention.interval_secs.max(1)));
        loop {
            every.tick().await;
            match prune_once(&state).await {
                Ok(p) if p != Pruned::default() => tracing::info!(
                    deliveries = p.deliveries,
                    audit_events = p.audit_events,
                    "retention: pruned finished deliveries and audit events past their age"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention: pruning failed; trying again at the next run"),
            }
        }
    })
}
