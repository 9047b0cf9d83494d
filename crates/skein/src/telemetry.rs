//! Logging setup (human-readable lines by default, JSON with `SKEIN_LOG_FORMAT=json`) and,
//! when an OTLP endpoint is configured, distributed traces (see [`otlp`]).

pub mod otlp;

use skein_core::config::{LogConfig, LogFormat, TelemetryConfig};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber: the log lines, filtered by `RUST_LOG` or the configured
/// level, and the trace exporter when `telemetry` (or the `OTEL_*` environment) names an
/// endpoint. Traces have a filter of their own, so a quiet log level does not hide spans.
pub fn init(config: &LogConfig, telemetry: &TelemetryConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match config.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .compact()
            .with_filter(filter)
            .boxed(),
    };
    let traces = otlp::Exporter::from_config(telemetry).map(otlp::Exporter::start);
    let endpoint = traces.as_ref().map(|layer| layer.endpoint().to_string());
    let result = tracing_subscriber::registry()
        .with(logs)
        .with(traces.map(|layer| layer.with_filter(otlp::filter())))
        .try_init();
    match result {
        Ok(()) => {
            if let Some(endpoint) = endpoint {
                otlp::install_hook();
                tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
            }
        }
        Err(error) => eprintln!("logging already initialised: {error}"),
    }
}

/// Sends the spans still queued, waiting at most `limit` (at shutdown, so the last requests'
/// traces are not lost with the process).
pub fn flush(limit: std::time::Duration) {
    otlp::flush(limit);
}
