//! Discovery (`/.well-known/openid-configuration`) and the JWKS (`/jwks`).

use crate::AppState;
use adieu_proto::{ProviderMetadata, SigningAlg};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/.well-known/openid-configuration", get(openid_configuration)).route("/jwks", get(jwks))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The provider metadata for `state`.
pub fn metadata(state: &AppState) -> ProviderMetadata {
    ProviderMetadata {
        issuer: state.issuer.to_string(),
        authorization_endpoint: state.url("/authorize"),
        token_endpoint: state.url("/token"),
        userinfo_endpoint: state.url("/userinfo"),
        jwks_uri: state.url("/jwks"),
        end_session_endpoint: state.url("/logout"),
        scopes_supported: strings(&["openid", "profile", "email", "offline_access"]),
        response_types_supported: strings(&["code"]),
        response_modes_supported: strings(&["query"]),
        grant_types_supported: strings(&["authorization_code", "refresh_token"]),
        subject_types_supported: strings(&["public"]),
        id_token_signing_alg_values_supported: SigningAlg::ALL.iter().map(|a| a.as_str().to_owned()).collect(),
        token_endpoint_auth_methods_supported: strings(&["client_secret_basic", "client_secret_post", "none"]),
        code_challenge_methods_supported: strings(&["S256"]),
        claims_supported: strings(&[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "at_hash",
            "preferred_username",
            "email",
            "email_verified",
        ]),
        prompt_values_supported: strings(&["none", "login", "consent", "select_account"]),
        authorization_response_iss_parameter_supported: true,
        ui_locales_supported: crate::i18n::SUPPORTED.iter().map(|l| l.tag().to_owned()).collect(),
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        frontchannel_logout_supported: true,
        frontchannel_logout_session_supported: true,
        registration_endpoint: Some(state.url("/register")),
        introspection_endpoint: Some(state.url("/introspect")),
        introspection_endpoint_auth_methods_supported: strings(&["client_secret_basic", "client_secret_post"]),
        revocation_endpoint: Some(state.url("/revoke")),
        revocation_endpoint_auth_methods_supported: strings(&["client_secret_basic", "client_secret_post", "none"]),
        global_token_revocation_endpoint: Some(state.url("/global-token-revocation")),
        global_token_revocation_endpoint_auth_methods_supported: strings(&["bearer"]),
    }
}

async fn openid_configuration(State(state): State<AppState>) -> Response {
    let mut res = Json(metadata(&state)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

/// How long relying parties may cache the JWKS (`Cache-Control: max-age`), seconds.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

async fn jwks(State(state): State<AppState>) -> Response {
    let mut res = Json(state.keys.jwks()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    let cache = format!("public, max-age={JWKS_MAX_AGE_SECS}");
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_str(&cache).expect("ASCII"));
    res
}
