//! `adieu serve`: the provider, until SIGINT or SIGTERM; then a graceful stop (requests in flight
//! finish; deliveries in flight finish within `delivery.shutdown_grace_secs`, and the leases of
//! the rest are released for other replicas).

use crate::config::Config;
use adieu_core::SystemClock;
use adieu_server::provider;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds the `listen` address, saying which setting to change when it cannot.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (set `listen` in the configuration, ADIEU_LISTEN, or `adieu serve --listen`)")
    })
}

/// Runs the provider (the one assembly, [`adieu_server::provider::start`]) until a signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    run_on(config, listener).await
}

/// [`run`] on a listener already bound.
pub async fn run_on(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    let settings = config.settings()?;
    let store = crate::store::open(&config).await?;
    for h in adieu_server::startup_hints::hints(&settings, listener.local_addr()?) {
        tracing::warn!(setting = h.setting, "{}", h.message);
    }
    if settings.is_development() {
        tracing::warn!(
            issuer = %settings.issuer,
            "DEVELOPMENT PROFILE: the issuer is a loopback address, so plain http and loopback \
             application URLs are allowed. Use an https issuer in production."
        );
    }
    let mut provider = provider::start(store, settings, Arc::new(SystemClock), listener).await?;
    let state = &provider.state;
    if let Some(kek) = state.keys.kek() {
        tracing::info!(kek_id = %kek.fingerprint(), "new signing keys are stored encrypted");
    }
    let addr = provider.addr;
    tracing::info!(%addr, issuer = %state.issuer, database = %crate::store::redacted(&config.database_url), "adieu is listening");
    crate::out::say!("adieu is listening on http://{addr} (issuer {})", state.issuer);
    tokio::select! {
        () = shutdown_signal() => {}
        served = provider.serving() => return served,
    }
    let stopped = provider.shutdown().await;
    if let Some(r) = stopped.worker {
        tracing::info!(
            in_flight = r.in_flight,
            abandoned = r.abandoned,
            released = r.released,
            "delivery worker stopped: deliveries not finished were released for other replicas"
        );
    }
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
