//! The provider's own start page: who is signed in here, with a link to the account page and a
//! sign-out button.

use crate::AppState;
use crate::browser::{csrf_token, current_session};
use crate::error::PageError;
use crate::i18n::msg;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use minijinja::context;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

/// Every path no route serves: a page with a way back for people, JSON under `/api/`.
pub async fn not_found(State(state): State<AppState>, uri: Uri) -> Response {
    if uri.path().starts_with(&state.path("/api/")) {
        return crate::api::not_found("endpoint").into_response();
    }
    let html = state.pages.render(
        "message.html",
        context! {
            title => msg("Page not found"),
            message => msg("There is no page at this address. Check the link, or start again from the start page."),
            link => state.path("/"),
            link_text => msg("Go to the start page"),
        },
    );
    (StatusCode::NOT_FOUND, html).into_response()
}

async fn home(State(state): State<AppState>, jar: CookieJar) -> Result<Response, PageError> {
    let session = current_session(&state, &jar).await?;
    let username = match &session {
        Some(s) => state.store.user_by_id(&s.user_id).await?.map(|u| u.username),
        None => None,
    };
    let (jar, csrf) = csrf_token(&state, jar);
    let html = state.pages.render(
        "home.html",
        context! {
            username => username,
            csrf => csrf,
            logout_action => state.path("/logout/confirm"),
            login => state.path("/login"),
            account => state.path("/account"),
        },
    );
    Ok((jar, html).into_response())
}
