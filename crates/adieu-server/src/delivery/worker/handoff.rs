//! The worker's side of the hand-off ([`adieu_core::handoff`]): free slots are reserved while a
//! logout writes its deliveries, and the deliveries written leased to this replica arrive here after
//! the commit and are sent at once, without a claim.

use super::{Phase, Worker, reached};
use adieu_core::delivery::Delivery;
use adieu_core::handoff::{Handoff, Reserved};
use adieu_core::time::UnixMillis;
use std::sync::{Arc, Weak};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Deliveries written leased to this replica, with the slots reserved for them.
pub(super) type Handed = (Vec<Delivery>, OwnedSemaphorePermit);

/// What the store calls to reserve slots: the running worker, if it still runs.
pub(super) struct Taker(pub(super) Weak<Worker>);

impl Handoff for Taker {
    fn reserve(&self, wanted: usize) -> Option<Box<dyn Reserved>> {
        let worker = self.0.upgrade()?;
        if *worker.phase.borrow() != Phase::Running {
            return None;
        }
        let n = wanted.min(worker.global.available_permits());
        if n == 0 {
            return None;
        }
        let permit = worker.global.clone().try_acquire_many_owned(u32::try_from(n).ok()?).ok()?;
        let lease_until = worker.state.clock.now().plus(worker.lease);
        Some(Box::new(Slots { permit, lease_until, to: worker.handed.clone() }))
    }
}

/// Slots reserved for deliveries being written.
struct Slots {
    permit: OwnedSemaphorePermit,
    lease_until: UnixMillis,
    to: mpsc::UnboundedSender<Handed>,
}

impl Reserved for Slots {
    fn slots(&self) -> usize {
        self.permit.num_permits()
    }

    fn lease_until(&self) -> UnixMillis {
        self.lease_until
    }

    fn hand_over(self: Box<Self>, deliveries: Vec<Delivery>) {
        // A worker that is gone leaves them leased; they are claimed when the lease ends.
        let _ = self.to.send((deliveries, self.permit));
    }
}

impl Worker {
    /// Sends what is handed over, each delivery on one of the slots reserved for it, until the
    /// worker stops (what arrives then stays leased and is released by the stop).
    pub(super) async fn take_handed(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Handed>) {
        let mut phase = self.phase.subscribe();
        loop {
            let (batch, permits) = tokio::select! {
                biased;
                () = reached(&mut phase, Phase::Draining) => return,
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            let Ok(clients) = self.clients_of(&batch).await else { continue };
            self.state.hub.metrics.handed_over(batch.len());
            let mut slots = singles(permits).into_iter();
            for d in batch {
                // The store writes no more leased than were reserved; should it, the extra
                // delivery waits for a slot rather than overrun.
                let slot = match slots.next() {
                    Some(s) => s,
                    None => match self.global.clone().acquire_owned().await {
                        Ok(s) => s,
                        Err(_) => return,
                    },
                };
                self.launch(d, &clients, slot, &phase);
            }
        }
    }
}

/// One permit per slot.
fn singles(mut permit: OwnedSemaphorePermit) -> Vec<OwnedSemaphorePermit> {
    let mut out = Vec::with_capacity(permit.num_permits());
    while permit.num_permits() > 1
        && let Some(one) = permit.split(1)
    {
        out.push(one);
    }
    out.push(permit);
    out
}
