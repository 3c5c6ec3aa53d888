//! Dynamic client registration (RFC 7591, OpenID Connect Registration 1.0) at `/register`,
//! protected by an initial access token (`Authorization: Bearer …`). The provider always chooses
//! the `client_id`; unknown metadata is ignored; a successful answer is 201 with the registered
//! metadata and the secret; errors are `invalid_client_metadata` / `invalid_redirect_uri`.

use crate::AppState;
use crate::api::clients::{metadata_body, register_error, uri_policy};
use crate::api::{bearer, token_valid, unauthorized};
use crate::client_metadata::{
    RegisterError, RegistrationError, metadata_response, register, registration_from_metadata,
};
use crate::error::OAuthError;
use adieu_core::audit::Actor;
use adieu_core::store::ApiTokenKind;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/register", post(register_client))
}

/// RFC 7591 §3.2.2: every metadata error is a 400 here, a conflict between members included.
fn registration_error(e: RegisterError) -> OAuthError {
    match e {
        RegisterError::Invalid(e) => register_error(RegisterError::Invalid(RegistrationError { conflict: false, ..e })),
        e => register_error(e),
    }
}

async fn register_client(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let run = async {
        let token = bearer(&parts).ok_or_else(unauthorized)?;
        if !token_valid(&state, token, ApiTokenKind::Registration).await? {
            return Err(unauthorized());
        }
        let body: Bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map_err(|_| OAuthError::invalid_request("the body is too large or unreadable"))?;
        let meta = metadata_body(&body)?;
        let mut reg = registration_from_metadata(meta, false).map_err(|e| register_error(e.into()))?;
        // Anyone holding the initial access token registers here: such clients are third-party
        // (their users are asked for consent), whatever the request says.
        reg.third_party = true;
        let (client, secret) =
            register(state.store.as_ref(), reg, &uri_policy(&state), state.clock.now(), &Actor::Registration.name())
                .await
                .map_err(registration_error)?;
        let mut res = (StatusCode::CREATED, Json(metadata_response(&client, secret))).into_response();
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok::<_, OAuthError>(res)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
