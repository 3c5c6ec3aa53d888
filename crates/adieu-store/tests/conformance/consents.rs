//! Consents and the one-step taking of pending authorizations on every backend.

#[cfg(feature = "postgres")]
use super::postgres;
use super::sqlite;
use super::{T0, client_with, user};
use adieu_core::audit::AuditFilter;
use adieu_core::consent::Consent;
use adieu_core::grant::PendingAuthorization;
use adieu_core::id::ClientId;
use adieu_core::time::UnixMillis;
use adieu_core::{Store, StoreResult};
use std::sync::Arc;

conformance!(
    consents_are_stored_replaced_listed_withdrawn_and_audited,
    consents_go_with_their_user_or_client,
    a_pending_authorization_is_taken_once_and_not_after_it_expired,
);

fn consent(user: &adieu_core::UserId, client: &str, scope: &str, at: i64) -> Consent {
    Consent::merged(None, user, &ClientId::new(client), scope, UnixMillis(at))
}

async fn consents_are_stored_replaced_listed_withdrawn_and_audited(s: Arc<dyn Store>) -> StoreResult<()> {
    s.create_user(&user("alice", None)).await?;
    let alice = s.user_by_login("alice").await?.unwrap().id;
    for c in ["a", "b"] {
        s.create_client(&client_with(c, None, Default::default()), "test").await?;
    }
    assert_eq!(s.consent(&alice, &ClientId::new("a")).await?, None);
    s.put_consent(&consent(&alice, "a", "openid", T0.0)).await?;
    s.put_consent(&consent(&alice, "b", "openid email", T0.0 + 1)).await?;
    let wider = consent(&alice, "a", "openid offline_access", T0.0 + 2);
    s.put_consent(&wider).await?;
    assert_eq!(s.consent(&alice, &ClientId::new("a")).await?, Some(wider.clone()), "replaced, not added");
    let all = s.consents_of_user(&alice).await?;
    assert_eq!(all.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(), ["a", "b"], "most recent first");
    assert!(s.delete_consent(&alice, &ClientId::new("a"), T0).await?);
    assert!(!s.delete_consent(&alice, &ClientId::new("a"), T0).await?, "already withdrawn");
    assert_eq!(s.consent(&alice, &ClientId::new("a")).await?, None);
    let log = |kind: &str| AuditFilter { kind: Some(kind.into()), ..Default::default() };
    let granted = s.audit_events(&log("consent.granted")).await?;
    assert_eq!(granted.len(), 3);
    assert!(granted.iter().all(|e| e.actor == format!("account:{alice}")));
    assert_eq!(s.audit_events(&log("consent.withdrawn")).await?.len(), 1, "only the withdrawal that withdrew");
    Ok(())
}

async fn consents_go_with_their_user_or_client(s: Arc<dyn Store>) -> StoreResult<()> {
    for name in ["alice", "bob"] {
        s.create_user(&user(name, None)).await?;
    }
    let alice = s.user_by_login("alice").await?.unwrap().id;
    let bob = s.user_by_login("bob").await?.unwrap().id;
    for c in ["a", "b"] {
        s.create_client(&client_with(c, None, Default::default()), "test").await?;
    }
    for (u, c) in [(&alice, "a"), (&alice, "b"), (&bob, "a")] {
        s.put_consent(&consent(u, c, "openid", T0.0)).await?;
    }
    assert!(s.delete_client(&ClientId::new("a"), "test", T0).await?);
    assert_eq!(s.consents_of_user(&bob).await?, vec![], "the deleted client's consents went with it");
    assert_eq!(s.consents_of_user(&alice).await?.len(), 1);
    assert!(s.delete_user(&alice, "test", T0).await?.is_some());
    assert_eq!(s.consents_of_user(&alice).await?, vec![], "the deleted user's consents went with them");
    Ok(())
}

async fn a_pending_authorization_is_taken_once_and_not_after_it_expired(s: Arc<dyn Store>) -> StoreResult<()> {
    let req = PendingAuthorization {
        client_id: ClientId::new("a"),
        redirect_uri: "https://a/cb".into(),
        scope: "openid".into(),
        state: Some("st".into()),
        nonce: None,
        code_challenge: None,
        max_age: None,
        prompt_login: false,
        prompt_consent: true,
    };
    s.put_pending_authorization("p1", &req, UnixMillis(T0.0 + 1000)).await?;
    s.put_pending_authorization("p2", &req, UnixMillis(T0.0 + 1000)).await?;
    let (one, two) = tokio::join!(s.take_pending_authorization("p1", T0), s.take_pending_authorization("p1", T0));
    let taken: Vec<_> = [one?, two?].into_iter().flatten().collect();
    assert_eq!(taken, vec![req], "of two racing takers exactly one gets it, whole");
    assert_eq!(s.take_pending_authorization("p2", UnixMillis(T0.0 + 1000)).await?, None, "expired");
    Ok(())
}
