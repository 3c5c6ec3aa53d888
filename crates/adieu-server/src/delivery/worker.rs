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
//! next attempt. A recording that fails (the database connection was cut) is tried again, with
//! backoff, for up to [`RECORD_PATIENCE`], so a short outage costs no duplicate sends.
//!
//! An idle worker sleeps until the next retry or lease expiry is due, at most
//! `delivery.poll_interval_ms`; a logout in this process wakes it at once, and so does a listener
//! task ([`DeliveryStore::listen_for_deliveries`]: on PostgreSQL, a NOTIFY from another replica's
//! commit). The listener reconnects by itself, with backoff, when its connection drops.
//!
//! Stopping ([`Running::shutdown`], on SIGTERM): the worker claims nothing more, lets the attempts
//! in flight finish and their results be recorded for up to a grace period, abandons those still
//! running then, and releases the leases of everything it did not finish (this replica's only), so
//! another replica sends them at once instead of after the lease.
//!
//! [`DeliveryStore::listen_for_deliveries`]: adieu_core::store::DeliveryStore::listen_for_deliveries

mod handoff;

use super::AttemptEvent;
use super::outbound::Outbound;
use crate::AppState;
use crate::keys::Keys;
use crate::settings::DeliverySettings;
use adieu_core::client::Client;
use adieu_core::delivery::{Attempt, Delivery, Response, RetryPolicy, Verdict};
use adieu_core::id::ClientId;
use adieu_core::store::Store;
use adieu_core::store::{Claim, Recorded};
use adieu_core::time::Clock;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

/// What the worker uses of the provider, and nothing more: it never sees sessions, passwords,
/// cookies or pages.
#[derive(Clone)]
pub struct Context {
    /// The delivery queue (and the clients' metadata).
    pub store: Arc<dyn Store>,
    /// Signing keys, for logout tokens.
    pub keys: Arc<Keys>,
    /// `iss` of logout tokens.
    pub issuer: Arc<str>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Wakes the worker, counts attempts, tells waiting sign-out pages.
    pub hub: Arc<super::DeliveryHub>,
    /// `[delivery]`.
    pub settings: DeliverySettings,
}

