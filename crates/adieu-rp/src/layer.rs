//! Lazy ending as a tower layer (feature `axum`): on every request, look up the request's session
//! id and, if a back-channel logout ended it, answer with the application's "signed out" response
//! instead of calling the handler. For sessions that live only in a cookie and cannot be deleted
//! server-side; the back-channel endpoint records the markers ([`LogoutMarkerStore`] as its
//! [`crate::index::SessionEnder`]).
//!
//! When the marker store cannot be read, the layer fails closed with `503`: serving a session that
//! may have been ended is what back-channel logout exists to prevent.

use crate::index::LogoutMarkerStore;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

type SessionIdFn = dyn Fn(&Request<Body>) -> Option<String> + Send + Sync;
type LoggedOutFn = dyn Fn(&Request<Body>) -> Response + Send + Sync;

/// The layer. `session_id` reads the application's session id from a request (usually a cookie).
///
/// ```
/// use adieu_rp::index::LogoutMarkers;
/// use adieu_rp::layer::LazyLogoutLayer;
/// use axum::{routing::get, Router};
/// use std::sync::Arc;
///
/// let markers = Arc::new(LogoutMarkers::default());
/// let app: Router = Router::new()
///     .route("/", get(|| async { "your profile" }))
///     .layer(LazyLogoutLayer::new(markers, |req| {
///         // e.g. the value of the application's session cookie
///         req.headers().get("x-session").and_then(|v| v.to_str().ok()).map(str::to_owned)
///     }));
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct LazyLogoutLayer {
    markers: Arc<dyn LogoutMarkerStore>,
    session_id: Arc<SessionIdFn>,
    on_logged_out: Arc<LoggedOutFn>,
}

impl std::fmt::Debug for LazyLogoutLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyLogoutLayer").field("markers", &self.markers).finish_non_exhaustive()
    }
}

impl LazyLogoutLayer {
    /// A layer that checks `markers` for the session id that `session_id` finds in each request.
    /// Requests without a session id pass through. An ended session gets `401` with
    /// `Cache-Control: no-store` unless [`LazyLogoutLayer::on_logged_out`] says otherwise.
    ///
    /// ```
    /// # use adieu_rp::{index::LogoutMarkers, layer::LazyLogoutLayer};
    /// let layer = LazyLogoutLayer::new(std::sync::Arc::new(LogoutMarkers::default()), |_req| None);
    /// # let _ = layer;
    /// ```
    pub fn new(
        markers: Arc<dyn LogoutMarkerStore>,
        session_id: impl Fn(&Request<Body>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        LazyLogoutLayer { markers, session_id: Arc::new(session_id), on_logged_out: Arc::new(|_| default_logged_out()) }
    }

    /// What to answer for an ended session, e.g. clear the cookie and redirect to sign-in.
    ///
    /// ```
    /// # use adieu_rp::{index::LogoutMarkers, layer::LazyLogoutLayer};
    /// use axum::response::{IntoResponse, Redirect};
    /// let layer = LazyLogoutLayer::new(std::sync::Arc::new(LogoutMarkers::default()), |_req| None)
    ///     .on_logged_out(|_req| {
    ///         ([("set-cookie", "app-session=; Max-Age=0; Path=/")], Redirect::to("/signed-out")).into_response()
    ///     });
    /// # let _ = layer;
    /// ```
    pub fn on_logged_out(mut self, respond: impl Fn(&Request<Body>) -> Response + Send + Sync + 'static) -> Self {
        self.on_logged_out = Arc::new(respond);
        self
    }
}

fn default_logged_out() -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, "Your session has ended. Please sign in again.").into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn unavailable() -> Response {
    let mut r =
        (StatusCode::SERVICE_UNAVAILABLE, "The session could not be checked. Please try again.").into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

impl<S> tower_layer::Layer<S> for LazyLogoutLayer {
    type Service = LazyLogoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LazyLogoutService { inner, layer: self.clone() }
    }
}

/// The service [`LazyLogoutLayer`] wraps around the application.
///
/// ```
/// # use adieu_rp::{index::LogoutMarkers, layer::{LazyLogoutLayer, LazyLogoutService}};
/// use tower_layer::Layer;
/// let layer = LazyLogoutLayer::new(std::sync::Arc::new(LogoutMarkers::default()), |_req| None);
/// let service: LazyLogoutService<axum::Router> = layer.layer(axum::Router::new());
/// # let _ = service;
/// ```
#[derive(Debug, Clone)]
pub struct LazyLogoutService<S> {
    inner: S,
    layer: LazyLogoutLayer,
}

impl<S> tower_service::Service<Request<Body>> for LazyLogoutService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was made ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            if let Some(id) = (layer.session_id)(&req) {
                match layer.markers.is_logged_out(&id).await {
                    Ok(false) => {}
                    Ok(true) => {
                        tracing::debug!("request for a session ended by back-channel logout");
                        return Ok((layer.on_logged_out)(&req));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "logged-out markers unavailable; refusing the request");
                        return Ok(unavailable());
                    }
                }
            }
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexError, LogoutMarkers, SessionEnder};
    use async_trait::async_trait;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(markers: Arc<dyn LogoutMarkerStore>) -> Router {
        Router::new().route("/", get(|| async { "profile" })).layer(LazyLogoutLayer::new(markers, |req| {
            req.headers().get("x-session").and_then(|v| v.to_str().ok()).map(str::to_owned)
        }))
    }

    async fn get_with(app: Router, session: Option<&str>) -> Response {
        let mut req = Request::get("/");
        if let Some(s) = session {
            req = req.header("x-session", s);
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn an_ended_session_is_refused_and_others_pass() {
        let markers = Arc::new(LogoutMarkers::default());
        markers.end_sessions(&["ended".into()]).await.unwrap();
        let r = get_with(app(markers.clone()), Some("ended")).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(get_with(app(markers.clone()), Some("live")).await.status(), 200);
        assert_eq!(get_with(app(markers), None).await.status(), 200, "no session: nothing to check");
    }

    #[tokio::test]
    async fn the_logged_out_response_is_the_applications() {
        let markers = Arc::new(LogoutMarkers::default());
        markers.end_sessions(&["ended".into()]).await.unwrap();
        let app = Router::new().route("/", get(|| async { "profile" })).layer(
            LazyLogoutLayer::new(markers, |req| {
                req.headers().get("x-session").and_then(|v| v.to_str().ok()).map(str::to_owned)
            })
            .on_logged_out(|_| axum::response::Redirect::to("/signed-out").into_response()),
        );
        let r = get_with(app, Some("ended")).await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()[header::LOCATION], "/signed-out");
    }

    #[derive(Debug)]
    struct Broken;
    #[async_trait]
    impl SessionEnder for Broken {
        async fn end_sessions(&self, _: &[String]) -> Result<(), IndexError> {
            Err(IndexError::new("down"))
        }
    }
    #[async_trait]
    impl LogoutMarkerStore for Broken {
        async fn is_logged_out(&self, _: &str) -> Result<bool, IndexError> {
            Err(IndexError::new("down"))
        }
    }

    #[tokio::test]
    async fn an_unreadable_marker_store_fails_closed() {
        let r = get_with(app(Arc::new(Broken)), Some("any")).await;
        assert_eq!(r.status(), 503);
        assert_eq!(get_with(app(Arc::new(Broken)), None).await.status(), 200);
    }
}
