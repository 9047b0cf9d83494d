//! The two stores behind [`skein_core::limit::RateLimiter`].

pub mod memory;
pub mod redis;
