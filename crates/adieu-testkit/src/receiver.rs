//! A recording back-channel receiver: a real HTTP server on `127.0.0.1:0` that records every POST
//! (with the moment it arrived) and answers as scripted (a status, after a delay or at once, a
//! redirect, `Retry-After`, or never).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How the receiver answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// Answer with this status.
    Status(u16),
    /// Answer 429 or 503 with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// Answer 302 to this location.
    Redirect(String),
    /// Never answer.
    Hang,
    /// Answer with this status after this delay (a slow application).
    Slow(u16, Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The form fields in order.
    pub form: Vec<(String, String)>,
    /// The request's query string.
    pub query: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// When the request arrived (before any scripted delay).
    pub at: Instant,
}

impl Received {
    /// The `logout_token` field.
    pub fn logout_token(&self) -> &str {
        self.form.iter().find(|(k, _)| k == "logout_token").map_or("", |(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Inner {
    script: Mutex<VecDeque<Behavior>>,
    default: Mutex<Behavior>,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
}

/// A running receiver; it stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Its back-channel logout URI (`http://127.0.0.1:PORT/backchannel?tenant=t1`).
    pub uri: String,
    inner: Arc<Inner>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    inner.received.lock().unwrap().push(Received { form, query, content_type, at: Instant::now() });
    inner.arrived.notify_waiters();
    let behavior = inner.script.lock().unwrap().pop_front().unwrap_or_else(|| inner.default.lock().unwrap().clone());
    match behavior {
        Behavior::Status(code) => {
            let mut r = StatusCode::from_u16(code).unwrap_or(StatusCode::OK).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Behavior::RetryAfter(code, secs) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            [(header::RETRY_AFTER, secs.to_string())],
        )
            .into_response(),
        Behavior::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
        Behavior::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Behavior::Slow(code, delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::from_u16(code).unwrap_or(StatusCode::OK).into_response()
        }
    }
}

impl Receiver {
    /// Starts a receiver that answers `default` unless scripted otherwise.
    pub async fn start(default: Behavior) -> Receiver {
        Self::start_at(0, default).await
    }

    /// Starts a receiver on a chosen loopback port (0 = any).
    pub async fn start_at(port: u16, default: Behavior) -> Receiver {
        let inner = Arc::new(Inner {
            script: Mutex::default(),
            default: Mutex::new(default),
            received: Mutex::default(),
            arrived: Notify::new(),
        });
        let app = Router::new().route("/backchannel", post(handle)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind receiver");
        let port = listener.local_addr().expect("local addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver { uri: format!("http://127.0.0.1:{port}/backchannel?tenant=t1"), inner, _stop: tx }
    }

    /// The next requests are answered with `behaviors`, in order; then the default again.
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.inner.script.lock().unwrap().extend(behaviors);
    }

    /// Changes the default answer.
    pub fn set_default(&self, b: Behavior) {
        *self.inner.default.lock().unwrap() = b;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (or `timeout` passes); returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.received();
            }
        }
    }
}

/// A URI on which nothing listens (connection refused).
pub fn dead_uri() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    format!("http://127.0.0.1:{port}/backchannel")
}
