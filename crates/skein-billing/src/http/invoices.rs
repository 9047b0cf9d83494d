//! Invoices: users ask for one over paid orders and download the PDF once issued; admins
//! list, issue (an invoice number, and a PDF uploaded through the File service) or reject.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, now_ms};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::BillingService;
use crate::invoice::{self, InvoiceKind, InvoiceView, NewInvoice};

/// An invoice request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestInvoice {
    /// Paid orders of the caller, 1–50, none on another invoice.
    pub order_ids: Vec<String>,
    /// `normal` (增值税普通发票) or `special` (增值税专用发票).
    pub kind: InvoiceKind,
    /// The buyer's name (1–100 characters).
    pub title: String,
    /// The taxpayer id (15–20 letters and digits); required for `special`.
    pub tax_id: Option<String>,
    /// Registered address and telephone; required for `special`.
    pub address: Option<String>,
    /// Bank and account; required for `special`.
    pub bank_account: Option<String>,
    /// Where to send the invoice.
    pub email: String,
}

/// Issuing an invoice.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueInvoice {
    /// The invoice number (1–40 characters).
    pub number: String,
    /// The PDF, uploaded first through `POST /api/v1/files` by the issuing admin.
    pub file_id: Option<String>,
}

/// Rejecting an invoice.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectInvoice {
    /// Why (1–500 characters; the user sees it).
    pub reason: String,
}

/// Filters of an invoice list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceQuery {
    /// Only this status (`requested`, `issued`, `rejected`).
    pub status: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
}

impl InvoiceQuery {
    fn page(&self) -> PageQuery {
        PageQuery {
            page: self.page,
            per_page: self.per_page,
        }
    }
}

fn text(
    field: &str,
    value: Option<&str>,
    max: usize,
    en: &'static str,
    zh: &'static str,
) -> ApiResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() <= max => Ok(Some(v.to_string())),
        Some(_) => Err(ApiError::invalid_field(field, en, zh)),
    }
}

fn parse(req: RequestInvoice, user_id: &str) -> ApiResult<NewInvoice> {
    let mut order_ids: Vec<String> = req.order_ids.iter().map(|o| o.trim().to_string()).collect();
    order_ids.sort();
    order_ids.dedup();
    if order_ids.is_empty() || order_ids.len() > 50 || !order_ids.iter().all(|o| looks_like_id(o)) {
        return Err(ApiError::invalid_field(
            "order_ids",
            "Choose 1–50 of your paid orders.",
            "请选择 1–50 个已支付的订单。",
        ));
    }
    let title = text(
        "title",
        Some(req.title.as_str()),
        100,
        "The title must be 1–100 characters.",
        "发票抬头须为 1–100 个字符。",
    )?
    .ok_or_else(|| {
        ApiError::invalid_field(
            "title",
            "The title must be 1–100 characters.",
            "发票抬头须为 1–100 个字符。",
        )
    })?;
    let tax_id = text(
        "tax_id",
        req.tax_id.as_deref(),
        20,
        "The tax id must be 15–20 letters and digits.",
        "税号须为 15–20 位字母或数字。",
    )?
    .map(|t| t.to_ascii_uppercase());
    if tax_id
        .as_ref()
        .is_some_and(|t| t.len() < 15 || !t.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(ApiError::invalid_field(
            "tax_id",
            "The tax id must be 15–20 letters and digits.",
            "税号须为 15–20 位字母或数字。",
        ));
    }
    let address = text(
        "address",
        req.address.as_deref(),
        200,
        "The address must be at most 200 characters.",
        "地址电话最多 200 个字符。",
    )?;
    let bank_account = text(
        "bank_account",
        req.bank_account.as_deref(),
        200,
        "The bank account must be at most 200 characters.",
        "开户行及账号最多 200 个字符。",
    )?;
    if req.kind == InvoiceKind::Special {
        for (field, value, en, zh) in [
            (
                "tax_id",
                &tax_id,
                "A special VAT invoice needs the tax id.",
                "增值税专用发票须填写税号。",
            ),
            (
                "address",
                &address,
                "A special VAT invoice needs the registered address and telephone.",
                "增值税专用发票须填写地址电话。",
            ),
            (
                "bank_account",
                &bank_account,
                "A special VAT invoice needs the bank and account.",
                "增值税专用发票须填写开户行及账号。",
            ),
        ] {
            if value.is_none() {
                return Err(ApiError::invalid_field(field, en, zh));
            }
        }
    }
    let email = req.email.trim().to_string();
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace)
        });
    if !valid_email {
        return Err(ApiError::invalid_field(
            "email",
            "Give the email address to send the invoice to.",
            "请填写接收发票的邮箱。",
        ));
    }
    Ok(NewInvoice {
        user_id: user_id.to_string(),
        kind: req.kind,
        title,
        tax_id,
        address,
        bank_account,
        email,
        order_ids,
    })
}

fn no_invoice() -> ApiError {
    ApiError::not_found("invoice", "发票")
}

