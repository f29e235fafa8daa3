//! Logging and tracing set-up shared by every binary, OTLP trace export, and W3C trace-context
//! propagation (`traceparent`).
//!
//! Export is off unless `telemetry.otlp_endpoint` is set. Then spans go, through the
//! OpenTelemetry SDK's batch processor (its own thread), to `<endpoint>/v1/traces` as OTLP over
//! HTTP, and the process continues traces across its edges: the ingress request span takes the
//! caller's `traceparent`, every job carries the `traceparent` of the span that enqueued it (so
//! its job span continues that trace in whichever process runs it), and every upstream call sends
//! the `traceparent` of its own span. When export is off none of these spans is created and no
//! header is sent: logging is exactly as without this module.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings, OtlpProtocol, TelemetrySettings};

/// Bound on one export request to the collector.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the final flush at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Set once a subscriber with the OpenTelemetry layer is installed in this process.
static EXPORTING: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// The installed telemetry. Keep it until the process ends and call [`Telemetry::shutdown`] then,
/// so that the spans of the last seconds reach the collector.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends every finished span not yet exported, and waits for the collector's answer
    /// (blocking: from async code, call it through `spawn_blocking`).
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "could not flush spans to the OTLP collector");
        }
    }

    /// Flushes and stops the exporter, waiting at most 5 s (blocking, like [`Telemetry::flush`]).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            EXPORTING.store(false, Ordering::SeqCst);
            if let Err(e) = p.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                eprintln!("rmm-sync: could not flush spans to the OTLP collector: {e}");
            }
        }
    }
}

/// Whether this process exports spans (a subscriber with the OpenTelemetry layer is installed).
/// The spans that exist only for traces (ingress requests, upstream calls) are made only then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs the global `tracing` subscriber: logs on stderr as `log` says (`RUST_LOG` overrides the level;
/// stdout is left to what a command prints),
/// plus, when `telemetry.otlp_endpoint` is set, the OpenTelemetry layer exporting spans.
/// Calling it twice is harmless (the second call installs nothing and exports nothing).
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let Some(provider) = tracer_provider(telemetry)? else {
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_writer(std::io::stderr);
        let _ = match log.format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        return Ok(Telemetry::default());
    };
    let fmt = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(true).with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .boxed(),
    };
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("rmm-sync"))
        .with_filter(EnvFilter::new(&telemetry.level));
    let installed = tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).try_init().is_ok();
    if !installed {
        let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        return Ok(Telemetry::default());
    }
    EXPORTING.store(true, Ordering::SeqCst);
    tracing::info!(
        endpoint = %crate::config::redact_url(telemetry.endpoint().unwrap_or_default()),
        protocol = ?telemetry.otlp_protocol,
        "exporting traces over OTLP"
    );
    Ok(Telemetry { provider: Some(provider) })
}

/// The tracer provider exporting to `telemetry.otlp_endpoint`; `None` (and nothing built) when
/// no endpoint is set.
pub fn tracer_provider(telemetry: &TelemetrySettings) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let Some(url) = telemetry.traces_url() else { return Ok(None) };
    let protocol = match telemetry.otlp_protocol {
        OtlpProtocol::HttpJson => Protocol::HttpJson,
        OtlpProtocol::HttpProtobuf | OtlpProtocol::Grpc => Protocol::HttpBinary,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .with_protocol(protocol)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Exporter { endpoint: crate::config::redact_url(&url), reason: e.to_string() })?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(telemetry.sample_ratio))))
        .with_resource(resource)
        .build();
    Ok(Some(provider))
}

/// The W3C `traceparent` of `span` (`00-<trace id>-<span id>-<flags>`), when it is exported.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    Some(format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// The `traceparent` of the current span (see [`traceparent`]).
pub fn current_traceparent() -> Option<String> {
    traceparent(&tracing::Span::current())
}

/// Makes `span` (not yet entered) a child of the remote span a `traceparent` (and `tracestate`)
/// names. Does nothing for a missing or malformed `traceparent`, or when spans are not exported.
/// Returns whether the parent was set.
pub fn set_remote_parent(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) -> bool {
    let Some(tp) = traceparent.map(str::trim).filter(|t| !t.is_empty()) else { return false };
    if !exporting() {
        return false;
    }
    let mut carrier = HashMap::from([("traceparent".to_owned(), tp.to_owned())]);
    if let Some(ts) = tracestate.map(str::trim).filter(|t| !t.is_empty()) {
        carrier.insert("tracestate".to_owned(), ts.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if !cx.span().span_context().is_valid() {
        return false;
    }
    span.set_parent(cx).is_ok()
}

/// The `traceparent` (and `tracestate`, when there is one) headers to send with a request made
/// inside `span`; empty when spans are not exported.
pub fn propagation_headers(span: &tracing::Span) -> Vec<(&'static str, String)> {
    if !exporting() {
        return Vec::new();
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| carrier.remove(name).filter(|v| !v.is_empty()).map(|v| (name, v)))
        .collect()
}

/// Marks `span` as failed (OpenTelemetry status `Error`) with a short description.
pub fn mark_error(span: &tracing::Span, description: impl Into<String>) {
    if exporting() {
        span.set_status(opentelemetry::trace::Status::error(description.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_endpoint_builds_no_exporter() {
        let off = TelemetrySettings::default();
        assert!(tracer_provider(&off).unwrap().is_none());
        let blank = TelemetrySettings { otlp_endpoint: Some("  ".into()), ..TelemetrySettings::default() };
        assert!(tracer_provider(&blank).unwrap().is_none());
        let on =
            TelemetrySettings { otlp_endpoint: Some("http://127.0.0.1:9/".into()), ..TelemetrySettings::default() };
        let provider = tracer_provider(&on).unwrap().expect("an endpoint builds an exporter");
        provider.shutdown_with_timeout(Duration::from_secs(2)).ok();
    }

    #[test]
    fn nothing_is_propagated_while_spans_are_not_exported() {
        let span = tracing::info_span!("x");
        assert_eq!(traceparent(&span), None);
        assert!(propagation_headers(&span).is_empty());
        assert!(!set_remote_parent(&span, Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), None));
    }
}
