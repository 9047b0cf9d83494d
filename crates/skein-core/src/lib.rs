//! What every Skein service shares: configuration, the API error envelope, ids and time,
//! authentication primitives, pagination, and the traits services use to reach each other.
//!
//! Nothing here knows about a particular service's tables; services depend on this crate,
//! never on each other.

pub mod api;
pub mod auth;
pub mod bus;
pub mod config;
pub mod csv;
pub mod error;
pub mod extract;
pub mod i18n;
pub mod ids;
pub mod internal;
pub mod limit;
pub mod metrics;
pub mod net;
pub mod page;
pub mod principal;
pub mod request;
pub mod runtime;
pub mod seal;
pub mod secret;
pub mod service;
pub mod trace;

pub use error::{ApiError, ApiResult};
