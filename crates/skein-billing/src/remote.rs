//! Billing as a process that does not run it reaches it: an HTTP client of
//! `/internal/billing/*` implementing [`BillingApi`].

use async_trait::async_trait;
use serde::Serialize;
use skein_core::ApiError;
use skein_core::api::{BillingApi, Entitlements, Reservation, ReserveRequest, Settlement, Usage};
use skein_core::internal::InternalClient;

/// The `BillingApi` of a Billing service in another process.
#[derive(Debug, Clone)]
pub struct RemoteBilling(pub InternalClient);

#[derive(Serialize)]
struct ReserveBody<'a> {
    user_id: &'a str,
    key_id: Option<&'a str>,
    key_limit: Option<i64>,
    amount: i64,
    min_amount: i64,
    reference: &'a str,
}

#[derive(Serialize)]
struct SettleBody<'a> {
    reservation_id: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct HoldBody<'a> {
    reservation_id: &'a str,
}

#[derive(Serialize)]
struct UserBody<'a> {
    user_id: &'a str,
}

#[async_trait]
impl BillingApi for RemoteBilling {
    async fn reserve(&self, request: ReserveRequest) -> Result<Reservation, ApiError> {
        let body = ReserveBody {
            user_id: &request.user_id,
            key_id: request.key.as_ref().map(|k| k.key_id.as_str()),
            key_limit: request.key.as_ref().and_then(|k| k.limit),
            amount: request.amount,
            min_amount: request.min_amount,
            reference: &request.reference,
        };
        self.0.call("/internal/billing/reserve", &body).await
    }

    async fn settle(&self, reservation_id: &str, usage: Usage) -> Result<Settlement, ApiError> {
        let body = SettleBody {
            reservation_id,
            usage,
        };
        self.0.call("/internal/billing/settle", &body).await
    }

    async fn renew(&self, reservation_id: &str) -> Result<(), ApiError> {
        self.0
            .notify("/internal/billing/renew", &HoldBody { reservation_id })
            .await
    }

    async fn release(&self, reservation_id: &str) -> Result<(), ApiError> {
        self.0
            .notify("/internal/billing/release", &HoldBody { reservation_id })
            .await
    }

    async fn entitlements(&self, user_id: &str) -> Result<Entitlements, ApiError> {
        self.0
            .call("/internal/billing/entitlements", &UserBody { user_id })
            .await
    }
}
