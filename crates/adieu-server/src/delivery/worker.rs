//! The delivery worker: claim, send, record, repeat.
//!
//! One claiming loop per process. It leases due deliveries in batches no larger than the free
//! global slots, skipping clients whose host is at its limit and capping each client's share of a
//! batch, then runs each attempt as its own task. A slow or dead application therefore occupies at
//! most its host's slots and never delays the others. Attempts of one delivery are never concurrent
//! (the lease), and a delivery whose worker died is taken again when its lease ends.
//!
//! Results go to one recorder task that writes them in batches (one transaction for up to 512
//! attempts); a slot stays taken until its result is committed, so in-flight work is bounded.
//! The clients of a claimed batch are loaded in one query, so a changed logout URI applies to the
//! next attempt.

use super::outbound::Outbound;
use super::{AttemptEvent, Outcome};
use crate::AppState;
use adieu_core::client::Client;
use adieu_core::delivery::{Attempt, Delivery, Next, Response, RetryPolicy};
use adieu_core::id::ClientId;
use adieu_core::store::{AttemptResult, Claim, Recorded};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// The worker's state.
#[derive(Debug)]
pub struct Worker {
    state: AppState,
    outbound: Outbound,
    policy: RetryPolicy,
    lease: Duration,
    per_host: usize,
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    client_hosts: Mutex<HashMap<ClientId, String>>,
    results: mpsc::UnboundedSender<Finished>,
}

/// A finished attempt on its way to the recorder, holding its slot.
#[derive(Debug)]
struct Finished {
    delivery: Delivery,
    recorded: Recorded,
    label: &'static str,
    outcome: Outcome,
    latency: Duration,
    _slot: OwnedSemaphorePermit,
}

const RECORD_BATCH: usize = 512;

/// Starts the worker for `state`, sending through `outbound`. It runs until the runtime stops.
pub fn spawn(state: AppState, outbound: Outbound) -> JoinHandle<()> {
    let d = &state.settings.delivery;
    let (results, rx) = mpsc::unbounded_channel();
    tokio::spawn(record(state.clone(), rx));
    let worker = Arc::new(Worker {
        policy: d.retry_policy(),
        lease: Duration::from_secs(d.lease_secs),
        per_host: d.per_host_concurrency,
        global: Arc::new(Semaphore::new(d.global_concurrency)),
        hosts: Mutex::default(),
        client_hosts: Mutex::default(),
        results,
        outbound,
        state,
    });
    tokio::spawn(worker.run())
}

