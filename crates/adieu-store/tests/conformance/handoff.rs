//! The hand-off on every backend ([`adieu_core::handoff`]): with a worker installed, ending a
//! session writes as many deliveries leased to this replica as it reserved slots for (first
//! attempt counted), the rest pending; a claim does not take the leased ones until their lease
//! ends; without a reservation everything is pending, as before.

#[cfg(feature = "postgres")]
use super::postgres;
use super::sqlite;
use super::{T0, claim, session, three_participants};
use adieu_core::delivery::{Delivery, DeliveryStatus};
use adieu_core::handoff::{Handoff, Reserved};
use adieu_core::id::{ClientId, SessionId, Sid};
use adieu_core::initiator::Initiator;
use adieu_core::time::UnixMillis;
use adieu_core::{Store, StoreResult};
use std::sync::{Arc, Mutex};

conformance!(
    ending_a_session_writes_up_to_the_reserved_slots_leased_to_this_replica,
    handed_over_deliveries_are_not_claimed_until_their_lease_ends,
    a_worker_without_free_slots_leaves_every_delivery_pending,
    deliveries_written_by_one_transaction_never_exceed_its_reservations,
);

/// A worker with `free` slots that records what it was handed.
struct TestWorker {
    free: Mutex<usize>,
    handed: Arc<Mutex<Vec<Delivery>>>,
}

struct TestSlots {
    n: usize,
    handed: Arc<Mutex<Vec<Delivery>>>,
}

impl Handoff for TestWorker {
    fn reserve(&self, wanted: usize) -> Option<Box<dyn Reserved>> {
        let mut free = self.free.lock().unwrap();
        let n = wanted.min(*free);
        *free -= n;
        (n > 0).then(|| Box::new(TestSlots { n, handed: self.handed.clone() }) as Box<dyn Reserved>)
    }
}

impl Reserved for TestSlots {
    fn slots(&self) -> usize {
        self.n
    }
    fn lease_until(&self) -> UnixMillis {
        UnixMillis(T0.0 + 60_000)
    }
    fn hand_over(self: Box<Self>, deliveries: Vec<Delivery>) {
        self.handed.lock().unwrap().extend(deliveries);
    }
}

fn worker(s: &Arc<dyn Store>, free: usize) -> Arc<Mutex<Vec<Delivery>>> {
    let handed = Arc::new(Mutex::new(Vec::new()));
    s.set_handoff(Arc::new(TestWorker { free: Mutex::new(free), handed: handed.clone() }));
    handed
}

fn by_status(ds: &[Delivery], status: DeliveryStatus) -> usize {
    ds.iter().filter(|d| d.status == status).count()
}

async fn ending_a_session_writes_up_to_the_reserved_slots_leased_to_this_replica(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    let handed = worker(&s, 1);
    let ended = s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?.unwrap();
    assert_eq!(ended.deliveries.len(), 2);
    assert_eq!(by_status(&ended.deliveries, DeliveryStatus::Leased), 1);
    assert_eq!(by_status(&ended.deliveries, DeliveryStatus::Pending), 1);
    let leased = ended.deliveries.iter().find(|d| d.status == DeliveryStatus::Leased).unwrap();
    assert_eq!((leased.attempts, leased.lease_until), (1, Some(UnixMillis(T0.0 + 60_000))));
    assert!(handed.lock().unwrap().is_empty(), "nothing is handed over before the caller says it committed");
    ended.hand_over();
    ended.hand_over();
    let got: Vec<String> = handed.lock().unwrap().iter().map(|d| d.id.clone()).collect();
    assert_eq!(got, vec![leased.id.clone()], "handed over once, and only the leased one");
    // The pending one is claimed as usual; the leased one is this replica's.
    let claimed = s.claim_due(&claim(T0)).await?;
    assert_eq!(claimed.len(), 1);
    assert_ne!(claimed[0].id, leased.id);
    Ok(())
}

async fn handed_over_deliveries_are_not_claimed_until_their_lease_ends(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    let _handed = worker(&s, 10);
    let ended = s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?.unwrap();
    assert_eq!(by_status(&ended.deliveries, DeliveryStatus::Leased), 2);
    assert!(s.claim_due(&claim(T0)).await?.is_empty(), "another worker does not take a handed-over delivery");
    // The hand-over was lost (the process died after the commit): after the lease, any worker
    // claims them, as the second attempt.
    let again = s.claim_due(&claim(UnixMillis(T0.0 + 61_000))).await?;
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|d| d.attempts == 2));
    // A stop releases this replica's handed-over leases like claimed ones.
    assert_eq!(s.release_leases().await?, 2);
    Ok(())
}

async fn a_worker_without_free_slots_leaves_every_delivery_pending(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    let handed = worker(&s, 0);
    let ended = s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?.unwrap();
    assert_eq!(by_status(&ended.deliveries, DeliveryStatus::Pending), 2);
    assert!(ended.deliveries.iter().all(|d| d.attempts == 0 && d.lease_until.is_none()));
    ended.hand_over();
    assert!(handed.lock().unwrap().is_empty());
    assert_eq!(s.claim_due(&claim(T0)).await?.len(), 2);
    Ok(())
}

async fn deliveries_written_by_one_transaction_never_exceed_its_reservations(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    for n in 2..=4 {
        let id = format!("s{n}");
        s.create_session(&session(&id, "id-alice"), &format!("cookie{n}")).await?;
        for c in ["a", "c"] {
            s.ensure_participation(&SessionId::new(&id), &ClientId::new(c), &Sid::new(format!("{id}-{c}")), T0).await?;
        }
    }
    let handed = worker(&s, 3);
    // Four sessions, one delivery each (only `c` subscribes to session-revoked), three slots: one
    // transaction reserves session by session.
    let ended =
        s.end_user_sessions(&adieu_core::UserId::new("id-alice"), Initiator::SessionRevoked, "test", T0).await?;
    let all: Vec<Delivery> = ended.iter().flat_map(|e| e.deliveries.clone()).collect();
    assert_eq!(all.len(), 4);
    assert_eq!(by_status(&all, DeliveryStatus::Leased), 3);
    for e in &ended {
        e.hand_over();
    }
    assert_eq!(handed.lock().unwrap().len(), 3);
    assert_eq!(s.claim_due(&claim(T0)).await?.len(), 1);
    Ok(())
}
