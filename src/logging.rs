//! Logs and traces of the `marquee` binary.
//!
//! Logs go to standard error: one JSON object per line when it is not a terminal (a service
//! manager, a container, a file), readable text on a terminal; `--log-format` overrides.
//! `MARQUEE_LOG` is the filter (`info,hnsw_rs=warn` by default; `debug` adds one line per HTTP
//! response). Every request runs in a `request` span holding its `request_id` (the client's
//! `x-request-id`, or a new UUID returned in that header), so every line logged while serving it
//! carries the id.
//!
//! Traces: with `--otlp-endpoint http://HOST:4318` (or `MARQUEE_OTLP_ENDPOINT`), the same spans
//! are exported over OTLP/HTTP (protobuf) to `HOST:4318/v1/traces`, as service `marquee`, in
//! batches from a background thread. The exporter's standard `OTEL_EXPORTER_OTLP_*` variables
//! (headers, timeout) apply. Without an endpoint nothing is exported and nothing is linked in
//! at run time beyond the subscriber.

use anyhow::{Context, Result};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when standard error is not a terminal, text when it is.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of the current spans.
    Json,
}

/// What must be flushed at exit. Dropping it without [`Telemetry::shutdown`] loses the last
/// batch of spans.
#[derive(Debug)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued; call after the async runtime has stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(error) = provider.shutdown()
        {
            eprintln!("flushing traces: {error}");
        }
    }
}

/// Installs the global subscriber: the log filter, the log format and, with an endpoint, the
/// OTLP trace exporter. Call once, before the async runtime starts.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Telemetry> {
    let filter =
        || EnvFilter::try_from_env("MARQUEE_LOG").unwrap_or_else(|_| "info,hnsw_rs=warn".into());
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = match format {
        LogFormat::Auto => !terminal,
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(terminal)
            .with_filter(filter())
            .boxed()
    };
    let (traces, provider) = match otlp_endpoint {
        Some(endpoint) => {
            let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url.clone())
                .build()
                .with_context(|| format!("--otlp-endpoint: cannot export to {url}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("marquee").build())
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("marquee"))
                .with_filter(filter());
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(Telemetry { traces: provider })
}
