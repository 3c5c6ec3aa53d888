//! `adieu keys …`: signing keys on the same database as the running replicas, and the
//! key-encryption key. Rotation and retirement go through `adieu_server::keys::rotation`, the
//! functions the server uses; every replica picks the change up at its next reload
//! (`keys.reload_interval_secs`).

use crate::config::Config;
use crate::out::{self, opt_time, say, time};
use adieu_core::audit::Actor;
use adieu_core::keys::{KeyState, state_of};
use adieu_core::{Clock, SystemClock, UnixMillis};
use adieu_proto::SigningAlg;
use adieu_server::keys::{kek, rotation};
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

/// `adieu keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// List the signing keys, oldest first: kid, algorithm, generation, state (signing, pending,
    /// published, retired), when each was created, signs from and was retired, and how its
    /// private key is kept (encrypted, plain, erased).
    List,
    /// Add a new signing key for one algorithm (default: each). It is published in the JWKS at
    /// once and signs after `keys.publish_ahead_secs`, or at once if the algorithm has no key.
    Rotate {
        /// RS256, ES256 or EdDSA.
        #[arg(long)]
        alg: Option<String>,
    },
    /// Retire a key that no longer signs: it leaves the JWKS (on each replica at its next reload)
    /// and its private key is erased. The current signer and the last key of an algorithm cannot
    /// be retired.
    Retire {
        /// The key's kid.
        kid: String,
    },
    /// Print a new key-encryption key (base64 of 32 random bytes) for `key_encryption_key`.
    GenerateKek,
}

/// A time as the other commands print it (RFC 3339).
fn ts(t: UnixMillis) -> String {
    t.to_rfc3339()
}

/// Runs a keys command.
pub async fn run(config: &Config, cmd: KeysCmd) -> anyhow::Result<()> {
    let now = SystemClock.now();
    match cmd {
        KeysCmd::GenerateKek => {
            say!("{}", kek::generate());
            eprintln!(
                "Keep this key-encryption key secret and give it to every replica and to `adieu keys rotate` \
                 (ADIEU_KEY_ENCRYPTION_KEY). Keys encrypted with it cannot be used without it."
            );
        }
        KeysCmd::List => {
            let store = crate::store::open(config).await?;
            let keys = store.signing_keys().await?;
            let mut rows = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let state = match state_of(&keys, i, now) {
                    KeyState::Pending { signs_from } => {
                        format!("pending (signs in {} s)", (signs_from.0 - now.0).div_euclid(1000).max(0))
                    }
                    s => s.as_str().to_owned(),
                };
                rows.push(vec![
                    ("kid", json!(k.kid)),
                    ("alg", json!(k.alg.to_string())),
                    ("generation", json!(k.generation)),
                    ("state", json!(state)),
                    ("created", time(k.created_at)),
                    ("signs_from", time(k.signs_from)),
                    ("retired", opt_time(k.retired_at)),
                    ("private_key", json!(kek::at_rest(&k.private_key).as_str())),
                ]);
            }
            out::list(
                &["kid", "alg", "generation", "state", "created", "signs_from", "retired", "private_key"],
                &rows,
            )?;
        }
        KeysCmd::Rotate { alg } => {
            let settings = config.settings()?;
            let kek = settings.kek()?;
            let store = crate::store::open(config).await?;
            let algs = match alg {
                Some(a) => vec![a.parse::<SigningAlg>().map_err(anyhow::Error::msg)?],
                None => SigningAlg::ALL.to_vec(),
            };
            for alg in algs {
                let key = rotation::rotate(
                    store.as_ref(),
                    alg,
                    kek.as_ref(),
                    settings.keys.publish_ahead(),
                    now,
                    &Actor::Cli.name(),
                )
                .await
                .with_context(|| format!("rotating {alg}"))?;
                let wait = (key.signs_from.0 - now.0).div_euclid(1000);
                let when = if wait > 0 {
                    format!("signs from {} (in {wait} s)", ts(key.signs_from))
                } else {
                    "signs now".into()
                };
                say!(
                    "{}\t{alg}\tgeneration {}\tpublished, {when}, private key {}",
                    key.kid,
                    key.generation,
                    kek::at_rest(&key.private_key).as_str()
                );
            }
            eprintln!(
                "Running servers publish new keys within keys.reload_interval_secs ({} s). Retire an old key \
                 (`adieu keys retire KID`) once the new one signs and the tokens the old one signed have expired \
                 (ID tokens live tokens.id_token_ttl_secs, {} s).",
                settings.keys.reload_interval_secs, settings.tokens.id_token_ttl_secs
            );
        }
        KeysCmd::Retire { kid } => {
            let store = crate::store::open(config).await?;
            let keys = store.signing_keys().await?;
            let retired = rotation::retire(store.as_ref(), &kid, now, &Actor::Cli.name()).await?;
            // When it stopped signing: the next generation of its algorithm started.
            let stopped = keys
                .iter()
                .filter(|k| k.alg == retired.alg && k.generation > retired.generation)
                .map(|k| k.signs_from)
                .min();
            say!(
                "{kid} is retired: running servers drop it from the JWKS within {} s",
                config.keys.reload_interval_secs
            );
            if let Some(stopped) = stopped {
                let since = (now.0 - stopped.0).div_euclid(1000);
                let ttl = i64::try_from(config.tokens.id_token_ttl_secs).unwrap_or(i64::MAX);
                if since < ttl {
                    eprintln!(
                        "warning: {kid} signed until {since} s ago; ID tokens it signed are valid for up to {ttl} s and \
                         no longer verify against the JWKS"
                    );
                }
            }
        }
    }
    Ok(())
}
