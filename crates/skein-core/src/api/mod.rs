//! The traits services reach each other through. In one process the trait object is the
//! service itself; split across processes it is an HTTP client of the service's internal API.
//!
//! One module per service that owns the trait; everything is re-exported here so callers
//! write `skein_core::api::BillingApi` whichever module it lives in.

mod agent;
mod audit;
mod billing;
mod file;
mod knowledge;
mod plugin;
mod relay;
mod settings;
mod user;

pub use agent::*;
pub use audit::*;
pub use billing::*;
pub use file::*;
pub use knowledge::*;
pub use plugin::*;
pub use relay::*;
pub use settings::*;
pub use user::*;
