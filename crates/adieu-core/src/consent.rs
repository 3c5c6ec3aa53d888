//! Consent: which applications a user has allowed to sign them in, for which scopes, and when the
//! consent screen must be shown.
//!
//! The rule ([`needed`]):
//! - `prompt=consent` always asks (OIDC Core §3.1.2.1).
//! - A client marked third-party asks until the user has allowed every scope it requests; a
//!   consent covers the scopes allowed, so asking for more later asks again.
//! - `offline_access` is granted only after consent, for every client, first-party ones included
//!   (Core §11: offline access needs the user's consent; it keeps working after the user signs
//!   out, so it is never given silently).
//! - Otherwise (a first-party client asking for `openid`, `profile`, `email`) nothing is asked.
//!
//! `prompt=none` never shows the screen: where it would be needed the answer is
//! `consent_required`. Allowing merges the requested scopes into the stored consent
//! ([`Consent::merged`]); a user withdraws a consent on the account page, and a deleted user or
//! client takes its consents with it.

use crate::client::Client;
use crate::grant::PendingAuthorization;
use crate::id::{ClientId, UserId};
use crate::store::StoreResult;
use crate::time::UnixMillis;
use async_trait::async_trait;

/// The scope that makes a refresh token outlive the session.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// What a user allowed an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The user.
    pub user_id: UserId,
    /// The application.
    pub client_id: ClientId,
    /// The scopes allowed, each once, in the order first allowed (only supported scopes reach
    /// here, so the list is short).
    pub scopes: Vec<String>,
    /// When it was last given.
    pub granted_at: UnixMillis,
}

impl Consent {
    /// This consent with `scope`'s scopes added, given at `at`.
    pub fn merged(
        existing: Option<&Consent>,
        user: &UserId,
        client: &ClientId,
        scope: &str,
        at: UnixMillis,
    ) -> Consent {
        let mut scopes = existing.map(|c| c.scopes.clone()).unwrap_or_default();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        Consent { user_id: user.clone(), client_id: client.clone(), scopes, granted_at: at }
    }

    /// Whether every scope of `scope` is allowed.
    pub fn covers(&self, scope: &str) -> bool {
        scope.split(' ').filter(|s| !s.is_empty()).all(|s| self.scopes.iter().any(|x| x == s))
    }
}

/// Whether the consent screen must be shown for `req` from `client`, given what the user already
/// allowed it (`granted`).
pub fn needed(client: &Client, req: &PendingAuthorization, granted: Option<&Consent>) -> bool {
    let covered = granted.is_some_and(|g| g.covers(&req.scope));
    let offline = req.scope.split(' ').any(|s| s == OFFLINE_ACCESS);
    req.prompt_consent || ((client.third_party || offline) && !covered)
}

/// Stored consents.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// What `user` allowed `client`, if anything.
    async fn consent(&self, user: &UserId, client: &ClientId) -> StoreResult<Option<Consent>>;
    /// Stores `consent`, replacing the user's earlier consent for that client, and audits
    /// `consent.granted` with the scopes (actor `account:<user id>`).
    async fn put_consent(&self, consent: &Consent) -> StoreResult<()>;
    /// The user's consents, most recent first.
    async fn consents_of_user(&self, user: &UserId) -> StoreResult<Vec<Consent>>;
    /// Withdraws what `user` allowed `client`, in one transaction with what it let the client
    /// hold: the user's unused codes for it are deleted and its access and refresh tokens for the
    /// user (offline ones included) revoked. Audited as `consent.withdrawn`; whether there was a
    /// consent.
    async fn delete_consent(&self, user: &UserId, client: &ClientId, at: UnixMillis) -> StoreResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::TokenEndpointAuthMethod;
    use crate::initiator::InitiatorSubscription;

    fn client(third_party: bool) -> Client {
        Client {
            id: ClientId::new("app"),
            name: "App".into(),
            secret_hash: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            backchannel_logout_initiators: InitiatorSubscription::default(),
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            id_token_signed_response_alg: adieu_proto::SigningAlg::RS256,
            frontchannel_logout_uri: None,
            frontchannel_logout_session_required: false,
            third_party,
            created_at: UnixMillis(0),
            updated_at: UnixMillis(0),
        }
    }

    fn req(scope: &str, prompt_consent: bool) -> PendingAuthorization {
        PendingAuthorization {
            client_id: ClientId::new("app"),
            redirect_uri: "https://app/cb".into(),
            scope: scope.into(),
            state: None,
            nonce: None,
            code_challenge: None,
            max_age: None,
            prompt_login: false,
            prompt_consent,
        }
    }

    fn given(scope: &str) -> Consent {
        Consent::merged(None, &UserId::new("u"), &ClientId::new("app"), scope, UnixMillis(1))
    }

    #[test]
    fn a_first_party_client_asks_nothing_for_identity_scopes() {
        assert!(!needed(&client(false), &req("openid profile email", false), None));
    }

    #[test]
    fn a_third_party_client_asks_until_every_requested_scope_is_allowed() {
        let c = client(true);
        assert!(needed(&c, &req("openid", false), None));
        assert!(!needed(&c, &req("openid", false), Some(&given("openid profile"))));
        assert!(needed(&c, &req("openid email", false), Some(&given("openid profile"))));
    }

    #[test]
    fn offline_access_needs_consent_even_for_a_first_party_client() {
        let c = client(false);
        assert!(needed(&c, &req("openid offline_access", false), None));
        assert!(needed(&c, &req("openid offline_access", false), Some(&given("openid"))));
        assert!(!needed(&c, &req("openid offline_access", false), Some(&given("openid offline_access"))));
    }

    #[test]
    fn prompt_consent_always_asks() {
        assert!(needed(&client(false), &req("openid", true), Some(&given("openid"))));
    }

    #[test]
    fn merging_adds_each_scope_once() {
        let c = Consent::merged(
            Some(&given("openid profile")),
            &UserId::new("u"),
            &ClientId::new("app"),
            "openid  email",
            UnixMillis(2),
        );
        assert_eq!(c.scopes, ["openid", "profile", "email"]);
        assert_eq!(c.granted_at, UnixMillis(2));
    }
}
