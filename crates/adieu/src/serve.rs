//! `adieu serve`: the provider, until SIGINT or SIGTERM; then a graceful stop (requests in flight
//! finish; deliveries in flight finish within `delivery.shutdown_grace_secs`, and the leases of
//! the rest are released for other replicas).

use crate::config::Config;
use adieu_core::SystemClock;
use adieu_server::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Runs the provider.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let settings = config.settings()?;
    let store = crate::store::open(&config).await?;
    if settings.is_development() {
        tracing::warn!(
            issuer = %settings.issuer,
            "DEVELOPMENT PROFILE: the issuer is a loopback address, so plain http and loopback \
             application URLs are allowed. Use an https issuer in production."
        );
    }
    let state = AppState::new(store.clone(), settings, Arc::new(SystemClock)).await?;
    adieu_server::upstream::announce(&state);
    // Leases this replica's previous run left are released at once: on SQLite every lease (one
    // process owns the file), on PostgreSQL those of this `database.replica_id` (other replicas'
    // stay theirs until they expire).
    let released = store.release_leases().await?;
    if released > 0 {
        tracing::info!(released, "resuming deliveries that were in flight when the last run stopped");
    }
    let worker = if state.settings.delivery.worker {
        Some(adieu_server::delivery::worker::start(state.clone(), state.outbound()?))
    } else {
        tracing::info!("delivery.worker = false: this replica sends no back-channel logouts (other replicas do)");
        None
    };
    // Sweeps once now (sessions that expired while the server was stopped), then periodically.
    let sweeper = adieu_server::sweeper::spawn(state.clone());
    // Re-reads the signing keys periodically, so rotations and retirements made by the command
    // line or another replica arrive without a restart.
    let key_reloader = adieu_server::keys::spawn_reloader(state.clone());
    // Prunes finished deliveries and old audit events (`[retention]`), at start and periodically.
    let pruner = adieu_server::retention::spawn(state.clone());
    match state.keys.kek() {
        Some(kek) => tracing::info!(kek_id = %kek.fingerprint(), "new signing keys are stored encrypted"),
        None => tracing::info!("no key_encryption_key: signing keys are stored unencrypted in the database"),
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, issuer = %state.issuer, database = %crate::store::redacted(&config.database_url), "adieu is listening");
    println!("adieu is listening on http://{addr} (issuer {})", state.issuer);

    let purge_state = state.clone();
    let purger = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            match purge_state.store.purge_expired(purge_state.clock.now()).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired codes and tokens"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
            }
        }
    });

    let grace = Duration::from_secs(state.settings.delivery.shutdown_grace_secs);
    let limits = state.settings.http.clone();
    let app = adieu_server::router(state);
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut http = tokio::spawn(async move {
        let stopped = async {
            let _ = http_stopped.await;
        };
        adieu_server::http_server::serve(listener, app, &limits, stopped, grace).await
    });
    tokio::select! {
        () = shutdown_signal() => {}
        served = &mut http => {
            served??;
            anyhow::bail!("the HTTP server stopped by itself");
        }
    }
    // On a signal, in parallel: the HTTP server accepts no more connections and lets the
    // requests in flight finish within the grace period; the worker claims nothing more, lets its
    // attempts finish within the grace period, and releases the leases of what it did not finish
    // so that another replica sends them now. The stop ends within the grace period (and a few
    // seconds for releasing leases) whatever clients or the database do.
    let _ = stop_http.send(());
    let stop_worker = async {
        match worker {
            Some(w) => Some(w.shutdown(grace).await),
            None => None,
        }
    };
    let Ok((served, stopped)) =
        tokio::time::timeout(grace + Duration::from_secs(5), async { tokio::join!(http, stop_worker) }).await
    else {
        tracing::warn!("the graceful stop took longer than the grace period; stopping now");
        return Ok(());
    };
    purger.abort();
    pruner.abort();
    sweeper.abort();
    key_reloader.abort();
    if let Some(r) = stopped {
        tracing::info!(
            in_flight = r.in_flight,
            abandoned = r.abandoned,
            released = r.released,
            "delivery worker stopped: deliveries not finished were released for other replicas"
        );
    }
    served??;
    tracing::info!("adieu stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests and deliveries");
}
