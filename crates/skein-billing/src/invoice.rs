//! Invoices (增值税发票) for paid top-up orders: a user asks for one over some of their paid
//! orders (title, tax id, kind, address, bank account, email); an admin issues it (an invoice
//! number, and the PDF uploaded through the File service) or rejects it with a reason.
//!
//! One order is on at most one invoice: `invoice_orders.order_id` is a primary key, inserted
//! in the request's transaction, so two requests racing for an order get one invoice and one
//! 409. A rejected invoice's orders are freed in the transaction that rejects it.

use axum::http::StatusCode;
use serde::Serialize;
use skein_core::ids::{ms_to_rfc3339, new_id};
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, DbResult, sqlx};
use utoipa::ToSchema;

use crate::payment::OrderStatus;

/// An invoice's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKind {
    /// 增值税普通发票.
    Normal,
    /// 增值税专用发票 (needs a tax id, address and bank account).
    Special,
}

impl InvoiceKind {
    fn as_str(self) -> &'static str {
        match self {
            InvoiceKind::Normal => "normal",
            InvoiceKind::Special => "special",
        }
    }
}

/// An invoice as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceView {
    /// Its id.
    pub id: String,
    /// Who asked.
    pub user_id: String,
    /// `normal` or `special`.
    pub kind: String,
    /// The buyer's name (a company's or a person's).
    pub title: String,
    /// The buyer's taxpayer id (统一社会信用代码).
    pub tax_id: Option<String>,
    /// Registered address and telephone.
    pub address: Option<String>,
    /// Bank and account.
    pub bank_account: Option<String>,
    /// Where the invoice is sent.
    pub email: String,
    /// `CNY` or `USD`.
    pub currency: String,
    /// The orders' paid total, in minor units.
    pub amount_minor: i64,
    /// `requested`, `issued` or `rejected`.
    pub status: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The invoice number, once issued.
    pub number: Option<String>,
    /// Whether a PDF can be downloaded.
    pub has_pdf: bool,
    /// The orders it covers.
    pub order_ids: Vec<String>,
    /// When it was asked for (RFC 3339).
    pub created_at: String,
    /// When an admin decided (RFC 3339).
    pub reviewed_at: Option<String>,
}

/// A checked request.
pub(crate) struct NewInvoice {
    pub user_id: String,
    pub kind: InvoiceKind,
    pub title: String,
    pub tax_id: Option<String>,
    pub address: Option<String>,
    pub bank_account: Option<String>,
    pub email: String,
    pub order_ids: Vec<String>,
}

const COLUMNS: &str = "id, user_id, kind, title, tax_id, address, bank_account, email, currency, amount_minor, status, reason, number, file_id, created_at, reviewed_at";

type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

fn view(row: Row, order_ids: Vec<String>) -> InvoiceView {
    let (
        id,
        user_id,
        kind,
        title,
        tax_id,
        address,
        bank_account,
        email,
        currency,
        amount_minor,
        status,
        reason,
        number,
        file_id,
        created_at,
        reviewed_at,
    ) = row;
    InvoiceView {
        id,
        user_id,
        kind,
        title,
        tax_id,
        address,
        bank_account,
        email,
        currency,
        amount_minor,
        status,
        reason,
        number,
        has_pdf: file_id.is_some(),
        order_ids,
        created_at: ms_to_rfc3339(created_at),
        reviewed_at: reviewed_at.map(ms_to_rfc3339),
    }
}

fn conflict(code: &'static str, en: &'static str, zh: &'static str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, en, zh)
}

/// Records a request over paid orders of its user, in one transaction; the invoice.
pub(crate) async fn request(db: &Db, new: &NewInvoice, now: i64) -> ApiResult<InvoiceView> {
    let mut tx = db.begin_write().await?;
    let mut currency: Option<String> = None;
    let mut total = 0i64;
    for order_id in &new.order_ids {
        let found: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT status, currency, amount_minor FROM payment_orders WHERE id = $1 AND user_id = $2",
        )
        .bind(order_id)
        .bind(&new.user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(skein_db::DbError::from)?;
        let Some((status, order_currency, amount)) = found else {
            return Err(ApiError::invalid_field(
                "order_ids",
                format!("Order {order_id} is not one of your orders."),
                format!("订单 {order_id} 不是你的订单。"),
            ));
        };
        let status = OrderStatus::parse(&status);
        if matches!(
            status,
            Some(OrderStatus::Refunded | OrderStatus::PartiallyRefunded)
        ) {
            return Err(ApiError::invalid_field(
                "order_ids",
                format!("Order {order_id} was refunded; a refunded order cannot be invoiced."),
                format!("订单 {order_id} 已退款；已退款的订单不能开票。"),
            ));
        }
        if status != Some(OrderStatus::Paid) {
            return Err(ApiError::invalid_field(
                "order_ids",
                format!("Order {order_id} is not paid; only paid orders can be invoiced."),
                format!("订单 {order_id} 未支付；只有已支付的订单可以开票。"),
            ));
        }
        if currency.as_ref().is_some_and(|c| *c != order_currency) {
            return Err(ApiError::invalid_field(
                "order_ids",
                "One invoice covers orders of one currency.",
                "一张发票只能包含同一币种的订单。",
            ));
        }
        currency = Some(order_currency);
        total += amount;
    }
    let id = new_id();
    for order_id in &new.order_ids {
        let inserted =
            sqlx::query("INSERT INTO invoice_orders (order_id, invoice_id) VALUES ($1, $2)")
                .bind(order_id)
                .bind(&id)
                .execute(&mut *tx)
                .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(conflict(
                    "order_already_invoiced",
                    "An order is already on another invoice.",
                    "有订单已在其他发票中。",
                )
                .with_details(serde_json::json!({ "field": "order_ids", "order_id": order_id })));
            }
            Err(e) => return Err(skein_db::DbError::from(e).into()),
        }
    }
    sqlx::query(
        "INSERT INTO invoices (id, user_id, kind, title, tax_id, address, bank_account, email, currency, amount_minor, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'requested', $11, $11)",
    )
    .bind(&id)
    .bind(&new.user_id)
    .bind(new.kind.as_str())
    .bind(&new.title)
    .bind(&new.tax_id)
    .bind(&new.address)
    .bind(&new.bank_account)
    .bind(&new.email)
    .bind(currency.unwrap_or_default())
    .bind(total)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(skein_db::DbError::from)?;
    tx.commit().await.map_err(skein_db::DbError::from)?;
    get(db, &id, Some(&new.user_id))
        .await?
        .ok_or_else(|| ApiError::internal("an invoice vanished after it was made"))
}

