//! The session sweeper: ends sessions past their idle or absolute lifetime with `session-expired`.
//!
//! An expired session is already refused everywhere (cookie, token endpoint, userinfo check
//! `Session::is_active`); the sweeper is what *ends* it, so its applications are told. It runs once
//! at start (sessions that expired while the server was stopped) and then every
//! `session.sweep_interval_secs`, ending sessions in batches of [`BATCH`] — each batch one store
//! transaction that ends the sessions and writes their deliveries — and wakes the workers.
//! Time comes from the state's clock, so tests move a `ManualClock` and call [`sweep_once`].

use crate::AppState;
use adieu_core::store::StoreResult;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Sessions ended per transaction.
pub const BATCH: u32 = 500;

/// Ends every session expired at the clock's current time, batch by batch; returns how many ended.
pub async fn sweep_once(state: &AppState) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let now = state.clock.now();
        let ended = state.store.end_expired_sessions(state.lifetime, now, BATCH).await?;
        crate::session_end::announce(Some(&state.delivery), &ended);
        total += ended.len();
        if ended.len() < BATCH as usize {
            break;
        }
    }
    if total > 0 {
        tracing::info!(sessions = total, "ended expired sessions (session-expired)");
    }
    Ok(total)
}

/// Starts the sweeper: one sweep now, then one every `session.sweep_interval_secs`.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(state.settings.session.sweep_interval_secs));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The first tick completes at once: the start-up sweep.
            every.tick().await;
            if let Err(e) = sweep_once(&state).await {
                tracing::warn!(error = %e, "sweeping expired sessions failed; trying again at the next interval");
            }
        }
    })
}