impl Context {
    /// The worker's part of the provider's state.
    pub fn of(state: &AppState) -> Self {
        Context {
            store: state.store.clone(),
            keys: state.keys.clone(),
            issuer: state.issuer.clone(),
            clock: state.clock.clone(),
            hub: state.delivery.clone(),
            settings: state.settings.delivery.clone(),
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// The worker's state.
#[derive(Debug)]
pub struct Worker {
    state: Context,
    outbound: Outbound,
    policy: RetryPolicy,
    lease: Duration,
    per_host: usize,
    poll_interval: Duration,
    slots: usize,
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Each application's share of its host's slots (isolation between applications that share
    /// a host name).
    windows: super::window::Windows,
    client_hosts: Mutex<HashMap<ClientId, String>>,
    results: mpsc::UnboundedSender<Finished>,
    /// Deliveries a logout in this process wrote leased to this replica (the hand-off).
    handed: mpsc::UnboundedSender<handoff::Handed>,
    phase: watch::Sender<Phase>,
}

/// Where the worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Claiming and sending.
    Running,
    /// Claiming nothing more; attempts in flight finish.
    Draining,
    /// Attempts still in flight are dropped (their deliveries will be released).
    Abandon,
}

/// A finished attempt on its way to the recorder, holding its slot.
#[derive(Debug)]
struct Finished {
    delivery: Delivery,
    recorded: Recorded,
    latency: Duration,
    _slot: OwnedSemaphorePermit,
}

const RECORD_BATCH: usize = 512;

/// How long the recorder keeps trying to write a batch of results before it gives up on it (the
/// leases then expire and the deliveries are sent again).
pub const RECORD_PATIENCE: Duration = Duration::from_secs(30);

/// How long a stopping worker waits for results already in hand to be recorded after the grace
/// period, before it releases the leases anyway.
const FINAL_RECORD_WAIT: Duration = Duration::from_secs(5);

/// A running worker: its claiming loop, its recorder and its listener. Dropping it stops them and
/// drops the attempts in flight (their leases then expire); [`Running::shutdown`] stops gracefully.
#[derive(Debug)]
pub struct Running {
    worker: Arc<Worker>,
    claimer: Option<JoinHandle<()>>,
    recorder: JoinHandle<()>,
    listener: JoinHandle<()>,
    taker: JoinHandle<()>,
}

/// What a graceful stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Attempts in flight (sending, or waiting to be recorded) when the stop began.
    pub in_flight: usize,
    /// Of those, how many were still unfinished at the end of the grace period and were abandoned.
    pub abandoned: usize,
    /// Deliveries whose leases this replica released (claimable again by any replica at once).
    pub released: u64,
}

/// Starts the worker on `state`, sending through `outbound`.
pub fn start(state: Context, outbound: Outbound) -> Running {
    let d = &state.settings;
    let (results, rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record(state.clone(), rx));
    let listener = tokio::spawn(listen(state.clone()));
    let (handed, handed_rx) = mpsc::unbounded_channel();
    let worker = Arc::new(Worker {
        policy: d.retry_policy(),
        lease: Duration::from_secs(d.lease_secs),
        per_host: d.per_host_concurrency,
        poll_interval: Duration::from_millis(d.poll_interval_ms),
        slots: d.global_concurrency,
        global: Arc::new(Semaphore::new(d.global_concurrency)),
        hosts: Mutex::default(),
        windows: super::window::Windows::new(d.per_client_concurrency, d.per_host_concurrency),
        client_hosts: Mutex::default(),
        results,
        handed,
        phase: watch::Sender::new(Phase::Running),
        outbound,
        state,
    });
    let claimer = tokio::spawn(worker.clone().run());
    let taker = tokio::spawn(worker.clone().take_handed(handed_rx));
    worker.state.store.set_handoff(Arc::new(handoff::Taker(Arc::downgrade(&worker))));
    Running { worker, claimer: Some(claimer), recorder, listener, taker }
}

/// [`start`], as one task: aborting it stops the worker as dropping [`Running`] does.
pub fn spawn(state: Context, outbound: Outbound) -> JoinHandle<()> {
    let running = start(state, outbound);
    tokio::spawn(async move {
        let _running = running;
        std::future::pending::<()>().await;
    })
}

impl Running {
    /// Stops gracefully: claims nothing more, waits up to `grace` for the attempts in flight to
    /// finish and be recorded, abandons the rest, and releases this replica's leases (everything
    /// it claimed and did not finish). On PostgreSQL the release notifies the other replicas.
    pub async fn shutdown(mut self, grace: Duration) -> StopReport {
        let w = self.worker.clone();
        let slots = u32::try_from(w.slots).unwrap_or(u32::MAX);
        w.phase.send_replace(Phase::Draining);
        // The claiming loop finishes the claim it may be making (without sending it) and stops.
        if let Some(claimer) = self.claimer.take() {
            let _ = claimer.await;
        }
        let in_flight = w.slots - w.global.available_permits();
        if in_flight > 0 {
            tracing::info!(in_flight, grace_secs = grace.as_secs_f64(), "stopping: waiting for deliveries in flight");
        }
        // A slot is free once its attempt's result is recorded: all free means all recorded.
        let mut abandoned = 0;
        if tokio::time::timeout(grace, w.global.acquire_many(slots)).await.is_err() {
            abandoned = w.slots - w.global.available_permits();
            w.phase.send_replace(Phase::Abandon);
            // Results already in hand are still recorded, if the database lets us soon.
            let _ = tokio::time::timeout(FINAL_RECORD_WAIT, w.global.acquire_many(slots)).await;
            tracing::warn!(abandoned, "stopping: attempts still in flight after the grace period were abandoned");
        }
        self.listener.abort();
        self.taker.abort();
        let released = match w.state.store.release_leases().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "stopping: releasing the leases failed; they will expire");
                0
            }
        };
        StopReport { in_flight, abandoned, released }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.worker.phase.send_replace(Phase::Abandon);
        if let Some(c) = &self.claimer {
            c.abort();
        }
        self.recorder.abort();
        self.listener.abort();
        self.taker.abort();
    }
}

