//! The one function that ends an OP session, whatever ended it.
//!
//! Every initiator in the server calls [`end_session`] (or [`end_session_as`]) with its
//! [`Initiator`]. Changes that end several sessions in the same transaction as another change (a new
//! password, a deleted account, the sweeper's batches; see [`crate::user_admin`] and [`crate::sweeper`])
//! call the store's batch operations, which run the same per-session step inside it, then
//! [`announce`]. The admin CLI, a separate process, calls the same functions without a hub; the
//! server's worker finds those deliveries on its next poll. The store ends the session, revokes its
//! non-offline tokens and writes one delivery per subscribed application in one transaction (the
//! outbox), so a committed logout is never lost; then the workers are woken.
//! [`end_session_and_wait`] also waits, within a budget, for the first attempts (the logout page).

use crate::AppState;
use crate::delivery::DeliveryHub;
use adieu_core::audit::Actor;
use adieu_core::delivery::{Delivery, DeliveryState, DeliveryStatus, Verdict};
use adieu_core::id::{ClientId, SessionId};
use adieu_core::initiator::Initiator;
use adieu_core::session::EndedSession;
use adieu_core::store::{DeliveryFilter, StoreResult};
use std::collections::HashMap;
use tokio::sync::broadcast::error::RecvError;

/// Ends `session` because of `initiator` and wakes the delivery workers. `None` if it had already
/// ended (ending is idempotent). Audited with the `system` actor.
pub async fn end_session(
    state: &AppState,
    session: &SessionId,
    initiator: Initiator,
) -> StoreResult<Option<EndedSession>> {
    end_session_as(state, session, initiator, &Actor::System.name()).await
}

/// [`end_session`] audited as `actor` (`admin-api`, `cli`…).
pub async fn end_session_as(
    state: &AppState,
    session: &SessionId,
    initiator: Initiator,
    actor: &str,
) -> StoreResult<Option<EndedSession>> {
    let now = state.clock.now();
    let ended = state.store.end_session_as(session, initiator, actor, now).await?;
    announce(Some(&state.delivery), ended.as_slice());
    Ok(ended)
}

/// After the store ended sessions: logs each, hands the deliveries written leased to this
/// replica to its worker (if the store did not already), and wakes the delivery workers of `hub`
/// if deliveries were written pending. Without a hub (the CLI, another process) the server's worker
/// finds them on its next poll.
pub fn announce(hub: Option<&DeliveryHub>, ended: &[EndedSession]) {
    for e in ended {
        e.hand_over();
        tracing::info!(
            session = %e.session.id,
            sub = %e.session.user_id,
            initiator = e.session.end_reason.map_or("-", Initiator::as_str),
            participations = e.participations.len(),
            deliveries = e.deliveries.len(),
            revoked_tokens = e.revoked_tokens,
            "session ended"
        );
    }
    if let Some(hub) = hub
        && ended.iter().flat_map(|e| &e.deliveries).any(|d| d.status == DeliveryStatus::Pending)
    {
        hub.wake();
    }
}

/// [`end_session`], then waits until `deadline` for the first attempt of each delivery (the
/// caller sets it from when the request arrived, so the budget covers the whole request). Returns
/// the outcome per client for those that finished in time; the rest continue in the background.
pub async fn end_session_and_wait(
    state: &AppState,
    session: &SessionId,
    initiator: Initiator,
    deadline: tokio::time::Instant,
) -> StoreResult<(Option<EndedSession>, HashMap<ClientId, Verdict>)> {
    // Subscribe before the commit so no result can slip past.
    let mut rx = state.delivery.events.subscribe();
    let ended = end_session(state, session, initiator).await?;
    let mut outcomes = HashMap::new();
    let Some(e) = &ended else { return Ok((ended, outcomes)) };
    let mut waiting: HashMap<&str, &ClientId> = e.deliveries.iter().map(|d| (d.id.as_str(), &d.client_id)).collect();
    if waiting.is_empty() || tokio::time::Instant::now() >= deadline {
        return Ok((ended, outcomes));
    }
    // This replica's own attempts arrive as events. Another replica's worker (PostgreSQL, or an
    // API-only replica) may make the first attempt instead; its result is only in the database, so
    // the remaining deliveries are also read back at a short interval.
    let mut check = tokio::time::interval(STORE_CHECK_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    while !waiting.is_empty() {
        tokio::select! {
            ev = tokio::time::timeout_at(deadline, rx.recv()) => match ev {
                Ok(Ok(ev)) => {
                    if let Some(client) = waiting.remove(ev.delivery_id.as_str()) {
                        outcomes.insert(client.clone(), ev.verdict);
                    }
                }
                // Missed events are caught up by the store check.
                Ok(Err(RecvError::Lagged(_))) => {}
                Ok(Err(RecvError::Closed)) | Err(_) => break,
            },
            _ = check.tick() => {
                // One indexed read of the session's deliveries per tick, however many are left.
                let filter = DeliveryFilter {
                    session_id: Some(e.session.id.clone()),
                    limit: Some(1000),
                    ..Default::default()
                };
                for d in state.store.deliveries(&filter).await? {
                    if let Some(outcome) = first_attempt_verdict(&d)
                        && let Some(client) = waiting.remove(d.id.as_str())
                    {
                        outcomes.insert(client.clone(), outcome);
                    }
                }
            }
        }
    }
    Ok((ended, outcomes))
}

/// How often the sign-out page reads back deliveries another replica may have attempted.
const STORE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The verdict on a delivery's first attempt as recorded in the store, if it was made.
fn first_attempt_verdict(d: &Delivery) -> Option<Verdict> {
    let reason = || d.last_error.clone().unwrap_or_default();
    match d.state() {
        DeliveryState::Delivered { .. } => Some(Verdict::Delivered),
        DeliveryState::Rejected { .. } => Some(Verdict::Rejected),
        DeliveryState::Dead { reason, .. } => Some(Verdict::Dead { reason }),
        DeliveryState::Pending { next_attempt_at } if d.attempts > 0 => {
            Some(Verdict::Retry { at: next_attempt_at, reason: reason() })
        }
        DeliveryState::Pending { .. } | DeliveryState::Leased { .. } | DeliveryState::Discarded { .. } => None,
    }
}
