//! Retention and revoked grants on every backend: only finished deliveries older than the cutoff
//! go (with their attempts), oldest first and at most a batch at a time; pending ones stay; audit
//! events go by age; tokens are not issued for a grant that was revoked.

#[cfg(feature = "postgres")]
use super::postgres;
use super::sqlite;
use super::{T0, claim, refresh, three_participants};
use adieu_core::audit::AuditFilter;
use adieu_core::delivery::Verdict;
use adieu_core::delivery::{Attempt, DeliveryStatus};
use adieu_core::grant::AccessToken;
use adieu_core::id::{ClientId, SessionId, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::time::UnixMillis;
use adieu_core::{Store, StoreResult};
use serde_json::json;
use std::sync::Arc;

conformance!(
    pruning_takes_finished_deliveries_past_the_cutoff_with_their_attempts_a_batch_at_a_time,
    pruning_takes_audit_events_by_age,
    tokens_are_not_issued_for_a_revoked_grant,
    tokens_are_read_by_hash_and_one_access_token_is_revoked_alone,
    revoking_a_user_everywhere_ends_sessions_and_offline_tokens_in_one_call,
);

async fn revoking_a_user_everywhere_ends_sessions_and_offline_tokens_in_one_call(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    s.create_user(&super::user("alice", None)).await?;
    let alice = s.user_by_login("alice").await?.unwrap().id;
    let mut session = super::session("s9", alice.as_str());
    session.user_id = alice.clone();
    s.create_session(&session, "cookie9").await?;
    let mut offline = refresh("rt-off", "s9", "c", true);
    offline.user_id = alice.clone();
    s.insert_refresh_token(&offline).await?;
    let (ended, tokens) = s.revoke_user_everywhere(&alice, "gtr", T0).await?.expect("a user");
    assert_eq!((ended.len(), tokens), (2, 1), "both of alice's sessions (s1 and s9) and her offline token");
    assert!(ended.iter().all(|e| e.session.end_reason == Some(Initiator::SessionRevoked)));
    assert!(s.refresh_token("rt-off").await?.unwrap().revoked_at.is_some(), "the offline token too");
    let log = s.audit_events(&AuditFilter { kind: Some("user.tokens_revoked".into()), ..Default::default() }).await?;
    assert_eq!((log.len(), log[0].actor.as_str()), (1, "gtr"));
    assert!(s.revoke_user_everywhere(&UserId::new("nobody"), "gtr", T0).await?.is_none());
    Ok(())
}

async fn tokens_are_read_by_hash_and_one_access_token_is_revoked_alone(s: Arc<dyn Store>) -> StoreResult<()> {
    s.insert_refresh_token(&refresh("rt-1", "s1", "c", false)).await?;
    let got = s.refresh_token("rt-1").await?.expect("the refresh token");
    assert_eq!((got.client_id.as_str(), got.grant_id.as_str()), ("c", "g-rt-1"));
    assert!(s.refresh_token("rt-unknown").await?.is_none());
    s.insert_access_token(&super::access("at-1", "s1", false)).await?;
    s.insert_access_token(&super::access("at-2", "s1", false)).await?;
    assert!(s.revoke_access_token("at-1", T0).await?, "revoked");
    assert!(!s.revoke_access_token("at-1", T0).await?, "only once");
    assert!(!s.revoke_access_token("at-unknown", T0).await?);
    assert_eq!(s.access_token("at-1").await?.unwrap().revoked_at, Some(T0));
    assert_eq!(s.access_token("at-2").await?.unwrap().revoked_at, None, "the other token of the session stays");
    Ok(())
}

async fn pruning_takes_finished_deliveries_past_the_cutoff_with_their_attempts_a_batch_at_a_time(
    s: Arc<dyn Store>,
) -> StoreResult<()> {
    three_participants(&s).await?;
    s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?;
    let batch = s.claim_due(&claim(T0)).await?;
    assert_eq!(batch.len(), 2);
    let attempt = |id: &str| Attempt {
        delivery_id: id.to_owned(),
        number: 0,
        at: T0,
        latency_ms: 1,
        http_status: Some(200),
        error: None,
    };
    // One delivered, one still being retried.
    s.record_attempt(&attempt(&batch[0].id), Verdict::Delivered).await?;
    let later = UnixMillis(T0.0 + 10_000);
    s.record_attempt(&attempt(&batch[1].id), Verdict::Retry { at: later, reason: "HTTP 503".into() }).await?;
    assert_eq!(s.prune_deliveries(T0, 100).await?, 0, "finished at the cutoff is kept");
    let cutoff = UnixMillis(T0.0 + 1000);
    assert_eq!(s.prune_deliveries(cutoff, 100).await?, 1);
    assert!(s.delivery(&batch[0].id).await?.is_none(), "the delivered one went, attempts with it");
    let (pending, _) = s.delivery(&batch[1].id).await?.expect("the pending one stays");
    assert_eq!(pending.status, DeliveryStatus::Pending);
    assert_eq!(s.prune_deliveries(UnixMillis(i64::MAX), 100).await?, 0, "pending deliveries are never pruned");
    Ok(())
}

async fn pruning_takes_audit_events_by_age(s: Arc<dyn Store>) -> StoreResult<()> {
    for i in 0..5 {
        let e = adieu_core::audit::AuditEvent::new(
            adieu_core::audit::AuditKind::SessionEnded,
            "system",
            UnixMillis(T0.0 + i),
            json!({}),
        );
        s.append_audit(&e).await?;
    }
    assert_eq!(s.prune_audit(UnixMillis(T0.0 + 3), 2).await?, 2, "a batch at a time");
    assert_eq!(s.prune_audit(UnixMillis(T0.0 + 3), 2).await?, 1);
    assert_eq!(s.prune_audit(UnixMillis(T0.0 + 3), 2).await?, 0);
    let left = s.audit_events(&AuditFilter::default()).await?;
    assert_eq!(left.iter().map(|e| e.at.0 - T0.0).collect::<Vec<_>>(), vec![4, 3], "the newest stay");
    Ok(())
}

async fn tokens_are_not_issued_for_a_revoked_grant(s: Arc<dyn Store>) -> StoreResult<()> {
    let rt = refresh("rt-1", "s1", "c", false);
    let at = AccessToken {
        token_hash: "at-1".into(),
        grant_id: rt.grant_id.clone(),
        client_id: ClientId::new("c"),
        user_id: UserId::new("id-alice"),
        session_id: SessionId::new("s1"),
        scope: "openid".into(),
        offline: false,
        created_at: T0,
        expires_at: UnixMillis(T0.0 + 60_000),
        revoked_at: None,
    };
    assert!(s.issue_tokens(&at, &rt).await?, "a live grant issues");
    assert_eq!(s.revoke_grant(&rt.grant_id, T0).await?, 2);
    let again = AccessToken { token_hash: "at-2".into(), ..at };
    let rt2 = adieu_core::grant::RefreshToken { token_hash: "rt-2".into(), ..rt };
    assert!(!s.issue_tokens(&again, &rt2).await?, "a revoked grant issues nothing");
    assert!(s.access_token("at-2").await?.is_none());
    Ok(())
}
