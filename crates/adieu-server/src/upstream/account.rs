//! The local account of a person who signs in through an upstream.
//!
//! The upstream account `(iss, sub)` is linked to exactly one local user. The first sign-in
//! creates that user: no password (it cannot sign in with one until an operator sets one), a
//! username from `preferred_username`, else the email's local part, else a generated one, made
//! unique with `-2`, `-3`…, and the email only if the upstream says it is verified and no other
//! account has it.
//!
//! There is **no automatic linking to an existing local account by email**: the upstream's word
//! that someone owns an address is not proof that they own the local account that has it, and
//! linking on it would let whoever controls an upstream account take over a local one. Such a
//! person gets a separate account (without that email).

use super::registry::{Discovered, Upstream, get};
use super::signin::profile_claims;
use crate::AppState;
use crate::crypto::random_id;
use crate::error::PageError;
use adieu_core::StoreError;
use adieu_core::audit::Actor;
use adieu_core::id::UserId;
use adieu_core::upstream::{NO_PASSWORD, UpstreamIdentity, upstream_username};
use adieu_core::user::{User, normalize_email};
use adieu_rp::id_token::VerifiedIdToken;

/// The local user linked to the upstream account of `token`, creating it on first sign-in.
pub async fn link_or_create(
    state: &AppState,
    upstream: &Upstream,
    discovered: &Discovered,
    token: &VerifiedIdToken,
    access_token: Option<&str>,
) -> Result<User, PageError> {
    let issuer = &upstream.settings.issuer;
    if let Some(u) = state.store.user_by_upstream(issuer, token.subject()).await? {
        return Ok(u);
    }
    let (mut preferred, mut email, mut verified) = profile_claims(token);
    if preferred.is_none()
        && email.is_none()
        && let (Some(endpoint), Some(at)) = (&discovered.userinfo_endpoint, access_token)
    {
        // The ID token carries no profile claims (adieu's own do not): ask userinfo once.
        match userinfo(upstream, endpoint, at, token.subject()).await {
            Ok((p, e, v)) => (preferred, email, verified) = (p, e, v),
            Err(e) => {
                tracing::warn!(upstream = %upstream.settings.id, error = %e, "userinfo failed; using a generated username")
            }
        }
    }
    let raw_email = email.clone();
    let mut email = email.filter(|_| verified).and_then(|e| normalize_email(&e).ok());
    let identity = UpstreamIdentity {
        issuer: issuer.clone(),
        sub: token.subject().to_owned(),
        upstream_id: upstream.settings.id.clone(),
    };
    let fallback = format!("user-{}", random_id().to_lowercase().replace(['-', '_'], ""));
    let now = state.clock.now();
    let mut names = upstream_username(preferred.as_deref(), raw_email.as_deref(), &fallback).into_iter();
    let mut name = names.next();
    while let Some(username) = name.clone() {
        let user = User {
            id: UserId::new(random_id()),
            username,
            email: email.clone(),
            password_hash: NO_PASSWORD.to_owned(),
            created_at: now,
            updated_at: now,
        };
        match state.store.create_upstream_user(&user, &identity, &Actor::System.name()).await {
            Ok(()) => {
                tracing::info!(upstream = %upstream.settings.id, sub = %user.id, username = %user.username, "created a user for an upstream account");
                return Ok(user);
            }
            Err(StoreError::Conflict(what)) if what == "username" => name = names.next(),
            // Another account has this email: this one goes without it (no linking by email).
            Err(StoreError::Conflict(what)) if what == "email" && email.is_some() => email = None,
            // A concurrent first sign-in of the same person won: use its account.
            Err(StoreError::Conflict(what)) if what == "upstream_identity" => {
                return state
                    .store
                    .user_by_upstream(issuer, token.subject())
                    .await?
                    .ok_or_else(|| PageError::internal("the upstream account is linked, but its user is gone"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PageError::internal("no free username for a new upstream account"))
}

/// Core §5.3: profile claims from userinfo, whose `sub` must be the ID token's (§5.3.4).
async fn userinfo(
    upstream: &Upstream,
    endpoint: &str,
    access_token: &str,
    sub: &str,
) -> Result<(Option<String>, Option<String>, bool), String> {
    let body = get(upstream.outbound(), endpoint, Some(access_token)).await?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("userinfo is not JSON: {e}"))?;
    if v.get("sub").and_then(serde_json::Value::as_str) != Some(sub) {
        return Err("userinfo names another subject".into());
    }
    let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str).filter(|x| !x.is_empty()).map(str::to_owned);
    Ok((
        s("preferred_username"),
        s("email"),
        v.get("email_verified").and_then(serde_json::Value::as_bool).unwrap_or(false),
    ))
}
