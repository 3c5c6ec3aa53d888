//! Admin commands that work on the same database as a running server: users, their sessions, and
//! clients. User and session commands go through `adieu_server::user_admin`, the functions behind the
//! management API, with the audit actor `cli`.

use crate::config::Config;
use crate::out::{self, Fields, say, time};
use adieu_core::audit::Actor;
use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::id::{ClientId, SessionId};
use adieu_core::initiator::InitiatorSubscription;
use adieu_core::session::EndedSession;
use adieu_core::user::{User, UserQuery};
use adieu_core::{Clock, SystemClock};
use adieu_proto::SigningAlg;
use adieu_server::client_metadata::{ClientRegistration, RegisterError, UriPolicy, register};
use adieu_server::password::Passwords;
use adieu_server::user_admin::{self, Ctx, NewUser, UserError, UserPatch};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::BufRead;

/// `adieu user …`
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user.
    Add {
        /// Sign-in name (unique, case-insensitive).
        username: String,
        /// Email address (unique; also accepted at sign-in).
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// List users (id, username, email), ordered by username.
    List {
        /// Only users whose username or email contains this text (case-insensitive).
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one user.
    Show {
        /// Id, username or email.
        user: String,
    },
    /// Change a user's username or email. A different email ends all the user's sessions
    /// (`email-identifier-changed`).
    Update {
        /// Id, username or email.
        user: String,
        /// New sign-in name.
        #[arg(long)]
        username: Option<String>,
        /// New email address.
        #[arg(long, conflicts_with = "no_email")]
        email: Option<String>,
        /// Remove the email address.
        #[arg(long)]
        no_email: bool,
    },
    /// Set a user's password: all the user's sessions end (`password-changed`) and every token is
    /// revoked, `offline_access` ones too.
    Passwd {
        /// Id, username or email.
        user: String,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Delete a user: sessions end (`account-deleted`), tokens are revoked, the account is removed.
    Delete {
        /// Id, username or email.
        user: String,
    },
    /// List the user's active sessions with the applications signed in through them.
    Sessions {
        /// Id, username or email.
        user: String,
    },
    /// Sign the user out everywhere: every open session ends (`session-revoked`).
    RevokeSessions {
        /// Id, username or email.
        user: String,
    },
}

/// `adieu session …`
#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// End one OP session (`session-revoked`); the id is the one `adieu user sessions` prints.
    Revoke {
        /// The session id.
        id: String,
    },
}

/// Where the password comes from.
#[derive(Debug, Args)]
pub struct PasswordArg {
    /// The password (visible in the process list; prefer --password-stdin).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArg {
    fn read(&self) -> anyhow::Result<String> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
        }
        bail!("give the password with --password-stdin (or --password)")
    }
}

/// `adieu client …`
#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Register a client; prints its id and (once) its secret.
    Add(ClientAdd),
    /// List clients.
    List,
    /// Show one client.
    Show {
        /// The client id.
        client_id: String,
    },
    /// Change a client's metadata (only the options given change).
    Update(ClientUpdate),
    /// Delete a client and its tokens.
    Delete {
        /// The client id.
        client_id: String,
    },
}

/// Options of `adieu client add`.
#[derive(Debug, Args)]
pub struct ClientAdd {
    /// Display name.
    #[arg(long)]
    name: String,
    /// Choose the client id (default: random).
    #[arg(long)]
    client_id: Option<String>,
    /// Redirect URI (repeat for several).
    #[arg(long = "redirect-uri", required = true)]
    redirect_uris: Vec<String>,
    /// Post-logout redirect URI (repeat for several).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Back-channel logout URI.
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// Require `sid` in logout tokens.
    #[arg(long)]
    backchannel_logout_session_required: bool,
    /// Which initiators notify this client: `all`, or a comma-separated list added to
    /// rp-logout and idp-logout (e.g. `session-expired,password-changed`).
    #[arg(long)]
    backchannel_logout_initiators: Option<String>,
    /// client_secret_basic (default), client_secret_post, or none.
    #[arg(long, default_value = "client_secret_basic")]
    token_endpoint_auth_method: String,
    /// A public client (no secret, PKCE required): same as --token-endpoint-auth-method none.
    #[arg(long)]
    public: bool,
    /// ID token algorithm: RS256 (default), ES256 or EdDSA.
    #[arg(long, default_value = "RS256")]
    id_token_signed_response_alg: String,
    /// Front-channel logout URI, for an application the provider cannot reach (same scheme, host
    /// and port as a redirect URI); used only when there is no back-channel logout URI.
    #[arg(long)]
    frontchannel_logout_uri: Option<String>,
    /// Add `iss` and `sid` to the front-channel logout URI.
    #[arg(long)]
    frontchannel_logout_session_required: bool,
    /// A third-party application: users are asked for consent before it signs them in.
    #[arg(long)]
    third_party: bool,
}

