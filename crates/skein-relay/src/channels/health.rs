//! What the relay knows of a channel beyond its row: this instance's measurements of it and
//! whether its upstream balance is low. Kept here, under `channels`, so the channel view can
//! show both without `channels` reaching up into `routing` or `balance`, which use channels.

use serde::Serialize;
use utoipa::ToSchema;

/// A channel's measurements for the admin view.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChannelHealth {
    /// Average latency to the answer's first byte (ms), over recent requests on this instance.
    pub latency_ms: Option<f64>,
    /// Average time to a streamed answer's first token (ms), over recent streams on this
    /// instance that the first channel tried answered.
    pub ttft_ms: Option<f64>,
    /// Average error rate (0–1) over recent attempts on this instance.
    pub error_rate: f64,
    /// Attempts measured since this instance started.
    pub samples: u64,
    /// Whether the measurements are too old to route by (the channel is tried again).
    pub stale: bool,
    /// The same measurements per model asked of the channel, by model name. A model's own
    /// averages route its requests once it has a few samples; until then the channel's do.
    pub models: Vec<ModelHealth>,
}

/// One model's measurements on a channel, for the admin view.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelHealth {
    /// The model as requests name it (the route's name, before the channel's mapping).
    pub model: String,
    /// Average latency to the answer's first byte (ms).
    pub latency_ms: Option<f64>,
    /// Average time to a streamed answer's first token (ms).
    pub ttft_ms: Option<f64>,
    /// Average error rate (0–1).
    pub error_rate: f64,
    /// Attempts measured since this instance started.
    pub samples: u64,
    /// Whether the measurements are too old to route by.
    pub stale: bool,
}

/// Whether a balance of `amount` is under `threshold` (a threshold of 0 or none never is).
pub fn balance_is_low(amount: f64, threshold: Option<f64>) -> bool {
    threshold.is_some_and(|t| t > 0.0 && amount < t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balance_is_low_only_under_a_positive_threshold() {
        assert!(balance_is_low(4.0, Some(5.0)));
        assert!(!balance_is_low(6.0, Some(5.0)));
        assert!(!balance_is_low(0.0, Some(0.0)));
        assert!(!balance_is_low(0.0, None));
    }
}
