//! The Billing service's HTTP routes.

mod admin;
mod coupons;
pub(crate) mod internal;
mod invoices;
mod pay;
mod payment_settings;
mod plan_changes;
mod plans;
mod refunds;
mod statements;
mod user;

use std::sync::Arc;

use skein_core::ids::rfc3339_to_ms;
use skein_core::{ApiError, ApiResult};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::BillingService;

pub(crate) fn routes(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new()
        // Signed-in users.
        .routes(routes!(user::get_quota))
        .routes(routes!(user::get_ledger))
        .routes(routes!(user::list_usage))
        .routes(routes!(user::export_usage))
        .routes(routes!(user::daily_usage))
        .routes(routes!(user::redeem))
        .routes(routes!(pay::options))
        .routes(routes!(pay::create_order, pay::list_orders))
        .routes(routes!(pay::get_order))
        .routes(routes!(coupons::quote))
        .routes(routes!(statements::own))
        .routes(routes!(statements::own_csv))
        .routes(routes!(statements::own_pdf))
        .routes(routes!(statements::email_own))
        .routes(routes!(invoices::request, invoices::list_own))
        .routes(routes!(invoices::pdf))
        // Payment providers (public; signatures are checked).
        .routes(routes!(pay::notify, pay::notify_get))
        // Admins.
        .routes(routes!(admin::user_quota))
        .routes(routes!(admin::user_ledger))
        .routes(routes!(admin::adjust))
        .routes(routes!(admin::list_usage))
        .routes(routes!(admin::export_usage))
        .routes(routes!(admin::daily_usage))
        .routes(routes!(admin::list_codes, admin::create_codes))
        .routes(routes!(admin::export_codes))
        .routes(routes!(admin::update_code))
        .routes(routes!(pay::admin_orders))
        .routes(routes!(pay::reconcile_order))
        .routes(routes!(
            payment_settings::get_payment_settings,
            payment_settings::update_payment_settings,
            payment_settings::reset_payment_settings
        ))
        .routes(routes!(coupons::create, coupons::list))
        .routes(routes!(coupons::update))
        .routes(routes!(statements::user))
        .routes(routes!(statements::mail_run))
        .routes(routes!(invoices::list_all))
        .routes(routes!(invoices::issue))
        .routes(routes!(invoices::reject))
        // Refunds and subscription plans.
        .routes(routes!(refunds::create_refund))
        .routes(routes!(refunds::list_refunds))
        .routes(routes!(refunds::reconcile_refund))
        .routes(routes!(plans::offered_plans))
        .routes(routes!(plans::buy_plan))
        .routes(routes!(plans::my_subscriptions))
        .routes(routes!(plans::update_subscription))
        .routes(routes!(plan_changes::preview_change))
        .routes(routes!(
            plan_changes::apply_change,
            plan_changes::cancel_change
        ))
        .routes(routes!(plans::list_plans, plans::create_plan))
        .routes(routes!(plans::update_plan))
        .routes(routes!(plans::list_subscriptions))
        .routes(routes!(plans::run_subscriptions))
        .with_state(service)
}

/// Parses an optional RFC 3339 bound of a time filter.
pub(crate) fn time_bound(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => rfc3339_to_ms(text).map(Some).ok_or_else(|| {
            ApiError::invalid_field(
                field,
                "Give times as RFC 3339, e.g. 2026-11-01T00:00:00Z.",
                "时间须为 RFC 3339 格式，例如 2026-11-01T00:00:00Z。",
            )
        }),
    }
}

/// The most rows a CSV export holds.
pub(crate) const EXPORT_LIMIT: i64 = 100_000;

/// A CSV download: the header line, then one line per row with each field quoted as needed.
pub(crate) fn csv_response(
    filename: &str,
    header: &str,
    rows: impl IntoIterator<Item = Vec<String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut out = format!("{header}\n");
    for row in rows {
        out.push_str(
            &row.iter()
                .map(|f| crate::query::csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    )
        .into_response()
}
