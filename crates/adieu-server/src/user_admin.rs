//! Users and their sessions: the one set of functions behind the management API
//! (`api::users`, `api::sessions`) and the `adieu user` / `adieu session` commands.
//!
//! Each change is one store call, so the account change, the end of the sessions it ends (with
//! their deliveries, the outbox) and the audit events commit together:
//!
//! | function | initiator of the sessions it ends |
//! |---|---|
//! | [`update`] with a password | `password-changed` (every token revoked, `offline_access` too) |
//! | [`update`] with a different email | `email-identifier-changed` |
//! | [`delete`] | `account-deleted` (every token revoked, codes and the account row removed) |
//! | [`revoke_session`], [`revoke_all_sessions`] | `session-revoked` |
//!
//! The caller says who acts ([`Ctx::actor`]: `admin-api`, `cli`, or `account:<user id>` on the
//! account page, [`crate::account_page`]) and, in the server, passes the delivery hub so the workers are
//! woken at once ([`crate::session_end::announce`]).

use crate::AppState;
use crate::delivery::DeliveryHub;
use crate::password::{PasswordError, Passwords};
use adieu_core::client::Client;
use adieu_core::id::{ClientId, SessionId, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::session::{EndedSession, SessionLifetime};
use adieu_core::user::{User, UserChanges, UserQuery, UserUpdated, normalize_email, normalize_username};
use adieu_core::{Store, StoreError, UnixMillis};
use serde::Serialize;
use std::collections::HashMap;

/// Who acts, when, and with what.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// Password hashing.
    pub passwords: &'a Passwords,
    /// The server's delivery workers, woken after a logout; `None` in another process (the CLI).
    pub hub: Option<&'a DeliveryHub>,
    /// The audit actor.
    pub actor: &'a str,
    /// The current time.
    pub now: UnixMillis,
}

impl<'a> Ctx<'a> {
    /// The server's context for `actor` at the state's clock.
    pub fn server(state: &'a AppState, actor: &'a str) -> Self {
        Ctx {
            store: state.store.as_ref(),
            passwords: &state.passwords,
            hub: Some(&state.delivery),
            actor,
            now: state.clock.now(),
        }
    }
}

/// Why a user or session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// Input that breaks a rule; the text says which, for the caller.
    #[error("{0}")]
    Invalid(String),
    /// The username or email is taken by another account.
    #[error("a user with this {0} already exists")]
    Taken(String),
    /// No such user.
    #[error("no such user")]
    NoSuchUser,
    /// No such session.
    #[error("no such session")]
    NoSuchSession,
    /// The session had already ended, for this reason.
    #[error("the session has already ended ({})", .0.map_or("unknown", Initiator::as_str))]
    SessionEnded(Option<Initiator>),
    /// Storage failed (details for the log only).
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(field) => UserError::Taken(field),
            e => UserError::Store(e),
        }
    }
}

impl From<PasswordError> for UserError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Hashing => UserError::Store(StoreError::Backend("password hashing failed".into())),
            e => UserError::Invalid(e.to_string()),
        }
    }
}

impl From<adieu_core::user::IdentifierError> for UserError {
    fn from(e: adieu_core::user::IdentifierError) -> Self {
        UserError::Invalid(e.to_string())
    }
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Sign-in name.
    pub username: String,
    /// Email address, if any.
    pub email: Option<String>,
    /// The password in clear (hashed here, never stored).
    pub password: String,
}

/// A change of account; absent members keep their value.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// A new username.
    pub username: Option<String>,
    /// A new email address; `Some(None)` removes it.
    pub email: Option<Option<String>>,
    /// A new password in clear.
    pub password: Option<String>,
}