/// Options of `adieu client update`.
#[derive(Debug, Args)]
pub struct ClientUpdate {
    /// The client id.
    client_id: String,
    /// New display name.
    #[arg(long)]
    name: Option<String>,
    /// Replace the redirect URIs (repeat for several).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Replace the post-logout redirect URIs (repeat for several).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Set the back-channel logout URI.
    #[arg(long, conflicts_with = "no_backchannel_logout_uri")]
    backchannel_logout_uri: Option<String>,
    /// Remove the back-channel logout URI (unsubscribes; pending deliveries are discarded).
    #[arg(long)]
    no_backchannel_logout_uri: bool,
    /// true or false.
    #[arg(long)]
    backchannel_logout_session_required: Option<bool>,
    /// `all`, or a comma-separated list added to rp-logout and idp-logout.
    #[arg(long)]
    backchannel_logout_initiators: Option<String>,
    /// RS256, ES256 or EdDSA.
    #[arg(long)]
    id_token_signed_response_alg: Option<String>,
    /// Set the front-channel logout URI.
    #[arg(long, conflicts_with = "no_frontchannel_logout_uri")]
    frontchannel_logout_uri: Option<String>,
    /// Remove the front-channel logout URI.
    #[arg(long)]
    no_frontchannel_logout_uri: bool,
    /// true or false.
    #[arg(long)]
    frontchannel_logout_session_required: Option<bool>,
    /// true or false: whether users are asked for consent.
    #[arg(long)]
    third_party: Option<bool>,
}

fn initiators_metadata(s: &str) -> adieu_proto::client::InitiatorsMetadata {
    match s.trim() {
        "all" => adieu_proto::client::InitiatorsMetadata { mode: "all".into(), selected_initiators: vec![] },
        list => adieu_proto::client::InitiatorsMetadata {
            mode: "custom".into(),
            selected_initiators: list.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect(),
        },
    }
}

/// A client as `client show` prints it: the same rendering of the initiators as the API's
/// (`custom` lists the always-included initiators too).
fn client_fields(c: &Client) -> Fields {
    let initiators = adieu_server::client_metadata::metadata_response(c, None).backchannel_logout_initiators;
    let initiators = match initiators.mode.as_str() {
        "all" => "all".to_owned(),
        _ => format!("custom ({})", initiators.selected_initiators.join(", ")),
    };
    vec![
        ("client_id", json!(c.id.as_str())),
        ("name", json!(c.name)),
        ("token_endpoint_auth_method", json!(c.token_endpoint_auth_method.to_string())),
        ("redirect_uris", json!(c.redirect_uris)),
        ("post_logout_redirect_uris", json!(c.post_logout_redirect_uris)),
        ("backchannel_logout_uri", json!(c.backchannel_logout_uri)),
        ("backchannel_logout_session_required", json!(c.backchannel_logout_session_required)),
        ("backchannel_logout_initiators", json!(initiators)),
        ("id_token_signed_response_alg", json!(c.id_token_signed_response_alg.to_string())),
        ("frontchannel_logout_uri", json!(c.frontchannel_logout_uri)),
        ("frontchannel_logout_session_required", json!(c.frontchannel_logout_session_required)),
        ("third_party", json!(c.third_party)),
        ("created", time(c.created_at)),
        ("updated", time(c.updated_at)),
    ]
}

/// The audit actor of the command line.
const ACTOR: Actor<'static> = Actor::Cli;