fn jitter() -> f64 {
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Longest idle sleep: bounds how late a delivery written by another process (CLI, replica) starts.
const MAX_IDLE: Duration = Duration::from_millis(500);

impl Worker {
    async fn run(self: Arc<Self>) {
        loop {
            // Wait for at least one free slot, then claim as many as are free.
            let first = match self.global.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return,
            };
            let limit = 1 + self.global.available_permits();
            let exclude = self.saturated_clients();
            let claim = Claim {
                now: self.state.clock.now(),
                lease: self.lease,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
                per_client_limit: u32::try_from(self.per_host).unwrap_or(u32::MAX),
                exclude_clients: &exclude,
            };
            let batch = match self.state.store.claim_due(&claim).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying shortly");
                    drop(first);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let full = batch.len() >= limit;
            // The batch's clients in one query (fresh: a changed URI applies to this attempt).
            let mut ids: Vec<ClientId> = batch.iter().map(|d| d.client_id.clone()).collect();
            ids.sort();
            ids.dedup();
            let clients: HashMap<ClientId, Client> = match self.state.store.clients_by_ids(&ids).await {
                Ok(list) => list.into_iter().map(|c| (c.id.clone(), c)).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "loading clients failed; the leases will expire and the deliveries be retried");
                    drop(first);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut first = Some(first);
            for d in batch {
                let permit = match first.take() {
                    Some(p) => p,
                    None => match self.global.clone().try_acquire_owned() {
                        Ok(p) => p,
                        // Cannot happen (we claimed no more than the free slots); wait rather than overrun.
                        Err(_) => match self.global.clone().acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => return,
                        },
                    },
                };
                let client = clients.get(&d.client_id).cloned();
                tokio::spawn(self.clone().attempt(d, client, permit));
            }
            drop(first);
            if full {
                continue;
            }
            let wait = match self.state.store.next_due().await {
                Ok(Some(t)) => {
                    let ms = (t.0 - self.state.clock.now().0).max(0);
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(MAX_IDLE)
                }
                _ => MAX_IDLE,
            };
            if wait.is_zero() {
                // Due now but not claimable (its host is saturated): wait until a slot frees up.
                tokio::select! {
                    () = self.state.delivery.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
            tokio::select! {
                () = self.state.delivery.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn host_semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.entry(host.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_host))).clone()
    }

    fn saturated_clients(&self) -> Vec<ClientId> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let full: Vec<&String> = hosts.iter().filter(|(_, s)| s.available_permits() == 0).map(|(h, _)| h).collect();
        if full.is_empty() {
            return Vec::new();
        }
        let clients = self.client_hosts.lock().unwrap_or_else(|p| p.into_inner());
        clients.iter().filter(|(_, h)| full.contains(h)).map(|(c, _)| c.clone()).collect()
    }

    async fn attempt(self: Arc<Self>, d: Delivery, client: Option<Client>, slot: OwnedSemaphorePermit) {
        let state = &self.state;
        let uri = client.as_ref().and_then(|c| c.backchannel_logout_uri.clone());
        let (Some(client), Some(uri)) = (client, uri) else {
            let response = Response::Failed {
                recoverable: false,
                reason: "the client no longer has a back-channel logout URI".into(),
            };
            self.finish(d, state.clock.now(), Duration::ZERO, response, slot);
            return;
        };
        let host = url::Url::parse(&uri).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
        self.client_hosts.lock().unwrap_or_else(|p| p.into_inner()).insert(d.client_id.clone(), host.clone());
        let Ok(host_permit) = self.host_semaphore(&host).acquire_owned().await else { return };
        let at = state.clock.now();
        let started = Instant::now();
        let response = match super::token::mint(state, &client, &d) {
            Ok(token) => self.outbound.send_logout_token(&uri, &token).await,
            Err(e) => {
                tracing::error!(delivery = %d.id, error = %e, "signing the logout token failed");
                Response::Failed { recoverable: true, reason: "the provider could not sign the logout token".into() }
            }
        };
        let latency = started.elapsed();
        drop(host_permit);
        self.finish(d, at, latency, response, slot);
    }

    /// Decides what follows the attempt and hands it to the recorder.
    fn finish(
        &self,
        d: Delivery,
        at: adieu_core::UnixMillis,
        latency: Duration,
        response: Response,
        slot: OwnedSemaphorePermit,
    ) {
        let next = self.policy.next(&response, d.attempts, d.round_started_at, self.state.clock.now(), jitter());
        let (http_status, error) = match &response {
            Response::Status { code, .. } => (Some(*code), None),
            Response::Failed { reason, .. } => (None, Some(reason.clone())),
        };
        let (result, reason, label, outcome) = match next {
            Next::Delivered => (AttemptResult::Delivered, None, "delivered", Outcome::Delivered),
            Next::Rejected => (
                AttemptResult::Rejected,
                Some("HTTP 400: the application rejected the logout token".to_owned()),
                "rejected",
                Outcome::Rejected,
            ),
            Next::Retry { at, reason } => (AttemptResult::Retry { at }, Some(reason), "retry", Outcome::Retrying),
            Next::Dead { reason } => (AttemptResult::Dead, Some(reason), "dead", Outcome::Dead),
        };
        let attempt = Attempt {
            delivery_id: d.id.clone(),
            number: 0,
            at,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            http_status,
            error,
        };
        let recorded = Recorded { attempt, result, reason };
        // If the recorder is gone the runtime is shutting down; the lease will expire.
        let _ = self.results.send(Finished { delivery: d, recorded, label, outcome, latency, _slot: slot });
    }
}

/// Writes finished attempts in batches, then reports them (metrics, logs, the logout page).
async fn record(state: AppState, mut rx: mpsc::UnboundedReceiver<Finished>) {
    let mut batch: Vec<Finished> = Vec::with_capacity(RECORD_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < RECORD_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let records: Vec<Recorded> = batch.iter().map(|f| f.recorded.clone()).collect();
        let stored = match state.store.record_attempts(&records).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, attempts = batch.len(), "recording attempts failed; their leases will expire and they will be retried");
                batch.clear();
                continue;
            }
        };
        for (f, ok) in batch.drain(..).zip(stored) {
            let d = &f.delivery;
            if !ok {
                tracing::info!(delivery = %d.id, "delivery was discarded or finished elsewhere meanwhile");
            }
            state.delivery.metrics.attempt(f.label, d.client_id.as_str(), f.latency);
            match &f.outcome {
                Outcome::Delivered => tracing::debug!(delivery = %d.id, client = %d.client_id, "logout delivered"),
                _ => tracing::warn!(
                    delivery = %d.id,
                    client = %d.client_id,
                    attempt = d.attempts,
                    reason = f.recorded.reason.as_deref().unwrap_or(""),
                    "logout delivery {}",
                    f.label
                ),
            }
            let _ = state.delivery.events.send(AttemptEvent {
                delivery_id: d.id.clone(),
                session_id: d.session_id.clone(),
                client_id: d.client_id.clone(),
                outcome: f.outcome,
            });
        }
        // Slots were freed: let the claiming loop look again (saturated hosts may have room now).
        state.delivery.wake();
    }
}
