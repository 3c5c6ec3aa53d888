//! Storage backends of the adieu OpenID Provider.
//!
//! - [`sqlite`]: the embedded default ([`SqliteStore`]), one file in WAL mode.
//! - [`migrate`]: the migrations shipped inside the binary and the runner that applies them.
//!
//! Each backend is one type implementing every trait of [`adieu_core::store`]; there is no
//! `if backend` in any query. The conformance tests in `tests/` run against each backend.

pub mod migrate;
pub mod sqlite;

pub use sqlite::SqliteStore;
