//! Client metadata: validation and registration. The CLI uses it now; dynamic registration and the
//! management API go through the same functions.
//!
//! URI rules:
//! - `redirect_uris` (RFC 6749 §3.1.2, RFC 8252 §7): absolute, no fragment; `https`, or `http` on a
//!   loopback host, or a private-use scheme with a dot (`com.example.app:/cb`) for native apps.
//! - `post_logout_redirect_uris` (RPI-08): absolute, no fragment; `https`, or `http` on a loopback
//!   host or in the development profile, or a private-use scheme with a dot for native apps.
//! - `backchannel_logout_uri` (BC-REG-01..04): absolute, no fragment, no credentials, query kept;
//!   `https`, except `http` for confidential clients in the development profile. Outside the
//!   development profile a literal IP host (and `localhost`/`*.localhost`, taken as 127.0.0.1) must be
//!   a public address, and the host must not be the provider's own.

use crate::crypto::{hash_secret, random_id, random_secret};
use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::id::ClientId;
use adieu_core::initiator::InitiatorSubscription;
use adieu_core::net::forbidden_range;
use adieu_core::store::{ClientStore, StoreError};
use adieu_core::time::UnixMillis;
use adieu_proto::{ErrorCode, SigningAlg};
use std::net::IpAddr;
use url::{Host, Url};

/// What a client asks to be registered with.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistration {
    /// A chosen `client_id`; generated when absent.
    pub client_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Redirect URIs (at least one).
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-channel logout URI.
    pub backchannel_logout_uri: Option<String>,
    /// Whether logout tokens must carry `sid`.
    pub backchannel_logout_session_required: bool,
    /// Initiator subscription.
    pub backchannel_logout_initiators: InitiatorSubscription,
    /// Token endpoint authentication (`none` = public client).
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// ID token algorithm.
    pub id_token_signed_response_alg: SigningAlg,
    /// Front-channel logout URI (FCL §2).
    pub frontchannel_logout_uri: Option<String>,
    /// Whether `iss` and `sid` are added to it.
    pub frontchannel_logout_session_required: bool,
    /// A third-party application: users are asked for consent ([`adieu_core::consent`]).
    pub third_party: bool,
}

/// Where the provider runs, for the URI rules.
#[derive(Debug, Clone)]
pub struct UriPolicy {
    /// The development profile (loopback issuer): `http` allowed.
    pub development: bool,
    /// The provider's own host, never a logout target.
    pub own_host: String,
    /// Private ranges an operator allows (`delivery.allow_private_cidrs`).
    pub allow_cidrs: Vec<ipnet::IpNet>,
}

impl UriPolicy {
    /// The policy of a provider with these settings.
    pub fn for_settings(settings: &crate::Settings) -> UriPolicy {
        UriPolicy {
            development: settings.is_development(),
            own_host: settings.issuer.host_str().unwrap_or_default().to_owned(),
            // Invariant: validated in Settings::validate.
            allow_cidrs: settings.delivery.allow_cidrs().unwrap_or_default(),
        }
    }
}

/// A metadata value that cannot be registered, with the Registration §3.3 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct RegistrationError {
    /// `invalid_redirect_uri` or `invalid_client_metadata`.
    pub code: ErrorCode,
    /// What is wrong.
    pub description: String,
    /// The metadata is well formed but conflicts with the client as it is, or with the other
    /// members (409 in the management API; 400 at dynamic registration).
    pub conflict: bool,
}

pub(crate) fn bad_meta(d: impl Into<String>) -> RegistrationError {
    RegistrationError { code: ErrorCode::InvalidClientMetadata, description: d.into(), conflict: false }
}

fn bad_redirect(d: impl Into<String>) -> RegistrationError {
    RegistrationError { code: ErrorCode::InvalidRedirectUri, description: d.into(), conflict: false }
}