/// A user as the API and CLI show it (never the password hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserView {
    /// The id: the `sub` of every token.
    pub id: String,
    /// Sign-in name.
    pub username: String,
    /// Email address, or `null`.
    pub email: Option<String>,
    /// Creation time (Unix milliseconds).
    pub created_at: UnixMillis,
    /// Last change (Unix milliseconds).
    pub updated_at: UnixMillis,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            username: u.username.clone(),
            email: u.email.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// One application that took part in a session.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApplicationView {
    /// The client.
    pub client_id: String,
    /// Its display name.
    pub client_name: String,
    /// Its `sid` for this session (as in its ID tokens and logout tokens).
    pub sid: String,
    /// When it first got an ID token in this session (Unix milliseconds).
    pub since: UnixMillis,
}

/// An open session with its applications.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionView {
    /// The OP session's internal id (the one `DELETE /api/v1/sessions/{id}` takes; not a `sid`).
    pub id: String,
    /// The user's `sub`.
    pub user_id: String,
    /// When the user signed in.
    pub created_at: UnixMillis,
    /// When the user last entered a password in it.
    pub auth_time: UnixMillis,
    /// Last use.
    pub last_seen_at: UnixMillis,
    /// When it expires unless used (idle) or at the latest (absolute).
    pub expires_at: UnixMillis,
    /// The applications signed in through it, oldest first.
    pub applications: Vec<ApplicationView>,
}

/// Hashes a password under the policy.
async fn hash(ctx: &Ctx<'_>, password: &str) -> Result<String, UserError> {
    Ok(ctx.passwords.hash(password).await?)
}

