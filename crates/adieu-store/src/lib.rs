//! Storage backends of the adieu OpenID Provider.
//!
//! - [`sql`]: the store written once ([`sql::SqlStore`]), generic over the backend's
//!   [`sql::Dialect`]: every statement shared by both backends, and the seam for what differs.
//! - [`sqlite`]: the embedded default ([`SqliteStore`]), one file in WAL mode.
//! - [`postgres`]: PostgreSQL ([`PostgresStore`], cargo feature `postgres`, on by default) for
//!   several replicas on one database; deliveries are claimed with `FOR UPDATE SKIP LOCKED` and
//!   leased per replica.
//! - [`migrate`]: the migrations shipped inside the binary (one directory per backend) and the
//!   runners that apply them.
//!
//! Each backend is [`sql::SqlStore`] on its dialect, implementing every trait of
//! [`adieu_core::store`]; the rules (who is notified, how a delivery changes state) come from
//! `adieu-core`. The conformance tests in `tests/` run against each backend.

pub mod migrate;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sql;
pub mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// How long a revoked grant is remembered (one hour): long enough for any token request that
/// was being answered when the grant was revoked, whose tokens are then refused.
pub(crate) const REVOKED_GRANT_MEMORY_MS: i64 = 3_600_000;
