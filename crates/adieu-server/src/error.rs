//! Errors at the HTTP boundary.
//!
//! - [`OAuthError`]: JSON endpoints (token, userinfo): the protocol `error` and a description, status < 500
//!   for anything a client did; internal failures answer a generic `server_error`.
//! - [`PageError`]: browser pages: an HTML page with a plain message.
//!
//! Internal detail is logged once, where the failure is converted, and never sent to the client.

use crate::i18n::msg;
use adieu_core::StoreError;
use adieu_proto::{ErrorBody, ErrorCode};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An OAuth error answered as JSON.
#[derive(Debug)]
pub struct OAuthError {
    /// HTTP status.
    pub status: StatusCode,
    /// The protocol code.
    pub code: ErrorCode,
    /// Human-readable description (no secrets).
    pub description: String,
    /// `WWW-Authenticate` value, for 401 answers.
    pub www_authenticate: Option<String>,
}

impl OAuthError {
    /// A 400 with `code`.
    pub fn bad(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, code, description: description.into(), www_authenticate: None }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::bad(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::bad(ErrorCode::InvalidGrant, description)
    }

    /// An internal failure: logged here, answered generically.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: ErrorCode::ServerError,
            description: "internal error".into(),
            www_authenticate: None,
        }
    }
}

impl OAuthError {
    /// 503 `temporarily_unavailable`: the database cannot write now. The store logs the fault
    /// once when it begins; each request only at debug level.
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::debug!(error = %e, "storage unavailable");
        OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::TemporarilyUnavailable,
            description: "the service is temporarily unavailable; try again shortly".into(),
            www_authenticate: None,
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => OAuthError::unavailable(e),
            e => OAuthError::internal(e),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code, error_description: Some(self.description) };
        let mut res = (self.status, Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(v) = self.www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        res
    }
}

/// An error shown to a person in the browser.
#[derive(Debug)]
pub struct PageError {
    /// HTTP status.
    pub status: StatusCode,
    /// Page heading.
    pub title: String,
    /// Explanation.
    pub message: String,
}

impl PageError {
    /// A 400 page.
    pub fn bad_request(title: impl Into<String>, message: impl Into<String>) -> Self {
        PageError { status: StatusCode::BAD_REQUEST, title: title.into(), message: message.into() }
    }

    /// 403: a form whose CSRF check failed (expired, or sent from another site); `message`
    /// says what to do next.
    pub fn form_refused(message: &'static str) -> Self {
        PageError { status: StatusCode::FORBIDDEN, title: msg("Please try again").into(), message: message.into() }
    }

    /// 429: an address started more sign-ins than `login.max_pending_per_address` allows.
    pub fn too_many_pending_sign_ins() -> Self {
        PageError {
            status: StatusCode::TOO_MANY_REQUESTS,
            title: msg("Too many sign-in attempts").into(),
            message: msg("Too many sign-ins were started from your network. Please wait a few minutes and try again.")
                .into(),
        }
    }

    /// An internal failure: logged here, shown generically.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: msg("Something went wrong").into(),
            message: msg("The sign-in service had an internal problem. Please try again in a moment.").into(),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(e) => {
                tracing::debug!(error = %e, "storage unavailable");
                PageError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    title: msg("Please try again in a moment").into(),
                    message: msg("The sign-in service cannot save changes right now. Nothing was lost; \
                              please try again in a moment.")
                    .into(),
                }
            }
            e => PageError::internal(e),
        }
    }
}

/// What an error page shows, kept on its response so that [`brand_error_pages`] renders it with
/// the provider's own templates.
#[derive(Debug, Clone)]
pub struct PageErrorView {
    title: String,
    message: String,
    reference: String,
}

impl PageErrorView {
    fn render(&self, pages: &crate::pages::Pages) -> axum::response::Html<String> {
        pages.render(
            "message.html",
            minijinja::context! { title => &self.title, message => &self.message, error => true, reference => &self.reference },
        )
    }
}

impl IntoResponse for PageError {
    /// The page shows a reference to quote (8 random characters), and the log line for it carries the
    /// same reference, so an administrator finds what happened. It is rendered with the default
    /// templates here, and again with the provider's by [`brand_error_pages`].
    fn into_response(self) -> Response {
        let reference = crate::crypto::random_id().chars().take(8).collect::<String>();
        tracing::info!(reference = %reference, status = self.status.as_u16(), title = %self.title, "error page shown");
        let view = PageErrorView { title: self.title, message: self.message, reference };
        let mut res = (self.status, view.render(crate::pages::default_pages())).into_response();
        res.extensions_mut().insert(view);
        res
    }
}

/// Middleware: error pages get the provider's templates and branding (`[pages]`).
pub async fn brand_error_pages(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    match res.extensions().get::<PageErrorView>().cloned() {
        Some(view) => {
            let (mut parts, _) = res.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let body = view.render(&state.pages);
            Response::from_parts(parts, axum::body::Body::from(body.0))
        }
        None => res,
    }
}