fn user_error(e: UserError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Which applications the ended sessions tell and which they do not, as printed after every
/// command that ends sessions: `told: a, b; not told (no back-channel logout URI, or not
/// subscribed to this initiator): c`.
fn told(ended: &[EndedSession]) -> String {
    let (told, not) = EndedSession::told_and_not(ended);
    let list = |ids: &[adieu_core::id::ClientId]| {
        if ids.is_empty() { "none".to_owned() } else { ids.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ") }
    };
    let mut out = format!("applications told: {}", list(&told));
    if !not.is_empty() {
        out.push_str(&format!(
            "; not told (no back-channel logout URI, or not subscribed to this initiator): {}",
            list(&not)
        ));
    }
    out
}

fn user_fields(u: &User) -> Fields {
    vec![
        ("id", json!(u.id.as_str())),
        ("username", json!(u.username)),
        ("email", json!(u.email)),
        ("created", time(u.created_at)),
        ("updated", time(u.updated_at)),
    ]
}

/// Runs a user command, through the same functions as the management API (`adieu_server::user_admin`).
pub async fn user(config: &Config, cmd: UserCmd) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    let settings = config.settings()?;
    let passwords = Passwords::new(settings.login.hash_concurrency);
    // No delivery hub here: the running server's worker picks the deliveries up on its next poll.
    let actor = ACTOR.name();
    let ctx = Ctx { store: store.as_ref(), passwords: &passwords, hub: None, actor: &actor, now: SystemClock.now() };
    let find = |login: String| {
        let store = store.clone();
        async move { user_admin::find(store.as_ref(), &login).await.map_err(|e| anyhow::anyhow!("{e} {login:?}")) }
    };
    match cmd {
        UserCmd::Add { username, email, password } => {
            let new = NewUser { username, email, password: password.read()? };
            let user = user_admin::create(&ctx, new).await.map_err(user_error)?;
            say!("created user {} (sub {})", user.username, user.id);
        }
        UserCmd::List { filter } => {
            let mut query = UserQuery { contains: filter, after: None, limit: Some(1000) };
            let mut rows = Vec::new();
            loop {
                let (page, next) = user_admin::list(store.as_ref(), &query).await.map_err(user_error)?;
                rows.extend(page.iter().map(|u| user_fields(u).into_iter().take(3).collect::<Fields>()));
                match next {
                    Some(n) => query.after = Some(n),
                    None => break,
                }
            }
            out::list(&["id", "username", "email"], &rows)?;
        }
        UserCmd::Show { user } => out::record(&user_fields(&find(user).await?))?,
        UserCmd::Update { user, username, email, no_email } => {
            let user = find(user).await?;
            let patch =
                UserPatch { username, email: if no_email { Some(None) } else { email.map(Some) }, password: None };
            let up = user_admin::update(&ctx, &user.id, patch).await.map_err(user_error)?;
            let mut fields = user_fields(&up.user);
            if let Some(i) = up.initiator {
                fields.push(("sessions_ended", json!(up.ended.len())));
                fields.push(("initiator", json!(i.as_str())));
                fields.push(("notified", json!(told(&up.ended))));
            }
            out::record(&fields)?;
        }
        UserCmd::Passwd { user, password } => {
            let user = find(user).await?;
            let patch = UserPatch { password: Some(password.read()?), ..UserPatch::default() };
            let up = user_admin::update(&ctx, &user.id, patch).await.map_err(user_error)?;
            let revoked = up.revoked_tokens + up.ended.iter().map(|e| e.revoked_tokens).sum::<u64>();
            say!(
                "password changed for {}; {} session(s) ended, {revoked} token(s) revoked; {}",
                up.user.username,
                up.ended.len(),
                told(&up.ended)
            );
        }
        UserCmd::Delete { user } => {
            let user = find(user).await?;
            let ended = user_admin::delete(&ctx, &user.id).await.map_err(user_error)?;
            say!(
                "deleted user {} (sub {}); {} session(s) ended; {}",
                user.username,
                user.id,
                ended.len(),
                told(&ended)
            );
        }
        UserCmd::Sessions { user } => {
            let user = find(user).await?;
            let list = user_admin::sessions(store.as_ref(), &user.id, ctx.now, settings.session_lifetime())
                .await
                .map_err(user_error)?;
            let rows: Vec<Fields> = list
                .iter()
                .map(|s| {
                    let apps: Vec<String> =
                        s.applications.iter().map(|a| format!("{}={}", a.client_id, a.sid)).collect();
                    vec![
                        ("session", json!(s.id.as_str())),
                        ("created", time(s.created_at)),
                        ("last_seen", time(s.last_seen_at)),
                        ("expires", time(s.expires_at)),
                        ("applications", json!(apps)),
                    ]
                })
                .collect();
            out::list(&["session", "created", "last_seen", "expires", "applications"], &rows)?;
        }
        UserCmd::RevokeSessions { user } => {
            let user = find(user).await?;
            let ended = user_admin::revoke_all_sessions(&ctx, &user.id).await.map_err(user_error)?;
            say!("{} session(s) of {} ended (session-revoked); {}", ended.len(), user.username, told(&ended));
        }
    }
    Ok(())
}

/// Runs a session command.
pub async fn session(config: &Config, cmd: SessionCmd) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    let settings = config.settings()?;
    let passwords = Passwords::new(settings.login.hash_concurrency);
    let actor = ACTOR.name();
    let ctx = Ctx { store: store.as_ref(), passwords: &passwords, hub: None, actor: &actor, now: SystemClock.now() };
    match cmd {
        SessionCmd::Revoke { id } => {
            let e = user_admin::revoke_session(&ctx, &SessionId::new(id.clone())).await.map_err(user_error)?;
            say!("session {id} ended (session-revoked); {}", told(std::slice::from_ref(&e)));
        }
    }
    Ok(())
}

