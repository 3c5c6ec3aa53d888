//! Handing freshly written deliveries to this process's worker, without a claim.
//!
//! A logout writes its deliveries (the outbox) and, on the usual path, the worker then claims them:
//! a second transaction that reads the due rows and leases them. When the worker of the process
//! that ends the session has free slots, the store instead writes up to that many deliveries
//! already leased to this replica, and after the commit they go straight to the worker. That saves
//! the claim (and, with several replicas, the round trip through `NOTIFY`), which is most of the
//! time between the commit and the first POST.
//!
//! The slots are reserved before the rows are written ([`Handoff::reserve`]) and travel with the
//! [`EndedSession`](crate::session::EndedSession) ([`HandOver`]): if the transaction rolls back,
//! or the request is dropped before the hand-over, the reservation is dropped with it and the slots
//! are free again. A hand-over that never happens (the process died after the commit) costs a
//! wait: the rows stay leased until their lease ends, and then any worker claims them, as after
//! any lost lease. Without a hook (the command line, another process) every delivery is written
//! pending.

use crate::delivery::{Delivery, DeliveryStatus};
use crate::time::UnixMillis;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The worker's side: reserves free slots for deliveries about to be written.
pub trait Handoff: Send + Sync {
    /// Reserves up to `wanted` free slots of this process's worker, or `None` if it has none (or
    /// is stopping). The deliveries written under the reservation are leased until
    /// [`Reserved::lease_until`].
    fn reserve(&self, wanted: usize) -> Option<Box<dyn Reserved>>;
}

/// Slots reserved for deliveries being written; dropping it frees them.
pub trait Reserved: Send + Sync {
    /// How many deliveries may be written leased.
    fn slots(&self) -> usize;
    /// The lease those deliveries are written with.
    fn lease_until(&self) -> UnixMillis;
    /// Gives the committed, leased deliveries to the worker (with the reserved slots).
    fn hand_over(self: Box<Self>, deliveries: Vec<Delivery>);
}

/// A reservation on its way from the store's transaction to the hand-over after the commit.
/// Clones share it; the first [`HandOver::hand_over`] uses it. Two values are always equal (it is
/// not part of what a session's ending means).
#[derive(Clone, Default)]
pub struct HandOver(Option<Arc<Mutex<Pending>>>);

/// The reservation until it is handed over.
type Pending = Option<Box<dyn Reserved>>;

impl HandOver {
    /// Wraps the store's reservation.
    pub fn new(reserved: Box<dyn Reserved>) -> Self {
        HandOver(Some(Arc::new(Mutex::new(Some(reserved)))))
    }

    /// Gives the deliveries of `deliveries` that were written leased to the worker. Call it after
    /// the commit; later calls do nothing.
    pub fn hand_over(&self, deliveries: &[Delivery]) {
        let Some(slot) = &self.0 else { return };
        let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(reserved) = taken else { return };
        let leased: Vec<Delivery> = deliveries.iter().filter(|d| d.status == DeliveryStatus::Leased).cloned().collect();
        if !leased.is_empty() {
            reserved.hand_over(leased);
        }
    }
}

impl PartialEq for HandOver {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HandOver {}

impl fmt::Debug for HandOver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "HandOver(reserved)" } else { "HandOver(none)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Probe(Arc<AtomicUsize>);

    impl Reserved for Probe {
        fn slots(&self) -> usize {
            2
        }
        fn lease_until(&self) -> UnixMillis {
            UnixMillis(0)
        }
        fn hand_over(self: Box<Self>, deliveries: Vec<Delivery>) {
            self.0.fetch_add(deliveries.len(), Ordering::SeqCst);
        }
    }

    #[test]
    fn a_reservation_is_handed_over_once_and_only_with_leased_deliveries() {
        let seen = Arc::new(AtomicUsize::new(0));
        let h = HandOver::new(Box::new(Probe(seen.clone())));
        let copy = h.clone();
        let d = Delivery {
            id: "d1".into(),
            session_id: crate::SessionId::new("s"),
            client_id: crate::ClientId::new("c"),
            sub: crate::UserId::new("u"),
            sid: crate::Sid::new("sid"),
            initiator: crate::Initiator::SessionRevoked,
            status: DeliveryStatus::Leased,
            attempts: 1,
            next_attempt_at: UnixMillis(0),
            lease_until: Some(UnixMillis(1)),
            round_started_at: UnixMillis(0),
            created_at: UnixMillis(0),
            finished_at: None,
            last_error: None,
        };
        let mut pending = d.clone();
        pending.status = DeliveryStatus::Pending;
        h.hand_over(&[d.clone(), pending]);
        copy.hand_over(&[d]);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