/// Ask for an invoice over some of the caller's paid orders. An order is on at most one
/// invoice (409 `order_already_invoiced`) until that invoice is rejected.
#[utoipa::path(post, path = "/billing/invoices", tag = "billing", security(("bearer" = [])), request_body = RequestInvoice,
    responses((status = 201, body = InvoiceView), (status = 401, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn request(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<RequestInvoice>,
) -> ApiResult<(StatusCode, ApiJson<InvoiceView>)> {
    let new = parse(req, &user.user_id)?;
    let made = invoice::request(&svc.db, &new, now_ms()).await?;
    tracing::info!(invoice_id = %made.id, user_id = %user.user_id, orders = made.order_ids.len(), "invoice requested");
    Ok((StatusCode::CREATED, ApiJson(made)))
}

/// The caller's invoices, newest first.
#[utoipa::path(get, path = "/billing/invoices", tag = "billing", security(("bearer" = [])), params(InvoiceQuery),
    responses((status = 200, body = Page<InvoiceView>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_own(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<InvoiceQuery>,
) -> ApiResult<ApiJson<Page<InvoiceView>>> {
    let page = q.page();
    let (rows, total) = invoice::list(
        &svc.db,
        &user.user_id,
        q.status.as_deref().unwrap_or(""),
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiJson(Page::new(rows, total, page)))
}

/// The PDF of one of the caller's issued invoices.
#[utoipa::path(get, path = "/billing/invoices/{id}/pdf", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id")),
    responses((status = 200, description = "The PDF", content_type = "application/pdf"), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn pdf(
    State(svc): State<Arc<BillingService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if !looks_like_id(&id) {
        return Err(no_invoice());
    }
    let (file_id, owner) = invoice::pdf(&svc.db, &id, Some(&user.user_id))
        .await?
        .ok_or_else(no_invoice)?;
    let files = svc
        .files
        .get()
        .ok_or_else(|| ApiError::unavailable("files"))?;
    let content = files.open(&owner, &file_id, None).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"invoice-{id}.pdf\""),
            ),
        ],
        Body::from_stream(content.body),
    )
        .into_response())
}

/// Everyone's invoices, newest first, by status (admin).
#[utoipa::path(get, path = "/admin/billing/invoices", tag = "admin-billing", security(("bearer" = [])), params(InvoiceQuery),
    responses((status = 200, body = Page<InvoiceView>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_all(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<InvoiceQuery>,
) -> ApiResult<ApiJson<Page<InvoiceView>>> {
    let page = q.page();
    let (rows, total) = invoice::list(
        &svc.db,
        "",
        q.status.as_deref().unwrap_or(""),
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiJson(Page::new(rows, total, page)))
}

/// Issue a requested invoice (admin): its number, and optionally the PDF the admin uploaded
/// through the File service (it must be theirs, and a PDF).
#[utoipa::path(post, path = "/admin/billing/invoices/{id}/issue", tag = "admin-billing", security(("bearer" = [])), request_body = IssueInvoice,
    params(("id" = String, Path, description = "Invoice id")),
    responses((status = 200, body = InvoiceView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Already issued or rejected", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn issue(
    State(svc): State<Arc<BillingService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<IssueInvoice>,
) -> ApiResult<ApiJson<InvoiceView>> {
    if !looks_like_id(&id) {
        return Err(no_invoice());
    }
    let number = req.number.trim();
    if number.is_empty() || number.chars().count() > 40 {
        return Err(ApiError::invalid_field(
            "number",
            "The invoice number must be 1–40 characters.",
            "发票号码须为 1–40 个字符。",
        ));
    }
    let file_id = req
        .file_id
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty());
    if let Some(file_id) = file_id {
        let files = svc
            .files
            .get()
            .ok_or_else(|| ApiError::unavailable("files"))?;
        let meta = files
            .authorise(&admin.user_id, file_id)
            .await
            .map_err(|_| {
                ApiError::invalid_field(
                    "file_id",
                    "No such file of yours; upload the PDF first.",
                    "没有这个文件；请先上传 PDF。",
                )
            })?;
        if meta.content_type != "application/pdf" {
            return Err(ApiError::invalid_field(
                "file_id",
                "The invoice file must be a PDF.",
                "发票文件须为 PDF。",
            ));
        }
    }
    invoice::get(&svc.db, &id, None)
        .await?
        .ok_or_else(no_invoice)?;
    invoice::issue(
        &svc.db,
        &id,
        &admin.user_id,
        number,
        file_id.map(|f| (f, admin.user_id.as_str())),
        now_ms(),
    )
    .await?;
    tracing::info!(invoice_id = %id, admin_id = %admin.user_id, "invoice issued");
    Ok(ApiJson(
        invoice::get(&svc.db, &id, None)
            .await?
            .ok_or_else(no_invoice)?,
    ))
}

/// Reject a requested invoice with a reason (admin); its orders can be invoiced again.
#[utoipa::path(post, path = "/admin/billing/invoices/{id}/reject", tag = "admin-billing", security(("bearer" = [])), request_body = RejectInvoice,
    params(("id" = String, Path, description = "Invoice id")),
    responses((status = 200, body = InvoiceView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Already issued or rejected", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn reject(
    State(svc): State<Arc<BillingService>>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RejectInvoice>,
) -> ApiResult<ApiJson<InvoiceView>> {
    if !looks_like_id(&id) {
        return Err(no_invoice());
    }
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "reason",
            "Say why (1–500 characters).",
            "请填写驳回原因（1–500 个字符）。",
        ));
    }
    invoice::get(&svc.db, &id, None)
        .await?
        .ok_or_else(no_invoice)?;
    invoice::reject(&svc.db, &id, &admin.user_id, reason, now_ms()).await?;
    tracing::info!(invoice_id = %id, admin_id = %admin.user_id, "invoice rejected");
    Ok(ApiJson(
        invoice::get(&svc.db, &id, None)
            .await?
            .ok_or_else(no_invoice)?,
    ))
}
