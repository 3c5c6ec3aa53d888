//! End-to-end tests of the provider over real HTTP on `127.0.0.1:0` (one test binary, STYLE.md 16).
//!
//! - `flow`: the whole sign-in → tokens → second client → RP-initiated logout journey.
//! - `authorize_rules`, `login_rules`, `token_rules`, `end_session_rules`: one test per rule,
//!   named after it.
//! - `binary`: the real `adieu` executable (zero-config serve, CLI on a live database, signals).
//! - `initiators`: every way a session ends (API, CLI, clock, restart) notifies exactly the
//!   applications subscribed to it; the users and sessions API and its OpenAPI document.
//! - `postgres`: the real executable on PostgreSQL (migrate, CLI, sign-in, back-channel logout,
//!   readiness when the database goes away).
//! - `replicas`: several real replicas on one PostgreSQL schema, and faults (NOTIFY, SIGTERM hand-over,
//!   SIGKILL mid fan-out, an application down for a while, cut database connections).
//! - `upstream`: signing in through upstream providers (a second real `adieu serve`, and an
//!   in-process upstream whose tokens the test signs) and their back-channel logouts (`idp-logout`);
//!   `upstream_interop`: the same with oidc-provider (Node.js) as the upstream.
//! - `keys`: signing-key rotation shared through the database (published ahead, signing by the
//!   clock, retirement, two replicas starting together) and the key-encryption key (the binary
//!   refuses to start without it).
//! - `account`: the self-service account page (sessions, sign out everywhere, password, email)
//!   through a cookie-keeping browser, and its refusals.

mod account;
mod api;
mod authorize_rules;
mod backchannel;
mod binary;
mod check_rp;
mod cli;
mod connections;
mod consent;
mod disk_full;
mod end_session_rules;
mod flow;
mod frontchannel;
mod global_revocation;
mod hostile;
mod initiators;
mod isolation;
mod keys;
mod languages;
mod login_rules;
mod pg_restart;
mod postgres;
mod races;
mod replicas;
mod retention;
mod sdk;
mod signed_out;
mod support;
mod token_rules;
mod token_status;
mod upstream;
mod upstream_interop;