fn is_loopback_host(u: &Url) -> bool {
    match u.host() {
        Some(Host::Domain(d)) => adieu_core::text::normalize_host(d) == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A host name of letters, digits, hyphens and dots (IDNs arrive as `xn--` punycode): no `*` or
/// other characters the URL standard lets through but no DNS name has.
fn plain_host(u: &Url) -> bool {
    match u.host() {
        Some(Host::Domain(d)) => {
            !d.is_empty() && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        _ => true,
    }
}

pub(crate) fn parse_absolute(field: &str, raw: &str) -> Result<Url, String> {
    // As typed: the URL parser would silently drop TAB, CR and LF.
    adieu_core::text::check(field, raw)?;
    if raw.len() > 2000 {
        return Err(format!("{field} is longer than 2000 characters"));
    }
    let u = Url::parse(raw).map_err(|e| format!("{field} {raw:?} is not an absolute URI: {e}"))?;
    if u.fragment().is_some() || raw.contains('#') {
        return Err(format!("{field} {raw:?} must not contain a fragment"));
    }
    if !plain_host(&u) {
        return Err(format!("{field} {raw:?} has a host name with characters no DNS name has"));
    }
    Ok(u)
}

/// Checks one redirect URI.
pub fn check_redirect_uri(raw: &str) -> Result<(), RegistrationError> {
    let u = parse_absolute("redirect_uri", raw).map_err(bad_redirect)?;
    match u.scheme() {
        "https" if u.host().is_some() => Ok(()),
        "http" if is_loopback_host(&u) => Ok(()),
        "http" => Err(bad_redirect(format!("redirect_uri {raw:?} must use https (http only on a loopback host)"))),
        s if s.contains('.') => Ok(()),
        _ => Err(bad_redirect(format!("redirect_uri {raw:?} must use https, loopback http or a private-use scheme"))),
    }
}

/// Checks one post-logout redirect URI (RPI-08).
pub fn check_post_logout_redirect_uri(raw: &str, policy: &UriPolicy) -> Result<(), RegistrationError> {
    let u = parse_absolute("post_logout_redirect_uri", raw).map_err(bad_meta)?;
    match u.scheme() {
        "https" if u.host().is_some() => Ok(()),
        "http" if policy.development || is_loopback_host(&u) => Ok(()),
        s if s.contains('.') => Ok(()),
        _ => Err(bad_meta(format!("post_logout_redirect_uri {raw:?} must use https"))),
    }
}

/// Checks the back-channel logout URI (BC-REG-01..04) and the outbound address rules.
pub fn check_backchannel_logout_uri(
    raw: &str,
    confidential: bool,
    policy: &UriPolicy,
) -> Result<(), RegistrationError> {
    // BC-REG-01 absolute, BC-REG-03 no fragment (BC-REG-02: a query is allowed and kept).
    let u = parse_absolute("backchannel_logout_uri", raw).map_err(bad_meta)?;
    let host = u.host().ok_or_else(|| bad_meta(format!("backchannel_logout_uri {raw:?} has no host")))?;
    // BC-REG-04: https; http only if the provider allows it (development profile) and the client is confidential.
    match u.scheme() {
        "https" => {}
        "http" if policy.development && confidential => {}
        "http" if policy.development => {
            return Err(bad_meta("backchannel_logout_uri may use http only for a confidential client (BC-REG-04)"));
        }
        _ => return Err(bad_meta(format!("backchannel_logout_uri {raw:?} must use https"))),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad_meta("backchannel_logout_uri must not contain credentials"));
    }
    if u.port() == Some(0) {
        return Err(bad_meta("backchannel_logout_uri must not use port 0"));
    }
    // `host.` and `host` are one host: the rules apply to the name without its trailing dot.
    let host_str = adieu_core::text::normalize_host(&host.to_string());
    if !policy.development && host_str == adieu_core::text::normalize_host(&policy.own_host) {
        return Err(bad_meta("backchannel_logout_uri must not point at the provider itself"));
    }
    let ip = match host {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) if host_str == "localhost" || host_str.ends_with(".localhost") => {
            Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        }
        Host::Domain(_) => None,
    };
    if let (Some(ip), false) = (ip, policy.development)
        && !policy.allow_cidrs.iter().any(|n| n.contains(&ip))
        && let Some(range) = forbidden_range(ip)
    {
        return Err(bad_meta(format!("backchannel_logout_uri points at a {range} address")));
    }
    Ok(())
}

/// Checks a whole registration.
pub fn validate(reg: &ClientRegistration, policy: &UriPolicy) -> Result<(), RegistrationError> {
    if let Some(id) = &reg.client_id {
        let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !ok {
            return Err(bad_meta("client_id must be 1..128 visible ASCII characters"));
        }
    }
    if reg.name.trim().is_empty() || reg.name.chars().count() > 200 {
        return Err(bad_meta("client_name must be 1..200 characters"));
    }
    adieu_core::text::check("client_name", &reg.name).map_err(bad_meta)?;
    if reg.redirect_uris.len() > 20 || reg.post_logout_redirect_uris.len() > 20 {
        return Err(bad_meta("at most 20 redirect_uris and 20 post_logout_redirect_uris"));
    }
    if reg.redirect_uris.is_empty() {
        return Err(bad_redirect("at least one redirect_uri is required"));
    }
    for r in &reg.redirect_uris {
        check_redirect_uri(r)?;
    }
    for r in &reg.post_logout_redirect_uris {
        check_post_logout_redirect_uri(r, policy)?;
    }
    let confidential = reg.token_endpoint_auth_method != TokenEndpointAuthMethod::None;
    // `backchannel_logout_session_required` without a URI is kept: it takes effect once a URI is
    // set (a PATCH may set one later, or have removed it), and whether it is valid must not depend
    // on what is stored.
    if let Some(b) = &reg.backchannel_logout_uri {
        check_backchannel_logout_uri(b, confidential, policy)?;
    }
    if let Some(f) = &reg.frontchannel_logout_uri {
        crate::frontchannel::check_uri(f, &reg.redirect_uris)?;
    }
    Ok(())
}

/// A registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The metadata is invalid.
    #[error(transparent)]
    Invalid(#[from] RegistrationError),
    /// Storage failed or the id is taken.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates and stores a client. Returns it and, for a confidential client, the secret: shown
/// once, stored only as a hash.
pub async fn register(
    store: &dyn ClientStore,
    reg: ClientRegistration,
    policy: &UriPolicy,
    now: UnixMillis,
    actor: &str,
) -> Result<(Client, Option<String>), RegisterError> {
    validate(&reg, policy)?;
    let secret = (reg.token_endpoint_auth_method != TokenEndpointAuthMethod::None).then(random_secret);
    let client = Client {
        id: ClientId::new(reg.client_id.unwrap_or_else(random_id)),
        name: reg.name.trim().to_owned(),
        secret_hash: secret.as_deref().map(hash_secret),
        redirect_uris: reg.redirect_uris,
        post_logout_redirect_uris: reg.post_logout_redirect_uris,
        backchannel_logout_uri: reg.backchannel_logout_uri,
        backchannel_logout_session_required: reg.backchannel_logout_session_required,
        backchannel_logout_initiators: reg.backchannel_logout_initiators,
        token_endpoint_auth_method: reg.token_endpoint_auth_method,
        id_token_signed_response_alg: reg.id_token_signed_response_alg,
        frontchannel_logout_uri: reg.frontchannel_logout_uri,
        frontchannel_logout_session_required: reg.frontchannel_logout_session_required,
        third_party: reg.third_party,
        created_at: now,
        updated_at: now,
    };
    store.create_client(&client, actor).await?;
    Ok((client, secret))
}

// ---------------------------------------------------------------------------------------------
// Metadata on the wire (dynamic registration and the management API) ⇄ domain.

use adieu_core::initiator::{Initiator, InitiatorMode};
use adieu_proto::client::{ClientMetadataRequest, ClientMetadataResponse, InitiatorsMetadata};

/// Parses `backchannel_logout_initiators` (`custom` with names, or `all`).
pub fn parse_initiators(m: &InitiatorsMetadata) -> Result<InitiatorSubscription, RegistrationError> {
    let mode = match m.mode.as_str() {
        "custom" => InitiatorMode::Custom,
        "all" => InitiatorMode::All,
        other => return Err(bad_meta(format!("backchannel_logout_initiators.mode {other:?} must be custom or all"))),
    };
    let mut selected = Vec::new();
    for name in &m.selected_initiators {
        let i: Initiator =
            name.parse().map_err(|e: adieu_core::initiator::UnknownInitiator| bad_meta(e.to_string()))?;
        if !selected.contains(&i) {
            selected.push(i);
        }
    }
    Ok(InitiatorSubscription { mode, selected_initiators: selected })
}

fn check_grant_and_response_types(req: &ClientMetadataRequest) -> Result<(), RegistrationError> {
    if let Some(g) = &req.grant_types
        && let Some(bad) = g.iter().find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(bad_meta(format!("grant_type {bad:?} is not supported")));
    }
    if let Some(r) = &req.response_types
        && r.iter().any(|r| r != "code")
    {
        return Err(bad_meta("only response_types [\"code\"] is supported"));
    }
    Ok(())
}

/// A new client's registration from wire metadata. `allow_client_id`: whether the caller may
/// choose the id (the management API may; dynamic registration may not).
pub fn registration_from_metadata(
    req: ClientMetadataRequest,
    allow_client_id: bool,
) -> Result<ClientRegistration, RegistrationError> {
    check_grant_and_response_types(&req)?;
    let token_endpoint_auth_method = match &req.token_endpoint_auth_method {
        Some(m) => m.parse().map_err(bad_meta)?,
        None => TokenEndpointAuthMethod::ClientSecretBasic,
    };
    let id_token_signed_response_alg = match &req.id_token_signed_response_alg {
        Some(a) => a.parse().map_err(|e: adieu_proto::alg::UnsupportedAlg| bad_meta(e.to_string()))?,
        None => SigningAlg::RS256,
    };
    Ok(ClientRegistration {
        client_id: if allow_client_id { req.client_id } else { None },
        name: req.client_name.unwrap_or_else(|| "Unnamed application".into()),
        redirect_uris: req.redirect_uris.unwrap_or_default(),
        post_logout_redirect_uris: req.post_logout_redirect_uris.unwrap_or_default(),
        backchannel_logout_uri: req.backchannel_logout_uri.flatten(),
        backchannel_logout_session_required: req.backchannel_logout_session_required.unwrap_or(false),
        backchannel_logout_initiators: match &req.backchannel_logout_initiators {
            Some(m) => parse_initiators(m)?,
            None => InitiatorSubscription::default(),
        },
        token_endpoint_auth_method,
        id_token_signed_response_alg,
        frontchannel_logout_uri: req.frontchannel_logout_uri.flatten(),
        frontchannel_logout_session_required: req.frontchannel_logout_session_required.unwrap_or(false),
        third_party: req.third_party.unwrap_or(false),
    })
}

/// Applies an update (members present in `req` replace the client's; `backchannel_logout_uri: null`
/// removes the URI) and validates the result. The id, secret and auth method stay.
pub fn apply_update(
    client: &Client,
    req: ClientMetadataRequest,
    policy: &UriPolicy,
) -> Result<Client, RegistrationError> {
    check_grant_and_response_types(&req)?;
    if req.token_endpoint_auth_method.as_deref().is_some_and(|m| m != client.token_endpoint_auth_method.as_str()) {
        return Err(RegistrationError {
            conflict: true,
            ..bad_meta("token_endpoint_auth_method cannot be changed; register a new client")
        });
    }
    let mut c = client.clone();
    if let Some(n) = req.client_name {
        c.name = n.trim().to_owned();
    }
    if let Some(r) = req.redirect_uris {
        c.redirect_uris = r;
    }
    if let Some(r) = req.post_logout_redirect_uris {
        c.post_logout_redirect_uris = r;
    }
    if let Some(u) = req.backchannel_logout_uri {
        c.backchannel_logout_uri = u;
        if c.backchannel_logout_uri.is_none() && req.backchannel_logout_session_required.is_none() {
            c.backchannel_logout_session_required = false;
        }
    }
    if let Some(b) = req.backchannel_logout_session_required {
        c.backchannel_logout_session_required = b;
    }
    if let Some(m) = &req.backchannel_logout_initiators {
        c.backchannel_logout_initiators = parse_initiators(m)?;
    }
    if let Some(u) = req.frontchannel_logout_uri {
        c.frontchannel_logout_uri = u;
    }
    if let Some(b) = req.frontchannel_logout_session_required {
        c.frontchannel_logout_session_required = b;
    }
    if let Some(t) = req.third_party {
        c.third_party = t;
    }
    if let Some(a) = &req.id_token_signed_response_alg {
        c.id_token_signed_response_alg =
            a.parse().map_err(|e: adieu_proto::alg::UnsupportedAlg| bad_meta(e.to_string()))?;
    }
    let check = ClientRegistration {
        client_id: None,
        name: c.name.clone(),
        redirect_uris: c.redirect_uris.clone(),
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        backchannel_logout_session_required: c.backchannel_logout_session_required,
        backchannel_logout_initiators: c.backchannel_logout_initiators.clone(),
        token_endpoint_auth_method: c.token_endpoint_auth_method,
        id_token_signed_response_alg: c.id_token_signed_response_alg,
        frontchannel_logout_uri: c.frontchannel_logout_uri.clone(),
        frontchannel_logout_session_required: c.frontchannel_logout_session_required,
        third_party: c.third_party,
    };
    validate(&check, policy)?;
    Ok(c)
}

/// Validates and stores an update of client `id`; returns the new version, `None` if unknown.
pub async fn update(
    store: &dyn ClientStore,
    id: &ClientId,
    req: ClientMetadataRequest,
    policy: &UriPolicy,
    now: UnixMillis,
    actor: &str,
) -> Result<Option<Client>, RegisterError> {
    let Some(current) = store.client_by_id(id).await? else { return Ok(None) };
    let mut updated = apply_update(&current, req, policy)?;
    updated.updated_at = now;
    if store.update_client(&updated, actor, now).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(updated))
}

