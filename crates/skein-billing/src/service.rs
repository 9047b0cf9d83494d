//! The Billing service as the binary composes it.

use std::sync::Arc;

use skein_core::service::{BackgroundTasks, Service, ServiceName, tag};
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::BillingService;

impl Service for BillingService {
    fn name(&self) -> ServiceName {
        ServiceName::Billing
    }

    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        crate::http::routes(self)
    }

    fn api_tags(&self) -> Vec<Tag> {
        vec![
            tag(
                "billing",
                "The signed-in user's quota, ledger, usage and redemption",
            ),
            tag(
                "payments",
                "Top-up orders paid through EPay or Stripe, and the providers' notifications",
            ),
            tag(
                "subscriptions",
                "Subscription plans on offer, buying or renewing one, and the caller's subscriptions",
            ),
            tag(
                "admin-billing",
                "Balances, usage and redemption codes of everyone (admin)",
            ),
        ]
    }

    /// `BillingApi` for Relay and Chat in other processes, and the account events that grant
    /// quota when the User service runs elsewhere.
    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self.clone()).merge(
            skein_core::internal::account_events_routes(ServiceName::Billing, self),
        )
    }

    fn background(&self) -> Option<&BackgroundTasks> {
        Some(&self.tasks)
    }
}
