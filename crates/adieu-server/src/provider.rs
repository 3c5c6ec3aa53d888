//! The running provider, assembled in one place: `adieu serve`, `adieu demo` and the test kit all
//! call [`start`], so the tests run the production assembly.
//!
//! [`start`] wraps the store ([`AppState::new`]), releases the leases a previous run left, and
//! starts the delivery worker, the session sweeper, the key reloader, the retention pruner, the
//! purger of expired codes and tokens, and the HTTP server on the given listener.
//! [`Provider::shutdown`] stops gracefully (requests and deliveries in flight finish within
//! `delivery.shutdown_grace_secs`, the leases of the rest are released for other replicas);
//! dropping a [`Provider`] stops everything at once.

use crate::AppState;
use crate::delivery::worker::{self, Running, StopReport};
use crate::settings::Settings;
use adieu_core::{Clock, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often expired codes, tokens and pending sign-ins are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// A running provider.
#[derive(Debug)]
pub struct Provider {
    /// The shared state (the wrapped store, settings, keys, clock).
    pub state: AppState,
    /// Where it listens.
    pub addr: SocketAddr,
    worker: Option<Running>,
    tasks: Vec<JoinHandle<()>>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    stop_http: Option<oneshot::Sender<()>>,
}

/// How a graceful stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stopped {
    /// The worker's report (none if this replica runs no worker).
    pub worker: Option<StopReport>,
    /// Whether everything stopped within the grace period and a few seconds more.
    pub in_time: bool,
}

/// Starts the provider on `listener`.
pub async fn start(
    store: Arc<dyn Store>,
    settings: Settings,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
) -> anyhow::Result<Provider> {
    let state = AppState::new(store, settings, clock).await?;
    crate::upstream::announce(&state);
    // Leases this replica's previous run left are released at once: on SQLite every lease (one
    // process owns the file), on PostgreSQL those of this replica id.
    let released = state.store.release_leases().await?;
    if released > 0 {
        tracing::info!(released, "resuming deliveries that were in flight when the last run stopped");
    }
    let worker = if state.settings.delivery.worker {
        Some(worker::start(worker::Context::of(&state), state.outbound()?))
    } else {
        tracing::info!("delivery.worker = false: this replica sends no back-channel logouts (other replicas do)");
        None
    };
    let tasks = vec![
        // Once now (sessions that expired while stopped), then periodically.
        crate::sweeper::spawn(state.clone()),
        // Rotations and retirements made by the command line or another replica arrive without a restart.
        crate::keys::spawn_reloader(state.clone()),
        crate::retention::spawn(state.clone()),
        spawn_purger(state.clone()),
    ];
    let addr = listener.local_addr()?;
    let (stop_http, stopped) = oneshot::channel::<()>();
    let grace = grace(&state);
    let limits = state.settings.http.clone();
    let app = crate::router(state.clone());
    let http = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        crate::http_server::serve(listener, app, &limits, stopped, grace).await
    });
    Ok(Provider { state, addr, worker, tasks, http: Some(http), stop_http: Some(stop_http) })
}

fn grace(state: &AppState) -> Duration {
    Duration::from_secs(state.settings.delivery.shutdown_grace_secs)
}

fn spawn_purger(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_INTERVAL);
        loop {
            every.tick().await;
            match state.store.purge_expired(state.clock.now()).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired codes and tokens"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
            }
        }
    })
}

impl Provider {
    /// Waits until the HTTP server stops by itself (an error), which it should never do.
    pub async fn serving(&mut self) -> anyhow::Result<()> {
        match self.http.as_mut() {
            Some(http) => {
                (&mut *http).await??;
                self.http = None;
                anyhow::bail!("the HTTP server stopped by itself")
            }
            None => std::future::pending().await,
        }
    }

    /// Stops gracefully, in parallel: the HTTP server accepts no more connections and lets the
    /// requests in flight finish within the grace period; the worker claims nothing more, lets
    /// its attempts finish, and releases the leases of what it did not finish so that another
    /// replica sends them now. Ends within the grace period and 5 seconds more, whatever clients
    /// or the database do.
    pub async fn shutdown(mut self) -> Stopped {
        let grace = grace(&self.state);
        if let Some(tx) = self.stop_http.take() {
            let _ = tx.send(());
        }
        let http = self.http.take();
        let worker = self.worker.take();
        let both = async {
            let served = match http {
                Some(h) => h.await.ok().and_then(Result::err).map(|e| e.to_string()),
                None => None,
            };
            if let Some(e) = served {
                tracing::warn!(error = %e, "the HTTP server stopped with an error");
            }
        };
        let stop_worker = async {
            match worker {
                Some(w) => Some(w.shutdown(grace).await),
                None => None,
            }
        };
        let result =
            tokio::time::timeout(grace + Duration::from_secs(5), async { tokio::join!(both, stop_worker) }).await;
        self.halt();
        match result {
            Ok(((), worker)) => Stopped { worker, in_time: true },
            Err(_) => {
                tracing::warn!("the graceful stop took longer than the grace period; stopping now");
                Stopped { worker: None, in_time: false }
            }
        }
    }

    /// Stops everything now: the HTTP server stops accepting, the background tasks end, and the
    /// attempts in flight are dropped (their leases expire).
    pub fn halt(&mut self) {
        if let Some(tx) = self.stop_http.take() {
            let _ = tx.send(());
        }
        self.worker = None;
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.halt();
    }
}
