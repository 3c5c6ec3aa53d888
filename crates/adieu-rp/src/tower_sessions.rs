//! Eager ending for applications whose sessions live in a [`tower-sessions`] store (feature
//! `tower-sessions`): the back-channel endpoint deletes the sessions from the store, so the next
//! request of that browser finds no session.
//!
//! Record the login after the session has its final id: call `session.cycle_id()` at sign-in (it
//! prevents session fixation) and `session.save()`, then record `session.id()` in the index. Record
//! again whenever the id is cycled later.
//!
//! [`tower-sessions`]: https://docs.rs/tower-sessions/0.14

use crate::index::{IndexError, SessionEnder};
use async_trait::async_trait;
use std::str::FromStr;
use tower_sessions_core::SessionStore;
use tower_sessions_core::session::Id;

/// Ends sessions by deleting them from a `tower-sessions` store (any store that implements
/// `tower_sessions_core::SessionStore` 0.14: memory, sqlx, Redis, …).
///
/// ```
/// use adieu_rp::index::SessionEnder;
/// use adieu_rp::tower_sessions::TowerSessionsEnder;
/// use std::sync::Arc;
/// use tower_sessions::{MemoryStore, Session};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::default();
/// let session = Session::new(None, Arc::new(store.clone()), None);
/// session.insert("user", "alice").await.unwrap();
/// session.save().await.unwrap();
/// let id = session.id().unwrap();
///
/// let ender = TowerSessionsEnder::new(store.clone());
/// ender.end_sessions(&[id.to_string()]).await.unwrap();
/// use tower_sessions::SessionStore;
/// assert!(store.load(&id).await.unwrap().is_none());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct TowerSessionsEnder<S> {
    store: S,
}

impl<S: SessionStore> TowerSessionsEnder<S> {
    /// Deletes ended sessions from `store`.
    ///
    /// ```
    /// let ender = adieu_rp::tower_sessions::TowerSessionsEnder::new(tower_sessions::MemoryStore::default());
    /// # let _ = ender;
    /// ```
    pub fn new(store: S) -> Self {
        TowerSessionsEnder { store }
    }
}

#[async_trait]
impl<S: SessionStore> SessionEnder for TowerSessionsEnder<S> {
    async fn end_sessions(&self, session_ids: &[String]) -> Result<(), IndexError> {
        for raw in session_ids {
            // An id that is not a tower-sessions id cannot name a session of this store: nothing to end.
            let Ok(id) = Id::from_str(raw) else {
                tracing::warn!("the index holds a session id that is not a tower-sessions id; ignored");
                continue;
            };
            self.store
                .delete(&id)
                .await
                .map_err(|e| IndexError::with_source(format!("tower-sessions store: {e}"), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tower_sessions::{MemoryStore, Session};

    async fn saved_session(store: &MemoryStore) -> Id {
        let s = Session::new(None, Arc::new(store.clone()), None);
        s.insert("user", "alice").await.unwrap();
        s.save().await.unwrap();
        s.id().unwrap()
    }

    #[tokio::test]
    async fn eager_ending_deletes_exactly_the_named_sessions_from_the_store() {
        let store = MemoryStore::default();
        let (a, b) = (saved_session(&store).await, saved_session(&store).await);
        let ender = TowerSessionsEnder::new(store.clone());
        ender.end_sessions(&[a.to_string()]).await.unwrap();
        assert!(store.load(&a).await.unwrap().is_none(), "ended");
        assert!(store.load(&b).await.unwrap().is_some(), "another session stays");
    }

    #[tokio::test]
    async fn bc_rp_14_unknown_or_foreign_ids_end_nothing_and_succeed() {
        let store = MemoryStore::default();
        let a = saved_session(&store).await;
        let ender = TowerSessionsEnder::new(store.clone());
        ender.end_sessions(&["not-a-tower-sessions-id".into(), Id::default().to_string()]).await.unwrap();
        ender.end_sessions(&[]).await.unwrap();
        assert!(store.load(&a).await.unwrap().is_some());
    }
}