/// Runs a client command.
pub async fn client(config: &Config, cmd: ClientCmd) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    let settings = config.settings()?;
    match cmd {
        ClientCmd::Add(a) => {
            let method: TokenEndpointAuthMethod = if a.public {
                TokenEndpointAuthMethod::None
            } else {
                a.token_endpoint_auth_method.parse().map_err(anyhow::Error::msg)?
            };
            let alg: SigningAlg = a.id_token_signed_response_alg.parse()?;
            let reg = ClientRegistration {
                client_id: a.client_id,
                name: a.name,
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                backchannel_logout_uri: a.backchannel_logout_uri,
                backchannel_logout_session_required: a.backchannel_logout_session_required,
                backchannel_logout_initiators: match a.backchannel_logout_initiators.as_deref().map(str::trim) {
                    None | Some("") => InitiatorSubscription::default(),
                    Some(list) => adieu_server::client_metadata::parse_initiators(&initiators_metadata(list))
                        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.description))?,
                },
                token_endpoint_auth_method: method,
                id_token_signed_response_alg: alg,
                frontchannel_logout_uri: a.frontchannel_logout_uri,
                frontchannel_logout_session_required: a.frontchannel_logout_session_required,
                third_party: a.third_party,
            };
            let policy = UriPolicy::for_settings(&settings);
            let (client, secret) = register(store.as_ref(), reg, &policy, SystemClock.now(), &Actor::Cli.name())
                .await
                .map_err(|e| match e {
                    RegisterError::Invalid(e) => anyhow::anyhow!("{}: {}", e.code, e.description),
                    RegisterError::Store(adieu_core::StoreError::Conflict(_)) => {
                        anyhow::anyhow!("that client_id is taken")
                    }
                    RegisterError::Store(e) => e.into(),
                })?;
            let mut fields = client_fields(&client);
            if let Some(s) = &secret {
                fields.push(("client_secret", json!(s)));
            }
            out::record(&fields)?;
            if secret.is_some() {
                eprintln!("The client secret is shown only this once; adieu keeps only a hash of it.");
            }
        }
        ClientCmd::List => {
            let rows: Vec<Fields> = store
                .list_clients()
                .await?
                .iter()
                .map(|c| {
                    vec![
                        ("client_id", json!(c.id.as_str())),
                        ("name", json!(c.name)),
                        ("backchannel_logout_uri", json!(c.backchannel_logout_uri)),
                    ]
                })
                .collect();
            out::list(&["client_id", "name", "backchannel_logout_uri"], &rows)?;
        }
        ClientCmd::Update(u) => {
            let req = adieu_proto::client::ClientMetadataRequest {
                client_name: u.name,
                redirect_uris: (!u.redirect_uris.is_empty()).then_some(u.redirect_uris),
                post_logout_redirect_uris: (!u.post_logout_redirect_uris.is_empty())
                    .then_some(u.post_logout_redirect_uris),
                backchannel_logout_uri: if u.no_backchannel_logout_uri {
                    Some(None)
                } else {
                    u.backchannel_logout_uri.map(Some)
                },
                backchannel_logout_session_required: u.backchannel_logout_session_required,
                backchannel_logout_initiators: u.backchannel_logout_initiators.as_deref().map(initiators_metadata),
                id_token_signed_response_alg: u.id_token_signed_response_alg,
                frontchannel_logout_uri: if u.no_frontchannel_logout_uri {
                    Some(None)
                } else {
                    u.frontchannel_logout_uri.map(Some)
                },
                frontchannel_logout_session_required: u.frontchannel_logout_session_required,
                third_party: u.third_party,
                ..Default::default()
            };
            let policy = UriPolicy::for_settings(&settings);
            let id = ClientId::new(u.client_id.clone());
            let c = adieu_server::client_metadata::update(
                store.as_ref(),
                &id,
                req,
                &policy,
                SystemClock.now(),
                &Actor::Cli.name(),
            )
            .await
            .map_err(|e| match e {
                RegisterError::Invalid(e) => anyhow::anyhow!("{}: {}", e.code, e.description),
                RegisterError::Store(e) => e.into(),
            })?
            .with_context(|| format!("no client {:?}", u.client_id))?;
            out::record(&client_fields(&c))?;
        }
        ClientCmd::Show { client_id } => {
            let c = store
                .client_by_id(&ClientId::new(client_id.clone()))
                .await?
                .with_context(|| format!("no client {client_id:?}"))?;
            out::record(&client_fields(&c))?;
        }
        ClientCmd::Delete { client_id } => {
            if !store.delete_client(&ClientId::new(client_id.clone()), &Actor::Cli.name(), SystemClock.now()).await? {
                bail!("no client {client_id:?}");
            }
            say!("deleted client {client_id}");
        }
    }
    Ok(())
}
