//! Registered applications, their logout URI changes (audited) and the discarding of deliveries
//! when they unsubscribe.

use super::audit::append_audit_in;
use super::rows::{self, client_cols};
use super::stmt::to_json;
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::audit::{AuditEvent, AuditKind};
use adieu_core::client::Client;
use adieu_core::id::ClientId;
use adieu_core::store::{ClientStore, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;

/// Discards the pending and leased deliveries of a client (locked in id order); returns how many.
async fn discard_deliveries_in<D: Dialect>(
    conn: &mut D::Connection,
    client: &ClientId,
    at: UnixMillis,
) -> StoreResult<u64> {
    let sql = format!(
        "UPDATE deliveries SET status = 'discarded', finished_at = $1, lease_until = NULL, lease_owner = NULL,
           last_error = 'the client unsubscribed from back-channel logout'
         WHERE id IN (SELECT id FROM deliveries WHERE client_id = $2 AND status IN ('pending', 'leased')
                      ORDER BY id{})
           AND status IN ('pending', 'leased')",
        D::FOR_UPDATE
    );
    Sql::new(sql).bind(at).bind(client.as_str()).execute::<D>(conn).await
}

/// Audits a change of a client's logout URI (subscribe / change / unsubscribe) and discards its
/// pending deliveries when it unsubscribes.
async fn audit_uri_change<D: Dialect>(
    conn: &mut D::Connection,
    client: &ClientId,
    old: Option<&str>,
    new: Option<&str>,
    actor: &str,
    at: UnixMillis,
) -> StoreResult<()> {
    let k = match (old, new) {
        (None, Some(_)) => AuditKind::BackchannelSubscribed,
        (Some(_), None) => AuditKind::BackchannelUnsubscribed,
        (Some(a), Some(b)) if a != b => AuditKind::BackchannelChanged,
        _ => return Ok(()),
    };
    let e = AuditEvent::new(k, actor, at, json!({ "old": old, "new": new })).client(client.as_str());
    append_audit_in::<D>(conn, &e).await?;
    if new.is_none() {
        let n = discard_deliveries_in::<D>(conn, client, at).await?;
        if n > 0 {
            let e = AuditEvent::new(AuditKind::DeliveriesDiscarded, actor, at, json!({ "count": n }))
                .client(client.as_str());
            append_audit_in::<D>(conn, &e).await?;
        }
    }
    Ok(())
}

/// Binds a client's metadata, `name` to `third_party` (twelve values),
/// the order both the insert and the update take them in.
fn bind_metadata(q: Sql, c: &Client) -> StoreResult<Sql> {
    Ok(q.bind(&c.name)
        .bind(&c.secret_hash)
        .bind(to_json(&c.redirect_uris)?)
        .bind(to_json(&c.post_logout_redirect_uris)?)
        .bind(&c.backchannel_logout_uri)
        .bind(c.backchannel_logout_session_required)
        .bind(to_json(&c.backchannel_logout_initiators)?)
        .bind(c.token_endpoint_auth_method.as_str())
        .bind(c.id_token_signed_response_alg.as_str())
        .bind(&c.frontchannel_logout_uri)
        .bind(c.frontchannel_logout_session_required)
        .bind(c.third_party))
}

#[async_trait]
impl<D: Dialect> ClientStore for SqlStore<D> {
    async fn create_client(&self, c: &Client, actor: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let q = Sql::new(
            "INSERT INTO clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, backchannel_logout_uri,
               backchannel_logout_session_required, backchannel_logout_initiators, token_endpoint_auth_method,
               id_token_signed_response_alg, frontchannel_logout_uri, frontchannel_logout_session_required,
               third_party, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(c.id.as_str());
        bind_metadata(q, c)?.bind(c.created_at).bind(c.updated_at).execute::<D>(&mut *tx).await?;
        let e = AuditEvent::new(AuditKind::ClientCreated, actor, c.created_at, json!({ "name": c.name }))
            .client(c.id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        let uri = c.backchannel_logout_uri.as_deref();
        audit_uri_change::<D>(&mut *tx, &c.id, None, uri, actor, c.created_at).await?;
        commit::<D>(tx).await
    }

    async fn update_client(&self, c: &Client, actor: &str, at: UnixMillis) -> StoreResult<Option<Client>> {
        let mut tx = self.write().await?;
        // FOR UPDATE: waits for logouts that are writing deliveries for this client (they hold
        // KEY SHARE), and makes them wait for this change.
        let old = Sql::new(format!("SELECT {} FROM clients WHERE id = $1{}", client_cols!(), D::FOR_UPDATE))
            .bind(c.id.as_str())
            .fetch_optional::<D>(&mut *tx)
            .await?;
        let Some(old) = old.as_ref().map(rows::client).transpose()? else { return Ok(None) };
        let q = Sql::new(
            "UPDATE clients SET name = $1, secret_hash = $2, redirect_uris = $3, post_logout_redirect_uris = $4,
               backchannel_logout_uri = $5, backchannel_logout_session_required = $6, backchannel_logout_initiators = $7,
               token_endpoint_auth_method = $8, id_token_signed_response_alg = $9, frontchannel_logout_uri = $10,
               frontchannel_logout_session_required = $11, third_party = $12, updated_at = $13
             WHERE id = $14",
        );
        bind_metadata(q, c)?.bind(at).bind(c.id.as_str()).execute::<D>(&mut *tx).await?;
        let e = AuditEvent::new(AuditKind::ClientUpdated, actor, at, json!({})).client(c.id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        let (old_uri, new_uri) = (old.backchannel_logout_uri.as_deref(), c.backchannel_logout_uri.as_deref());
        audit_uri_change::<D>(&mut *tx, &c.id, old_uri, new_uri, actor, at).await?;
        commit::<D>(tx).await?;
        Ok(Some(old))
    }

    async fn client_by_id(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        let row = Sql::new(concat!("SELECT ", client_cols!(), " FROM clients WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional::<D>(&mut *self.read().await?)
            .await?;
        row.as_ref().map(rows::client).transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let rows = Sql::new(concat!("SELECT ", client_cols!(), " FROM clients ORDER BY id"))
            .fetch_all::<D>(&mut *self.read().await?)
            .await?;
        rows.iter().map(rows::client).collect()
    }

    async fn clients_by_ids(&self, ids: &[ClientId]) -> StoreResult<Vec<Client>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = to_json(&ids.iter().map(ClientId::as_str).collect::<Vec<_>>())?;
        let rows = Sql::new(format!("SELECT {} FROM clients WHERE id IN {}", client_cols!(), D::json_list("$1")))
            .bind(ids)
            .fetch_all::<D>(&mut *self.read().await?)
            .await?;
        rows.iter().map(rows::client).collect()
    }

    async fn delete_client(&self, id: &ClientId, actor: &str, at: UnixMillis) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let row = Sql::new(format!("SELECT backchannel_logout_uri FROM clients WHERE id = $1{}", D::FOR_UPDATE))
            .bind(id.as_str())
            .fetch_optional::<D>(&mut *tx)
            .await?;
        let Some(uri) = row.map(|r| r.opt_text("backchannel_logout_uri")).transpose()? else { return Ok(false) };
        audit_uri_change::<D>(&mut *tx, id, uri.as_deref(), None, actor, at).await?;
        discard_deliveries_in::<D>(&mut *tx, id, at).await?;
        let e = AuditEvent::new(AuditKind::ClientDeleted, actor, at, json!({})).client(id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        // Tokens: refresh before access, the order every transaction uses.
        for stmt in [
            "DELETE FROM auth_codes WHERE client_id = $1",
            "DELETE FROM refresh_tokens WHERE client_id = $1",
            "DELETE FROM access_tokens WHERE client_id = $1",
            "DELETE FROM participations WHERE client_id = $1",
            "DELETE FROM consents WHERE client_id = $1",
        ] {
            Sql::new(stmt).bind(id.as_str()).execute::<D>(&mut *tx).await?;
        }
        let n = Sql::new("DELETE FROM clients WHERE id = $1").bind(id.as_str()).execute::<D>(&mut *tx).await?;
        commit::<D>(tx).await?;
        Ok(n == 1)
    }
}
