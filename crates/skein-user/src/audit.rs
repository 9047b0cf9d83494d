//! The audit log of administrators' actions: rows are only inserted (this module has no update
//! or delete), and read back with filters and pages by admins.

use async_trait::async_trait;
use skein_core::api::{AuditEntry, AuditLog};
use skein_core::ids::{ms_to_rfc3339, new_id, now_ms};
use skein_db::DbResult;
use skein_db::sqlx::{self, Any, Pool};

use crate::UserService;

/// A kept entry, as admins read it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Entry id.
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    /// What was done, by whom, to what.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which entries to read.
#[derive(Debug, Default)]
pub struct AuditFilter<'a> {
    /// Only this actor's.
    pub actor_id: Option<&'a str>,
    /// Only actions containing this text (a method, a route).
    pub action: Option<&'a str>,
    /// Only at or after this time (ms).
    pub from_ms: Option<i64>,
    /// Only before this time (ms).
    pub to_ms: Option<i64>,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
    String,
    i64,
);

/// Inserts one entry.
pub async fn insert(pool: &Pool<Any>, entry: &AuditEntry, at_ms: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, actor_id, actor_role, action, target, detail, before_state, status, request_id, ip, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(new_id())
    .bind(&entry.actor_id)
    .bind(&entry.actor_role)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(entry.detail.as_deref())
    .bind(entry.before.as_deref())
    .bind(i64::from(entry.status))
    .bind(&entry.request_id)
    .bind(&entry.ip)
    .bind(at_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// The entries matching `filter`, newest first, and how many match in all.
pub async fn list(
    pool: &Pool<Any>,
    filter: &AuditFilter<'_>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<AuditRecord>, i64)> {
    let action = filter.action.map(|a| format!("%{}%", escape_like(a)));
    let condition = "($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR action LIKE $2 ESCAPE '\\') \
         AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4)";
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM audit_log WHERE {condition}"))
            .bind(filter.actor_id)
            .bind(action.as_deref())
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .fetch_one(pool)
            .await?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT id, actor_id, actor_role, action, target, detail, before_state, status, request_id, ip, created_at \
         FROM audit_log WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(filter.actor_id)
    .bind(action.as_deref())
    .bind(filter.from_ms)
    .bind(filter.to_ms)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let records = rows
        .into_iter()
        .map(
            |(
                id,
                actor_id,
                actor_role,
                action,
                target,
                detail,
                before,
                status,
                request_id,
                ip,
                at,
            )| {
                AuditRecord {
                    id,
                    created_at: ms_to_rfc3339(at),
                    entry: AuditEntry {
                        actor_id,
                        actor_role,
                        action,
                        target,
                        detail,
                        before,
                        status: u16::try_from(status).unwrap_or(0),
                        request_id,
                        ip,
                    },
                }
            },
        )
        .collect();
    Ok((records, total))
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[async_trait]
impl AuditLog for UserService {
    async fn record(&self, entry: AuditEntry) {
        if let Err(error) = insert(self.db.pool(), &entry, now_ms()).await {
            // The action already happened; losing its record is an operator's alarm, not the
            // admin's error.
            tracing::error!(%error, action = %entry.action, target = %entry.target, "could not write the audit log");
        }
    }
}
