//! Back-channel logout delivery (DESIGN.md "Delivery guarantees").
//!
//! - [`worker`]: claims due deliveries and sends them, in parallel and bounded (global and per
//!   host), retrying where the spec allows (BC-SEND-06).
//! - [`outbound`]: the HTTP client and the outbound address policy (SSRF defence).
//! - [`token`]: logout tokens, a fresh one per attempt.
//! - [`metrics`]: Prometheus counters and gauges.
//!
//! The [`DeliveryHub`] in the application state connects the parts: ending a session wakes the
//! workers (so does the worker's listener when another replica commits deliveries), and workers
//! report each attempt so the logout page can show who confirmed.

pub mod metrics;
pub mod outbound;
pub mod token;
pub mod window;
pub mod worker;

use adieu_core::delivery::Verdict;
use adieu_core::id::{ClientId, SessionId};
use tokio::sync::{Notify, broadcast};

/// One finished attempt.
#[derive(Debug, Clone)]
pub struct AttemptEvent {
    /// The delivery.
    pub delivery_id: String,
    /// Its session.
    pub session_id: SessionId,
    /// Its client.
    pub client_id: ClientId,
    /// What it means.
    pub verdict: Verdict,
}

/// Shared between the request handlers and the workers.
#[derive(Debug)]
pub struct DeliveryHub {
    /// Wakes idle workers (a logout was committed, an operator retried a delivery, or another
    /// process said it wrote deliveries: a PostgreSQL NOTIFY).
    pub wake: Notify,
    /// Attempt results, for anyone waiting on them.
    pub events: broadcast::Sender<AttemptEvent>,
    /// Counters.
    pub metrics: metrics::DeliveryMetrics,
}

impl Default for DeliveryHub {
    fn default() -> Self {
        DeliveryHub {
            wake: Notify::new(),
            events: broadcast::channel(8192).0,
            metrics: metrics::DeliveryMetrics::default(),
        }
    }
}

impl DeliveryHub {
    /// Wakes a worker now (the wake-up is kept if none is waiting yet).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