/// Wakes the worker whenever the store says deliveries became claimable elsewhere; listens again
/// after a pause when the connection is lost (the worker polls meanwhile).
async fn listen(state: Context) {
    const FIRST_PAUSE: Duration = Duration::from_millis(100);
    const LONGEST_PAUSE: Duration = Duration::from_secs(10);
    let mut pause = FIRST_PAUSE;
    loop {
        let hub = state.hub.clone();
        let wake = move || hub.wake();
        let started = Instant::now();
        let Err(e) = state.store.listen_for_deliveries(&wake).await else { return };
        // A listener that ran for a while failed for a new reason: start the backoff over.
        if started.elapsed() > LONGEST_PAUSE * 3 {
            pause = FIRST_PAUSE;
        }
        tracing::warn!(error = %e, retry_in_ms = pause.as_millis(), "listening for deliveries failed; polling meanwhile");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Resolves once the worker's phase is at least `phase`.
async fn reached(rx: &mut watch::Receiver<Phase>, phase: Phase) {
    loop {
        let now = *rx.borrow_and_update();
        let past = match phase {
            Phase::Running => true,
            Phase::Draining => now != Phase::Running,
            Phase::Abandon => now == Phase::Abandon,
        };
        if past || rx.changed().await.is_err() {
            return;
        }
    }
}

fn jitter() -> f64 {
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

impl Worker {
    async fn run(self: Arc<Self>) {
        let mut phase = self.phase.subscribe();
        loop {
            // Wait for at least one free slot, then claim as many as are free.
            let first = tokio::select! {
                biased;
                () = reached(&mut phase, Phase::Draining) => return,
                p = self.global.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
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
                    tokio::select! {
                        () = reached(&mut phase, Phase::Draining) => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            };
            if *phase.borrow() != Phase::Running {
                // Stopping: what was just claimed is not sent; the stop releases its leases.
                return;
            }
            let full = batch.len() >= limit;
            let clients = match self.clients_of(&batch).await {
                Ok(c) => c,
                Err(()) => {
                    drop(first);
                    tokio::select! {
                        () = reached(&mut phase, Phase::Draining) => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
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
                self.launch(d, &clients, permit, &phase);
            }
            drop(first);
            if full {
                continue;
            }
            let wait = match self.state.store.next_due().await {
                Ok(Some(t)) => {
                    let ms = (t.0 - self.state.clock.now().0).max(0);
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(self.poll_interval)
                }
                _ => self.poll_interval,
            };
            // Due now but not claimable (its host is saturated): wait until a slot frees up.
            let wait = if wait.is_zero() { Duration::from_millis(50) } else { wait };
            tokio::select! {
                () = reached(&mut phase, Phase::Draining) => return,
                () = self.state.hub.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The clients of `batch`, in one query (fresh: a changed URI applies to this attempt). On an
    /// error (logged) the leases will expire and the deliveries be retried.
    async fn clients_of(&self, batch: &[Delivery]) -> Result<HashMap<ClientId, Client>, ()> {
        let mut ids: Vec<ClientId> = batch.iter().map(|d| d.client_id.clone()).collect();
        ids.sort();
        ids.dedup();
        match self.state.store.clients_by_ids(&ids).await {
            Ok(list) => Ok(list.into_iter().map(|c| (c.id.clone(), c)).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "loading clients failed; the leases will expire and the deliveries be retried");
                Err(())
            }
        }
    }

    /// Runs the attempt of the leased delivery `d` on a task of its own, holding `slot`.
    fn launch(
        self: &Arc<Self>,
        d: Delivery,
        clients: &HashMap<ClientId, Client>,
        slot: OwnedSemaphorePermit,
        phase: &watch::Receiver<Phase>,
    ) {
        let client = clients.get(&d.client_id).cloned();
        let (worker, mut phase) = (self.clone(), phase.clone());
        tokio::spawn(async move {
            // Abandoned at the end of a stop's grace period: the slot is freed unrecorded and the
            // stop releases the lease.
            tokio::select! {
                () = reached(&mut phase, Phase::Abandon) => {}
                () = worker.attempt(d, client, slot) => {}
            }
        });
    }

    fn host_semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.entry(host.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_host))).clone()
    }

    /// Clients not to claim for now: those with every slot of their own in use, and those whose
    /// host has every slot in use.
    fn saturated_clients(&self) -> Vec<ClientId> {
        let mut out = self.windows.full();
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let full: Vec<&String> = hosts.iter().filter(|(_, s)| s.available_permits() == 0).map(|(h, _)| h).collect();
        if !full.is_empty() {
            let clients = self.client_hosts.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(clients.iter().filter(|(_, h)| full.contains(h)).map(|(c, _)| c.clone()));
        }
        out.sort();
        out.dedup();
        out
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
        // The application's window first, then its host's slots: an application that hangs holds
        // few of its host's slots (see `window`).
        let Some(client_slot) = self.windows.of(&d.client_id).acquire().await else { return };
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
        let pace = match response {
            Response::Status { .. } if latency < super::window::RESPONSIVE => super::window::Pace::Quick,
            Response::Status { .. } => super::window::Pace::Slow,
            Response::Failed { .. } => super::window::Pace::Silent,
        };
        client_slot.finish(pace);
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
        let verdict = self.policy.next(&response, d.attempts, d.round_started_at, self.state.clock.now(), jitter());
        let (http_status, error) = match &response {
            Response::Status { code, .. } => (Some(*code), None),
            Response::Failed { reason, .. } => (None, Some(reason.clone())),
        };
        let attempt = Attempt {
            delivery_id: d.id.clone(),
            number: 0,
            at,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            http_status,
            error,
        };
        let recorded = Recorded { attempt, verdict };
        // If the recorder is gone the runtime is shutting down; the lease will expire.
        let _ = self.results.send(Finished { delivery: d, recorded, latency, _slot: slot });
    }
}

/// Records a batch, trying again with backoff for up to [`RECORD_PATIENCE`] (recording twice is
/// harmless: a result for a delivery no longer leased changes nothing). `None` if it never worked.
async fn record_patiently(state: &Context, records: &[Recorded]) -> Option<Vec<bool>> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match state.store.record_attempts(records).await {
            Ok(s) => return Some(s),
            Err(e) if started.elapsed() + pause < RECORD_PATIENCE => {
                tracing::warn!(error = %e, attempts = records.len(), retry_in_ms = pause.as_millis(), "recording attempts failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::warn!(error = %e, attempts = records.len(), "recording attempts failed; their leases will expire and they will be retried");
                return None;
            }
        }
    }
}

/// Writes finished attempts in batches, then reports them (metrics, logs, the logout page).
async fn record(state: Context, mut rx: mpsc::UnboundedReceiver<Finished>) {
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
        let Some(stored) = record_patiently(&state, &records).await else {
            batch.clear();
            continue;
        };
        for (f, ok) in batch.drain(..).zip(stored) {
            let d = &f.delivery;
            if !ok {
                tracing::info!(delivery = %d.id, "delivery was discarded or finished elsewhere meanwhile");
            }
            let verdict = &f.recorded.verdict;
            state.hub.metrics.attempt(verdict.label(), d.client_id.as_str(), f.latency);
            match verdict {
                Verdict::Delivered => tracing::debug!(delivery = %d.id, client = %d.client_id, "logout delivered"),
                _ => tracing::warn!(
                    delivery = %d.id,
                    client = %d.client_id,
                    attempt = d.attempts,
                    reason = verdict.reason().unwrap_or(""),
                    "logout delivery {}",
                    verdict.label()
                ),
            }
            let _ = state.hub.events.send(AttemptEvent {
                delivery_id: d.id.clone(),
                session_id: d.session_id.clone(),
                client_id: d.client_id.clone(),
                verdict: f.recorded.verdict,
            });
        }
        // Slots were freed: let the claiming loop look again (saturated hosts may have room now).
        state.hub.wake();
    }
}
