//! Statements as values: SQL text with its arguments, run on either backend.
//!
//! Both backends take `$1, $2, …` placeholders (sqlx maps them to SQLite's numbered parameters),
//! and the columns hold the same few types (integers, text, booleans, bytes), so a statement is
//! written once. [`Dialect`](super::Dialect) runs it; [`Read`] reads what comes back.

use adieu_core::store::{StoreError, StoreResult};
use adieu_core::time::UnixMillis;
use std::borrow::Cow;

/// One argument of a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A 64-bit integer (times in Unix milliseconds, counts).
    I64(i64),
    /// An integer or NULL.
    OptI64(Option<i64>),
    /// Text.
    Text(String),
    /// Text or NULL.
    OptText(Option<String>),
    /// A boolean (SQLite stores 0 or 1).
    Bool(bool),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// A statement: its SQL and its arguments, in placeholder order.
#[derive(Debug, Clone)]
pub struct Sql {
    pub(crate) text: Cow<'static, str>,
    pub(crate) args: Vec<Arg>,
}

impl Sql {
    /// A statement with no arguments yet.
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Sql { text: text.into(), args: Vec::new() }
    }

    /// Adds the next argument.
    pub fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs it; the number of rows it changed.
    pub async fn execute<D: super::Dialect>(self, conn: &mut D::Connection) -> StoreResult<u64> {
        D::execute(conn, self).await.map_err(D::error)
    }

    /// Runs it; every row.
    pub async fn fetch_all<D: super::Dialect>(self, conn: &mut D::Connection) -> StoreResult<Vec<D::Row>> {
        D::fetch_all(conn, self).await.map_err(D::error)
    }

    /// Runs it; the first row, if any.
    pub async fn fetch_optional<D: super::Dialect>(self, conn: &mut D::Connection) -> StoreResult<Option<D::Row>> {
        D::fetch_optional(conn, self).await.map_err(D::error)
    }

    /// Runs it; the integer column `col` of the one row it must return (`COUNT(*) AS n`).
    pub async fn fetch_i64<D: super::Dialect>(self, conn: &mut D::Connection, col: &str) -> StoreResult<i64> {
        match self.fetch_optional::<D>(conn).await? {
            Some(row) => row.i64(col),
            None => Err(StoreError::Backend("the statement returned no row".into())),
        }
    }

    /// Runs it; the text column `col` of every row.
    pub async fn fetch_texts<D: super::Dialect>(self, conn: &mut D::Connection, col: &str) -> StoreResult<Vec<String>> {
        self.fetch_all::<D>(conn).await?.iter().map(|r| r.text(col)).collect()
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptI64(v)
    }
}
impl From<UnixMillis> for Arg {
    fn from(v: UnixMillis) -> Self {
        Arg::I64(v.0)
    }
}
impl From<Option<UnixMillis>> for Arg {
    fn from(v: Option<UnixMillis>) -> Self {
        Arg::OptI64(v.map(|t| t.0))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::OptText(v.map(str::to_owned))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::OptText(v.clone())
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}

/// Reads one column of a row by name.
pub trait Read {
    /// An integer.
    fn i64(&self, col: &str) -> StoreResult<i64>;
    /// An integer or NULL.
    fn opt_i64(&self, col: &str) -> StoreResult<Option<i64>>;
    /// Text.
    fn text(&self, col: &str) -> StoreResult<String>;
    /// Text or NULL.
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    /// A boolean.
    fn flag(&self, col: &str) -> StoreResult<bool>;
    /// Bytes.
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>>;
    /// A time in Unix milliseconds.
    fn ms(&self, col: &str) -> StoreResult<UnixMillis> {
        self.i64(col).map(UnixMillis)
    }
    /// A time or NULL.
    fn opt_ms(&self, col: &str) -> StoreResult<Option<UnixMillis>> {
        Ok(self.opt_i64(col)?.map(UnixMillis))
    }
    /// A JSON document stored as text.
    fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> StoreResult<T> {
        serde_json::from_str(&self.text(col)?).map_err(json_err)
    }
}

/// A stored JSON document that does not parse.
pub(crate) fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored JSON is invalid: {e}"))
}