/// Creates an account (audited `user.created`).
pub async fn create(ctx: &Ctx<'_>, new: NewUser) -> Result<User, UserError> {
    let username = normalize_username(&new.username)?;
    let email = new.email.as_deref().map(normalize_email).transpose()?;
    let password_hash = hash(ctx, &new.password).await?;
    let user = User {
        id: UserId::new(crate::crypto::random_id()),
        username,
        email,
        password_hash,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    ctx.store.add_user(&user, ctx.actor).await?;
    Ok(user)
}

/// Changes an account. A new password ends every session (`password-changed`) and revokes every
/// token; a different email ends every session (`email-identifier-changed`); see
/// [`UserChanges::ending_initiator`]. An empty patch is refused.
pub async fn update(ctx: &Ctx<'_>, id: &UserId, patch: UserPatch) -> Result<UserUpdated, UserError> {
    let changes = UserChanges {
        username: patch.username.as_deref().map(normalize_username).transpose()?,
        email: match patch.email {
            Some(Some(e)) => Some(Some(normalize_email(&e)?)),
            Some(None) => Some(None),
            None => None,
        },
        password_hash: None,
    };
    if changes.is_empty() && patch.password.is_none() {
        return Err(UserError::Invalid("nothing to change: give username, email or password".into()));
    }
    // Check the account before spending a hash on it.
    if ctx.store.user_by_id(id).await?.is_none() {
        return Err(UserError::NoSuchUser);
    }
    let changes = match &patch.password {
        Some(p) => UserChanges { password_hash: Some(hash(ctx, p).await?), ..changes },
        None => changes,
    };
    let updated = ctx.store.update_user(id, &changes, ctx.actor, ctx.now).await?.ok_or(UserError::NoSuchUser)?;
    crate::session_end::announce(ctx.hub, &updated.ended);
    Ok(updated)
}

/// Deletes an account: its sessions end (`account-deleted`), its tokens and codes go, the row goes.
pub async fn delete(ctx: &Ctx<'_>, id: &UserId) -> Result<Vec<EndedSession>, UserError> {
    let ended = ctx.store.delete_user(id, ctx.actor, ctx.now).await?.ok_or(UserError::NoSuchUser)?;
    crate::session_end::announce(ctx.hub, &ended);
    Ok(ended)
}

/// Ends one session (`session-revoked`).
pub async fn revoke_session(ctx: &Ctx<'_>, id: &SessionId) -> Result<EndedSession, UserError> {
    match ctx.store.end_session_as(id, Initiator::SessionRevoked, ctx.actor, ctx.now).await? {
        Some(e) => {
            crate::session_end::announce(ctx.hub, std::slice::from_ref(&e));
            Ok(e)
        }
        None => match ctx.store.session_by_id(id).await? {
            Some(s) => Err(UserError::SessionEnded(s.end_reason)),
            None => Err(UserError::NoSuchSession),
        },
    }
}

/// Ends every open session of a user (`session-revoked`, "sign out everywhere").
pub async fn revoke_all_sessions(ctx: &Ctx<'_>, user: &UserId) -> Result<Vec<EndedSession>, UserError> {
    if ctx.store.user_by_id(user).await?.is_none() {
        return Err(UserError::NoSuchUser);
    }
    let ended = ctx.store.end_user_sessions(user, Initiator::SessionRevoked, ctx.actor, ctx.now).await?;
    crate::session_end::announce(ctx.hub, &ended);
    Ok(ended)
}

/// The user's active sessions (not ended, not expired at `now`), newest first, with their applications.
pub async fn sessions(
    store: &dyn Store,
    user: &UserId,
    now: UnixMillis,
    lifetime: SessionLifetime,
) -> Result<Vec<SessionView>, UserError> {
    Ok(sessions_and_clients(store, user, now, lifetime).await?.0)
}

/// [`sessions`], with the clients the sessions were signed in to (read once, for their names),
/// for callers that need more of them than the name (the account page: who each form tells).
pub async fn sessions_and_clients(
    store: &dyn Store,
    user: &UserId,
    now: UnixMillis,
    lifetime: SessionLifetime,
) -> Result<(Vec<SessionView>, Vec<Client>), UserError> {
    if store.user_by_id(user).await?.is_none() {
        return Err(UserError::NoSuchUser);
    }
    let open: Vec<_> =
        store.open_sessions_of_user(user).await?.into_iter().filter(|s| s.is_active(now, lifetime)).collect();
    let ids: Vec<SessionId> = open.iter().map(|s| s.id.clone()).collect();
    let participations = store.participations_of_sessions(&ids).await?;
    let mut client_ids: Vec<ClientId> = participations.iter().map(|p| p.client_id.clone()).collect();
    client_ids.sort();
    client_ids.dedup();
    let clients = store.clients_by_ids(&client_ids).await?;
    let names: HashMap<&ClientId, &str> = clients.iter().map(|c| (&c.id, c.name.as_str())).collect();
    let mut apps: HashMap<SessionId, Vec<ApplicationView>> = HashMap::new();
    for p in participations {
        apps.entry(p.session_id).or_default().push(ApplicationView {
            client_name: names.get(&p.client_id).map(|n| (*n).to_owned()).unwrap_or_default(),
            client_id: p.client_id.into_string(),
            sid: p.sid.into_string(),
            since: p.created_at,
        });
    }
    let views = open
        .into_iter()
        .map(|s| SessionView {
            applications: apps.remove(&s.id).unwrap_or_default(),
            expires_at: s.expires_at(lifetime),
            id: s.id.into_string(),
            user_id: s.user_id.into_string(),
            created_at: s.created_at,
            auth_time: s.auth_time,
            last_seen_at: s.last_seen_at,
        })
        .collect();
    Ok((views, clients))
}

/// A page of users and the cursor of the next page (`None` on the last page).
pub async fn list(store: &dyn Store, query: &UserQuery) -> Result<(Vec<User>, Option<String>), UserError> {
    let users = store.list_users(query).await?;
    let next = (users.len() == query.page_size() as usize).then(|| users.last().map(|u| u.username.clone())).flatten();
    Ok((users, next))
}

/// A user by id, else by username or email (the CLI's way of naming one).
pub async fn find(store: &dyn Store, id_or_login: &str) -> Result<User, UserError> {
    if let Some(u) = store.user_by_id(&UserId::new(id_or_login)).await? {
        return Ok(u);
    }
    store.user_by_login(id_or_login).await?.ok_or(UserError::NoSuchUser)
}
