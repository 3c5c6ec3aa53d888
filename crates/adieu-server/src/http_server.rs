//! The HTTP listener with connection hygiene (DESIGN.md §5): at most `http.max_connections`
//! connections at once and `http.max_connections_per_address` from one client address (an IPv6
//! client by its /64; trusted proxies are exempt), excess connections closed at once instead of
//! queued; a request head must arrive within `http.header_read_timeout_secs` (this also closes
//! keep-alive connections left idle that long, and slowloris connections); a request body must
//! arrive, and the answer be ready, within `http.request_timeout_secs`. On shutdown the listener
//! stops accepting, lets requests in flight finish for a grace period, then returns whatever is
//! left, so a stop always ends.

use crate::settings::SettingsError;
use adieu_core::net::client_bucket;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// `[http]`: limits of the HTTP listener, and the proxies it trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Connections open at once (default 4096); more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections open at once from one client address, an IPv6 client by its /64 (default
    /// 256). Addresses in `trusted_proxies` are exempt.
    pub max_connections_per_address: usize,
    /// Seconds a client has to send a whole request head (default 10). A keep-alive connection
    /// with no new request for this long is closed too.
    pub header_read_timeout_secs: u64,
    /// Seconds for reading a request body and preparing the answer (default 30); a request that
    /// takes longer is answered 408 (body) or 503 (answer).
    pub request_timeout_secs: u64,
    /// Reverse proxies (CIDRs, e.g. `["10.0.0.0/8"]`) whose `Forwarded` or `X-Forwarded-For`
    /// header names the client: the client is the rightmost address in it that is not a trusted
    /// proxy. Empty by default: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_connections: 4096,
            max_connections_per_address: 256,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

impl HttpSettings {
    /// The trusted proxies, parsed.
    pub fn proxies(&self) -> Result<Vec<ipnet::IpNet>, SettingsError> {
        self.trusted_proxies
            .iter()
            .map(|c| c.parse::<ipnet::IpNet>().map_err(|_| SettingsError::Cidr(c.clone())))
            .collect()
    }

    /// Checks the limits are usable.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (name, v) in [
            ("http.max_connections", self.max_connections as u64),
            ("http.max_connections_per_address", self.max_connections_per_address as u64),
            ("http.header_read_timeout_secs", self.header_read_timeout_secs),
            ("http.request_timeout_secs", self.request_timeout_secs),
        ] {
            if v == 0 {
                return Err(SettingsError::Zero(name));
            }
        }
        self.proxies().map(|_| ())
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of an address; dropping it gives the slot back.
struct AddressSlot {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, addr: IpAddr, max: usize) -> Option<AddressSlot> {
        let key = client_bucket(addr);
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot { table: self.clone(), key })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What a connection holds while it is open.
struct Admission {
    _global: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// Admits a connection from `peer`, or says no at once.
struct Gate {
    global: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    max_per_address: usize,
    exempt: Vec<ipnet::IpNet>,
}

impl Gate {
    fn admit(&self, peer: IpAddr) -> Option<Admission> {
        let global = self.global.clone().try_acquire_owned().ok()?;
        let address = if self.exempt.iter().any(|n| n.contains(&peer)) {
            None
        } else {
            Some(self.per_address.take(peer, self.max_per_address)?)
        };
        Some(Admission { _global: global, _address: address })
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then lets requests in
/// flight finish for at most `grace` and returns. Handlers see the peer as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpSettings,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let gate = Gate {
        global: Arc::new(Semaphore::new(limits.max_connections)),
        per_address: Arc::default(),
        max_per_address: limits.max_connections_per_address,
        exempt: limits.proxies().unwrap_or_default(),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs))
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut refused_logged = false;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admission) = gate.admit(peer.ip()) else {
            if !refused_logged {
                tracing::warn!(%peer, "connection limit reached: new connections are closed at once");
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        refused_logged = false;
        let _ = stream.set_nodelay(true);
        let svc = app.clone().map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _held = admission;
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still in flight after the grace period are dropped");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(client_bucket(a), client_bucket(b));
        assert_ne!(client_bucket(a), client_bucket("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(client_bucket("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn per_address_limit_gives_slots_back() {
        let t = Arc::new(PerAddress::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = t.take(ip, 2).unwrap();
        let _b = t.take(ip, 2).unwrap();
        assert!(t.take(ip, 2).is_none(), "third connection of the address is refused");
        assert!(t.take("192.0.2.2".parse().unwrap(), 2).is_some(), "other addresses are apart");
        drop(a);
        assert!(t.take(ip, 2).is_some(), "a closed connection frees its slot");
    }

    #[test]
    fn trusted_proxies_are_exempt_from_the_per_address_limit() {
        let gate = Gate {
            global: Arc::new(Semaphore::new(10)),
            per_address: Arc::default(),
            max_per_address: 1,
            exempt: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| gate.admit(proxy).expect("proxy admitted")).collect();
        let client: IpAddr = "192.0.2.9".parse().unwrap();
        let _one = gate.admit(client).unwrap();
        assert!(gate.admit(client).is_none());
        assert_eq!(held.len(), 5);
    }

    #[test]
    fn the_global_limit_refuses_at_once() {
        let gate = Gate {
            global: Arc::new(Semaphore::new(2)),
            per_address: Arc::default(),
            max_per_address: 10,
            exempt: vec![],
        };
        let _a = gate.admit("192.0.2.1".parse().unwrap()).unwrap();
        let _b = gate.admit("192.0.2.2".parse().unwrap()).unwrap();
        assert!(gate.admit("192.0.2.3".parse().unwrap()).is_none());
    }

    #[test]
    fn zero_limits_and_bad_cidrs_are_refused() {
        let mut s = HttpSettings { max_connections: 0, ..HttpSettings::default() };
        assert_eq!(s.validate(), Err(SettingsError::Zero("http.max_connections")));
        s = HttpSettings { trusted_proxies: vec!["not a cidr".into()], ..HttpSettings::default() };
        assert!(s.validate().is_err());
    }
}
