//! The one function that ends an OP session, whatever ended it.
//!
//! Every initiator (RP-initiated logout here; password change, expiry, revocation, account
//! deletion, upstream logout elsewhere) calls [`end_session`] with its [`Initiator`]. The store ends
//! the session and revokes its non-offline tokens in one transaction, and returns the session's
//! participations; back-channel notifications belong in that same transaction (the outbox), so that
//! a committed logout can never be lost.

use crate::AppState;
use adieu_core::id::SessionId;
use adieu_core::initiator::Initiator;
use adieu_core::session::EndedSession;
use adieu_core::store::StoreResult;

/// Ends `session` because of `initiator`. `None` if it had already ended (ending is idempotent).
pub async fn end_session(
    state: &AppState,
    session: &SessionId,
    initiator: Initiator,
) -> StoreResult<Option<EndedSession>> {
    let now = state.clock.now();
    let ended = state.store.end_session(session, initiator, now).await?;
    if let Some(e) = &ended {
        tracing::info!(
            session = %e.session.id,
            sub = %e.session.user_id,
            %initiator,
            participations = e.participations.len(),
            revoked_tokens = e.revoked_tokens,
            "session ended"
        );
    }
    Ok(ended)
}
