//! Registered applications, their logout URI changes (audited) and the discarding of deliveries
//! when they unsubscribe.

use super::rows::client_cols;
use super::{PostgresStore, append_audit_in, backend, json_err, rows};
use adieu_core::audit::{AuditEvent, kind};
use adieu_core::client::Client;
use adieu_core::id::ClientId;
use adieu_core::store::{ClientStore, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;
use sqlx::PgConnection;

/// Discards the pending and leased deliveries of a client (locked in id order); returns how many.
async fn discard_deliveries_in(conn: &mut PgConnection, client: &ClientId, at: UnixMillis) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'discarded', finished_at = $1, lease_until = NULL, lease_owner = NULL,
           last_error = 'the client unsubscribed from back-channel logout'
         WHERE id IN (SELECT id FROM deliveries WHERE client_id = $2 AND status IN ('pending', 'leased')
                      ORDER BY id FOR UPDATE)
           AND status IN ('pending', 'leased')",
    )
    .bind(at.0)
    .bind(client.as_str())
    .execute(&mut *conn)
    .await
    .map_err(backend)?
    .rows_affected())
}

/// Audits a change of a client's logout URI (subscribe / change / unsubscribe) and discards its
/// pending deliveries when it unsubscribes.
async fn audit_uri_change(
    conn: &mut PgConnection,
    client: &ClientId,
    old: Option<&str>,
    new: Option<&str>,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<()> {
    let k = match (old, new) {
        (None, Some(_)) => kind::BACKCHANNEL_SUBSCRIBED,
        (Some(_), None) => kind::BACKCHANNEL_UNSUBSCRIBED,
        (Some(a), Some(b)) if a != b => kind::BACKCHANNEL_CHANGED,
        _ => return Ok(()),
    };
    let e = AuditEvent::new(k, actor, at, json!({ "old": old, "new": new })).client(client.as_str());
    append_audit_in(conn, &e).await?;
    if new.is_none() {
        let n = discard_deliveries_in(conn, client, at).await?;
        if n > 0 {
            let e =
                AuditEvent::new(kind::DELIVERIES_DISCARDED, actor, at, json!({ "count": n })).client(client.as_str());
            append_audit_in(conn, &e).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn create_client(&self, c: &Client, actor: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, backchannel_logout_uri,
               backchannel_logout_session_required, backchannel_logout_initiators, token_endpoint_auth_method,
               id_token_signed_response_alg, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(serde_json::to_string(&c.redirect_uris).map_err(json_err)?)
        .bind(serde_json::to_string(&c.post_logout_redirect_uris).map_err(json_err)?)
        .bind(&c.backchannel_logout_uri)
        .bind(c.backchannel_logout_session_required)
        .bind(serde_json::to_string(&c.backchannel_logout_initiators).map_err(json_err)?)
        .bind(c.token_endpoint_auth_method.as_str())
        .bind(c.id_token_signed_response_alg.as_str())
        .bind(c.created_at.0)
        .bind(c.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let e =
            AuditEvent::new(kind::CLIENT_CREATED, actor, c.created_at, json!({ "name": c.name })).client(c.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        audit_uri_change(&mut tx, &c.id, None, c.backchannel_logout_uri.as_deref(), actor, c.created_at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn update_client(&self, c: &Client, actor: &str, at: UnixMillis) -> StoreResult<Option<Client>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // FOR UPDATE: waits for logouts that are writing deliveries for this client (they hold
        // KEY SHARE), and makes them wait for this change.
        let old = sqlx::query(concat!("SELECT ", client_cols!(), " FROM clients WHERE id = $1 FOR UPDATE"))
            .bind(c.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(old) = old.as_ref().map(rows::client).transpose()? else { return Ok(None) };
        sqlx::query(
            "UPDATE clients SET name = $1, secret_hash = $2, redirect_uris = $3, post_logout_redirect_uris = $4,
               backchannel_logout_uri = $5, backchannel_logout_session_required = $6, backchannel_logout_initiators = $7,
               token_endpoint_auth_method = $8, id_token_signed_response_alg = $9, updated_at = $10
             WHERE id = $11",
        )
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(serde_json::to_string(&c.redirect_uris).map_err(json_err)?)
        .bind(serde_json::to_string(&c.post_logout_redirect_uris).map_err(json_err)?)
        .bind(&c.backchannel_logout_uri)
        .bind(c.backchannel_logout_session_required)
        .bind(serde_json::to_string(&c.backchannel_logout_initiators).map_err(json_err)?)
        .bind(c.token_endpoint_auth_method.as_str())
        .bind(c.id_token_signed_response_alg.as_str())
        .bind(at.0)
        .bind(c.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let e = AuditEvent::new(kind::CLIENT_UPDATED, actor, at, json!({})).client(c.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        let (old_uri, new_uri) = (old.backchannel_logout_uri.as_deref(), c.backchannel_logout_uri.as_deref());
        audit_uri_change(&mut tx, &c.id, old_uri, new_uri, actor, at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(old))
    }

    async fn client_by_id(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        let row = sqlx::query(concat!("SELECT ", client_cols!(), " FROM clients WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::client).transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query(concat!("SELECT ", client_cols!(), " FROM clients ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(rows::client).collect()
    }

    async fn clients_by_ids(&self, ids: &[ClientId]) -> StoreResult<Vec<Client>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(ClientId::as_str).collect();
        let rows = sqlx::query(concat!("SELECT ", client_cols!(), " FROM clients WHERE id = ANY($1)"))
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(rows::client).collect()
    }

    async fn delete_client(&self, id: &ClientId, actor: &str, at: UnixMillis) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let uri: Option<Option<String>> =
            sqlx::query_scalar("SELECT backchannel_logout_uri FROM clients WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(uri) = uri else { return Ok(false) };
        audit_uri_change(&mut tx, id, uri.as_deref(), None, actor, at).await?;
        discard_deliveries_in(&mut tx, id, at).await?;
        let e = AuditEvent::new(kind::CLIENT_DELETED, actor, at, json!({})).client(id.as_str());
        append_audit_in(&mut tx, &e).await?;
        // Tokens: refresh before access, the order every transaction uses.
        for stmt in [
            "DELETE FROM auth_codes WHERE client_id = $1",
            "DELETE FROM refresh_tokens WHERE client_id = $1",
            "DELETE FROM access_tokens WHERE client_id = $1",
            "DELETE FROM participations WHERE client_id = $1",
        ] {
            sqlx::query(stmt).bind(id.as_str()).execute(&mut *tx).await.map_err(backend)?;
        }
        let n = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(n == 1)
    }
}