async fn orders_of(db: &Db, id: &str) -> DbResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT order_id FROM invoice_orders WHERE invoice_id = $1 ORDER BY order_id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// One invoice; with `user_id`, only if it is theirs. A rejected invoice lists no orders
/// (they were freed).
pub(crate) async fn get(db: &Db, id: &str, user_id: Option<&str>) -> DbResult<Option<InvoiceView>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE id = $1 AND ($2 = '' OR user_id = $2)"
    ))
    .bind(id)
    .bind(user_id.unwrap_or(""))
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some(row) => {
            let orders = orders_of(db, id).await?;
            Ok(Some(view(row, orders)))
        }
        None => Ok(None),
    }
}

/// A page of invoices, newest first, of one user (or everyone's, for `""`) and one status.
pub(crate) async fn list(
    db: &Db,
    user_id: &str,
    status: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<InvoiceView>, i64)> {
    let filter = "($1 = '' OR user_id = $1) AND ($2 = '' OR status = $2)";
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(user_id)
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM invoices WHERE {filter}"))
        .bind(user_id)
        .bind(status)
        .fetch_one(db.pool())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let orders = orders_of(db, &row.0).await?;
        out.push(view(row, orders));
    }
    Ok((out, total))
}

fn not_requested() -> ApiError {
    conflict(
        "invoice_decided",
        "This invoice was already issued or rejected.",
        "该发票已开具或已驳回。",
    )
}

/// Issues a requested invoice; `Err` 409 when it was decided already.
pub(crate) async fn issue(
    db: &Db,
    id: &str,
    admin_id: &str,
    number: &str,
    file: Option<(&str, &str)>,
    now: i64,
) -> ApiResult<()> {
    let done = sqlx::query(
        "UPDATE invoices SET status = 'issued', number = $2, file_id = $3, file_owner = $4, reviewed_by = $5, reviewed_at = $6, updated_at = $6 \
         WHERE id = $1 AND status = 'requested'",
    )
    .bind(id)
    .bind(number)
    .bind(file.map(|f| f.0))
    .bind(file.map(|f| f.1))
    .bind(admin_id)
    .bind(now)
    .execute(db.pool())
    .await
    .map_err(skein_db::DbError::from)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(not_requested())
    }
}

/// Rejects a requested invoice and frees its orders, in one transaction.
pub(crate) async fn reject(
    db: &Db,
    id: &str,
    admin_id: &str,
    reason: &str,
    now: i64,
) -> ApiResult<()> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE invoices SET status = 'rejected', reason = $2, reviewed_by = $3, reviewed_at = $4, updated_at = $4 \
         WHERE id = $1 AND status = 'requested'",
    )
    .bind(id)
    .bind(reason)
    .bind(admin_id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(skein_db::DbError::from)?;
    if done.rows_affected() != 1 {
        return Err(not_requested());
    }
    sqlx::query("DELETE FROM invoice_orders WHERE invoice_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(skein_db::DbError::from)?;
    tx.commit().await.map_err(skein_db::DbError::from)?;
    Ok(())
}

/// The PDF of an issued invoice: its file id and owner.
pub(crate) async fn pdf(
    db: &Db,
    id: &str,
    user_id: Option<&str>,
) -> DbResult<Option<(String, String)>> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT file_id, file_owner FROM invoices WHERE id = $1 AND ($2 = '' OR user_id = $2) AND status = 'issued'",
    )
    .bind(id)
    .bind(user_id.unwrap_or(""))
    .fetch_optional(db.pool())
    .await?;
    Ok(row.and_then(|(f, o)| f.zip(o)))
}
