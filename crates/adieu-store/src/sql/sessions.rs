//! OP sessions, participations, and ending a session: the one code path every initiator goes
//! through, inside the caller's transaction (the outbox).

use super::Dialect;
use adieu_core::id::{SessionId, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::session::EndedSession;
use adieu_core::store::StoreResult;
use adieu_core::time::UnixMillis;

/// Ends one session inside the caller's transaction: marks it ended, revokes its tokens that are
/// not `offline_access`, writes the deliveries (outbox) that [`adieu_core::delivery::notified`]
/// says and audits `session.ended`. `None` if it does not exist or had already ended.
pub(crate) async fn end_session_in<D: Dialect>(
    conn: &mut D::Connection,
    id: &SessionId,
    initiator: Initiator,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<Option<EndedSession>> {
    let _ = (conn, id, initiator, actor, at);
    todo!("being ported")
}

/// Ends every open session of `user` inside the caller's transaction (locked first, oldest first).
pub(crate) async fn end_user_sessions_in<D: Dialect>(
    conn: &mut D::Connection,
    user: &UserId,
    initiator: Initiator,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<Vec<EndedSession>> {
    let _ = (conn, user, initiator, actor, at);
    todo!("being ported")
}

/// Revokes every access and refresh token of `user`, offline ones included; returns how many.
pub(crate) async fn revoke_user_tokens_in<D: Dialect>(
    conn: &mut D::Connection,
    user: &UserId,
    at: UnixMillis,
) -> StoreResult<u64> {
    let _ = (conn, user, at);
    todo!("being ported")
}