/// A value to store as JSON text.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(json_err)
}

fn decode(e: sqlx::Error) -> StoreError {
    StoreError::Backend(format!("a stored value does not decode: {e}"))
}

/// Implements [`Read`] for a backend's row type and the statement runners of its
/// [`Dialect`](super::Dialect) (the same sqlx calls, typed for that backend).
macro_rules! backend_impls {
    ($db:ty, $row:ty) => {
        impl $crate::sql::stmt::Read for $row {
            fn i64(&self, col: &str) -> adieu_core::store::StoreResult<i64> {
                sqlx::Row::try_get(self, col).map_err($crate::sql::stmt::decode_error)
            }
            fn opt_i64(&self, col: &str) -> adieu_core::store::StoreResult<Option<i64>> {
                sqlx::Row::try_get(self, col).map_err($crate::sql::stmt::decode_error)
            }
            fn text(&self, col: &str) -> adieu_core::store::StoreResult<String> {
                sqlx::Row::try_get(self, col).map_err($crate::sql::stmt::decode_error)
            }
            fn opt_text(&self, col: &str) -> adieu_core::store::StoreResult<Option<String>> {
                sqlx::Row::try_get(self, col).map_err($crate::sql::stmt::decode_error)
            }
            fn flag(&self, col: &str) -> adieu_core::store::StoreResult<bool> {
                sqlx::Row::try_get(self, col).map_err($crate::sql::stmt::decode_error)
            }
            fn bytes(&self, col: &str) -> adieu_core::store::StoreResult<Vec<u8>> {
                sqlx::Row::try_get(self, col).map_err($crate::sql::stmt::decode_error)
            }
        }

        fn bound(q: &$crate::sql::Sql) -> sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments<'_>> {
            use $crate::sql::Arg;
            q.args.iter().fold(sqlx::query(&q.text), |x, a| match a {
                Arg::I64(v) => x.bind(*v),
                Arg::OptI64(v) => x.bind(*v),
                Arg::Text(v) => x.bind(v.as_str()),
                Arg::OptText(v) => x.bind(v.as_deref()),
                Arg::Bool(v) => x.bind(*v),
                Arg::Bytes(v) => x.bind(v.as_slice()),
            })
        }

        /// The runners of [`Dialect`](crate::sql::Dialect) for this backend.
        macro_rules! runners {
            () => {
                fn execute<'c>(
                    conn: &'c mut <$db as sqlx::Database>::Connection,
                    q: $crate::sql::Sql,
                ) -> impl std::future::Future<Output = Result<u64, sqlx::Error>> + Send + 'c {
                    async move { Ok(bound(&q).execute(conn).await?.rows_affected()) }
                }
                fn fetch_all<'c>(
                    conn: &'c mut <$db as sqlx::Database>::Connection,
                    q: $crate::sql::Sql,
                ) -> impl std::future::Future<Output = Result<Vec<$row>, sqlx::Error>> + Send + 'c {
                    async move { bound(&q).fetch_all(conn).await }
                }
                fn execute_script<'c>(
                    conn: &'c mut <$db as sqlx::Database>::Connection,
                    sql: &'static str,
                ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c {
                    async move { sqlx::Executor::execute(conn, sqlx::raw_sql(sql)).await.map(|_| ()) }
                }
                fn fetch_optional<'c>(
                    conn: &'c mut <$db as sqlx::Database>::Connection,
                    q: $crate::sql::Sql,
                ) -> impl std::future::Future<Output = Result<Option<$row>, sqlx::Error>> + Send + 'c {
                    async move { bound(&q).fetch_optional(conn).await }
                }
            };
        }
    };
}
pub(crate) use backend_impls;

#[doc(hidden)]
pub(crate) fn decode_error(e: sqlx::Error) -> StoreError {
    decode(e)
}