/// The wire form of a client; `secret` only when it was just created.
pub fn metadata_response(c: &Client, secret: Option<String>) -> ClientMetadataResponse {
    let sub = &c.backchannel_logout_initiators;
    let selected = match sub.mode {
        InitiatorMode::All => Vec::new(),
        InitiatorMode::Custom => {
            let mut v: Vec<String> = vec!["rp-logout".into(), "idp-logout".into()];
            for i in &sub.selected_initiators {
                if !v.iter().any(|x| x == i.as_str()) {
                    v.push(i.as_str().to_owned());
                }
            }
            v
        }
    };
    ClientMetadataResponse {
        client_id: c.id.to_string(),
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        client_id_issued_at: c.created_at.as_secs(),
        client_name: c.name.clone(),
        redirect_uris: c.redirect_uris.clone(),
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        backchannel_logout_session_required: c.backchannel_logout_session_required,
        backchannel_logout_initiators: InitiatorsMetadata {
            mode: match sub.mode {
                InitiatorMode::All => "all".into(),
                InitiatorMode::Custom => "custom".into(),
            },
            selected_initiators: selected,
        },
        token_endpoint_auth_method: c.token_endpoint_auth_method.as_str().to_owned(),
        id_token_signed_response_alg: c.id_token_signed_response_alg.as_str().to_owned(),
        frontchannel_logout_uri: c.frontchannel_logout_uri.clone(),
        frontchannel_logout_session_required: c.frontchannel_logout_session_required,
        third_party: c.third_party,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        response_types: vec!["code".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prod() -> UriPolicy {
        UriPolicy { development: false, own_host: "id.example.com".into(), allow_cidrs: vec![] }
    }
    fn dev() -> UriPolicy {
        UriPolicy { development: true, own_host: "127.0.0.1".into(), allow_cidrs: vec![] }
    }

    #[test]
    fn bc_reg_01_backchannel_logout_uri_must_be_absolute() {
        let e = check_backchannel_logout_uri("/logout", true, &prod()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata);
    }

    #[test]
    fn bc_reg_02_query_is_allowed() {
        check_backchannel_logout_uri("https://rp.example.com/bc?tenant=a", true, &prod()).unwrap();
    }

    #[test]
    fn bc_reg_03_fragment_is_refused() {
        assert!(check_backchannel_logout_uri("https://rp.example.com/bc#x", true, &prod()).is_err());
        assert!(check_backchannel_logout_uri("https://rp.example.com/bc#", true, &prod()).is_err());
    }

    #[test]
    fn bc_reg_04_http_only_in_development_and_for_confidential_clients() {
        assert!(check_backchannel_logout_uri("http://rp.example.com/bc", true, &prod()).is_err());
        check_backchannel_logout_uri("http://127.0.0.1:9000/bc", true, &dev()).unwrap();
        assert!(check_backchannel_logout_uri("http://127.0.0.1:9000/bc", false, &dev()).is_err());
        assert!(check_backchannel_logout_uri("ftp://rp.example.com/bc", true, &prod()).is_err());
    }

    #[test]
    fn backchannel_literal_ip_must_be_public_outside_development() {
        for u in [
            "https://127.0.0.1/bc",
            "https://10.0.0.5/bc",
            "https://169.254.169.254/bc",
            "https://[::1]/bc",
            "https://[fd00::1]/bc",
            "https://[::ffff:192.168.0.1]/bc",
            "https://100.64.1.1/bc",
            "https://localhost/bc",
        ] {
            assert!(check_backchannel_logout_uri(u, true, &prod()).is_err(), "{u}");
        }
        check_backchannel_logout_uri("https://8.8.8.8/bc", true, &prod()).unwrap();
    }

    #[test]
    fn operator_allow_list_admits_private_literal_ips() {
        let p = UriPolicy { allow_cidrs: vec!["10.1.0.0/16".parse().unwrap()], ..prod() };
        check_backchannel_logout_uri("https://10.1.2.3/bc", true, &p).unwrap();
        assert!(check_backchannel_logout_uri("https://10.2.0.1/bc", true, &p).is_err());
    }

    #[test]
    fn backchannel_uri_may_not_target_the_provider_itself() {
        assert!(check_backchannel_logout_uri("https://id.example.com/bc", true, &prod()).is_err());
        assert!(check_backchannel_logout_uri("https://ID.EXAMPLE.COM/bc", true, &prod()).is_err());
    }

    #[test]
    fn trailing_dot_hosts_are_judged_as_the_host_they_name() {
        let p = prod();
        for u in ["https://localhost./bc", "https://app.localhost./bc", "https://id.example.com./bc"] {
            assert!(check_backchannel_logout_uri(u, true, &p).is_err(), "{u}");
        }
    }

    #[test]
    fn backchannel_uri_with_port_zero_is_refused() {
        assert!(check_backchannel_logout_uri("https://rp.example.com:0/bc", true, &prod()).is_err());
    }

    #[test]
    fn control_and_bidi_characters_are_refused_in_client_metadata() {
        let p = prod();
        for bad in ["https://rp.example.com/b\tc", "https://rp.example.com/b\nc", "https://rp.example.com/\u{202E}c"] {
            assert!(check_backchannel_logout_uri(bad, true, &p).is_err(), "{bad:?}");
            assert!(check_redirect_uri(bad).is_err(), "{bad:?}");
        }
        for name in ["App\r\nforged line", "App\tA", "App\0", "evil\u{202E}moc"] {
            let reg = ClientRegistration {
                name: name.into(),
                redirect_uris: vec!["https://a.example.com/cb".into()],
                ..Default::default()
            };
            assert!(validate(&reg, &p).is_err(), "{name:?}");
        }
    }

    #[test]
    fn backchannel_uri_with_credentials_is_refused() {
        assert!(check_backchannel_logout_uri("https://u:p@rp.example.com/bc", true, &prod()).is_err());
    }

    #[test]
    fn redirect_uris_need_https_or_loopback_http() {
        check_redirect_uri("https://rp.example.com/cb").unwrap();
        check_redirect_uri("http://127.0.0.1:3000/cb").unwrap();
        check_redirect_uri("http://localhost/cb").unwrap();
        check_redirect_uri("com.example.app:/cb").unwrap();
        assert_eq!(check_redirect_uri("http://rp.example.com/cb").unwrap_err().code, ErrorCode::InvalidRedirectUri);
        assert!(check_redirect_uri("https://rp.example.com/cb#frag").is_err());
        assert!(check_redirect_uri("relative/cb").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("https://a*/cb").is_err(), "no wildcard or odd characters in a host");
        assert!(check_redirect_uri("https://a_b.example.com/cb").is_err());
        check_redirect_uri("https://xn--bcher-kva.example/cb").unwrap();
    }

    #[test]
    fn rpi_08_post_logout_redirect_uris_need_https_outside_development() {
        assert!(check_post_logout_redirect_uri("http://rp.example.com/bye", &prod()).is_err());
        check_post_logout_redirect_uri("http://rp.example.com/bye", &dev()).unwrap();
        check_post_logout_redirect_uri("https://rp.example.com/bye?x=1", &prod()).unwrap();
        assert!(check_post_logout_redirect_uri("https://rp.example.com/bye#x", &prod()).is_err());
    }

    #[test]
    fn session_required_without_a_logout_uri_is_kept_for_when_one_is_set() {
        let reg = ClientRegistration {
            name: "A".into(),
            redirect_uris: vec!["https://a.example.com/cb".into()],
            backchannel_logout_session_required: true,
            ..Default::default()
        };
        assert!(validate(&reg, &prod()).is_ok());
    }
}
