//! Starting an OP session in a browser, by a password ([`crate::login`]) or through an upstream
//! provider ([`crate::upstream`]): both call [`sign_in_with`], which is why it lives apart from
//! either of them.

use crate::AppState;
use crate::browser::{current_session, new_cookie_value};
use crate::error::PageError;
use adieu_core::id::SessionId;
use adieu_core::initiator::Initiator;
use adieu_core::session::Session;
use adieu_core::upstream::UpstreamSignIn;
use adieu_core::user::User;
use axum_extra::extract::CookieJar;

/// Signs `user` in on this browser: re-authenticates the current session if it is the same user's,
/// otherwise ends the other user's session (`session-revoked`) and starts a new one. The cookie value
/// is always new.
pub async fn sign_in(state: &AppState, jar: CookieJar, user: &User) -> Result<(CookieJar, Session), PageError> {
    sign_in_with(state, jar, user, None).await
}

/// [`sign_in`], by a password (`upstream` = `None`) or through an upstream provider, whose
/// `iss`/`sub`/`sid` the session then remembers so that the upstream's logout finds it.
pub async fn sign_in_with(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    upstream: Option<&UpstreamSignIn>,
) -> Result<(CookieJar, Session), PageError> {
    let now = state.clock.now();
    let (cookie, cookie_hash) = new_cookie_value();
    let current = current_session(state, &jar).await?;
    let session = match current {
        Some(s) if s.user_id == user.id => {
            match upstream {
                Some(up) => state.store.reauthenticate_upstream_session(&s.id, &cookie_hash, up).await?,
                None => state.store.reauthenticate_session(&s.id, &cookie_hash, now).await?,
            }
            Session { auth_time: now, last_seen_at: now, ..s }
        }
        other => {
            if let Some(old) = other {
                crate::session_end::end_session(state, &old.id, Initiator::SessionRevoked).await?;
            }
            let s = Session {
                id: SessionId::new(crate::crypto::random_id()),
                user_id: user.id.clone(),
                auth_time: now,
                created_at: now,
                last_seen_at: now,
                ended_at: None,
                end_reason: None,
            };
            match upstream {
                Some(up) => state.store.create_upstream_session(&s, &cookie_hash, up).await?,
                None => state.store.create_session(&s, &cookie_hash).await?,
            }
            s
        }
    };
    Ok((jar.add(state.cookies.session_cookie(cookie)), session))
}
