//! Traces over OTLP (HTTP/protobuf): the process's spans that carry an `otel.name` (the HTTP
//! request, the engine's purchase, each backend call, the worker's batch and each order's
//! insert) go to an OpenTelemetry collector, and the W3C trace context travels with each order
//! event ([`nexussale_core::trace`]), so a purchase and the insert of its order, in another
//! process, are one trace.
//!
//! Configured by `--otlp-endpoint` / `OTEL_EXPORTER_OTLP_ENDPOINT` and OpenTelemetry's own
//! variables (`OTEL_SERVICE_NAME`, default `nexussale`; `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG`; `OTEL_EXPORTER_OTLP_HEADERS`; `OTEL_BSP_*`). Off when unset: no
//! layer, and the spans, at `TRACE` level, are never built.
//!
//! Export is batched on its own thread into a bounded queue (2,048 spans; beyond, spans are
//! dropped): a slow or dead collector never holds up a request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use nexussale_core::trace::{Propagation, Start, TraceParent};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// How long one export may take (OTLP's default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits to send what is still queued.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest collector answer read.
const MAX_ANSWER: usize = 1 << 20;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The running exporter: flushes what it holds (up to a few seconds) when dropped. Keep it
/// until the process ends.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::debug!(error = %err, "trace exporter shutdown");
        }
    }
}

impl Traces {
    /// Starts exporting to the collector at `endpoint` (`http(s)://host:port`, spans posted to
    /// `/v1/traces` under it; an endpoint already ending in `/v1/traces` is taken as it is), and
    /// installs the trace-context propagation. Answers the exporter and the layer to add to the
    /// process's subscriber. Needs a tokio runtime (the exports run on it).
    pub fn start<S>(endpoint: &str) -> Result<(Self, impl Layer<S> + Send + Sync), String>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "traces need a tokio runtime".to_owned())?;
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        };
        let url: http::Uri = url
            .parse()
            .map_err(|err| format!("--otlp-endpoint {endpoint:?} is not a URL: {err}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.to_string())
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(Client::new(runtime)?)
            .build()
            .map_err(|err| format!("cannot build the OTLP exporter: {err}"))?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("nexussale");
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        // Sampled as each trace starts, before any span is built (see `sample`): what reaches
        // the SDK is to be recorded, unless a remote parent says otherwise.
        let ratio = ratio_from_env()?;
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("nexussale");
        // The exporter sees the spans with an `otel.name` only; every other callsite (the
        // `TRACE` events of hyper, sqlx, …) is never asked again.
        let exported = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_location(false)
            .with_filter(tracing_subscriber::filter::filter_fn(traced));
        nexussale_core::trace::install(OtelPropagation);
        ENABLED.store(true, Ordering::Relaxed);
        Ok((Self { provider }, Sampling { ratio }.and_then(exported)))
    }
}

/// Whether `metadata` is a span the exporter records: one with an `otel.name`.
fn traced(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span() && metadata.fields().field("otel.name").is_some()
}

/// Decides, as each traced span is made, whether it exists at all: inside a recorded trace, or
/// where a trace starts and is sampled ([`sample`]). A layer of its own, not a per-layer
/// filter: a per-layer filter that refuses a span still lets the registry build it (and every
/// poll of its future enter it) — the cost of tracing for the requests it leaves out
/// (docs/BENCHMARKS.md). Every other callsite it leaves to the other layers.
#[derive(Debug, Clone, Copy)]
struct Sampling {
    ratio: f64,
}

impl<S> Layer<S> for Sampling
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if traced(metadata) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        context: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if !traced(metadata) {
            return true;
        }
        // Only recorded traced spans exist, so a traced one around the current span is part of
        // a recorded trace.
        let inside = context
            .lookup_current()
            .is_some_and(|current| current.scope().any(|span| traced(span.metadata())));
        inside || sample(self.ratio)
    }
}

/// Whether a span made outside any recorded one is recorded: only where a trace starts
/// ([`trace::root`](nexussale_core::trace::root)), as its remote parents decided, else with
/// probability `ratio`.
fn sample(ratio: f64) -> bool {
    match nexussale_core::trace::starting() {
        Start::Inside => false,
        Start::Remote { sampled } => sampled,
        Start::Fresh => ratio >= 1.0 || (ratio > 0.0 && fastrand::f64() < ratio),
    }
}

/// The share of traces started here that are recorded, from `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG` as OpenTelemetry defines them (default: all). The `parentbased_`
/// forms and their plain ones differ only for a remote parent, which is always followed here.
fn ratio_from_env() -> Result<f64, String> {
    let sampler = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    let ratio = || -> Result<f64, String> {
        let Ok(arg) = std::env::var("OTEL_TRACES_SAMPLER_ARG") else {
            return Ok(1.0);
        };
        match arg.trim().parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            _ => Err(format!(
                "OTEL_TRACES_SAMPLER_ARG={arg:?} is not a ratio from 0 to 1"
            )),
        }
    };
    match sampler.trim() {
        "" | "always_on" | "parentbased_always_on" => Ok(1.0),
        "always_off" | "parentbased_always_off" => Ok(0.0),
        "traceidratio" | "parentbased_traceidratio" => ratio(),
        other => Err(format!(
            "OTEL_TRACES_SAMPLER={other:?} is not one of always_on, always_off, traceidratio \
             (or their parentbased_ forms)"
        )),
    }
}

/// Names `span` (already started: `otel.name` recorded now would be ignored).
pub(crate) fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

/// The current span's OpenTelemetry context as a `traceparent`, and back.
#[derive(Debug)]
struct OtelPropagation;

impl Propagation for OtelPropagation {
    fn current(&self) -> Option<TraceParent> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let span = span.span_context();
        if !span.is_valid() {
            return None;
        }
        TraceParent::parse(&format!(
            "00-{}-{}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.trace_flags().to_u8()
        ))
    }

    fn follow(&self, span: &tracing::Span, parent: &TraceParent) {
        if let Some(remote) = remote(parent) {
            let context = opentelemetry::Context::new().with_remote_span_context(remote);
            let _ = span.set_parent(context);
        }
    }

    fn link(&self, span: &tracing::Span, linked: &TraceParent) {
        if let Some(remote) = remote(linked) {
            span.add_link(remote);
        }
    }
}

/// The span context a `traceparent` names.
fn remote(parent: &TraceParent) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(parent.trace_id()).ok()?;
    let span_id = SpanId::from_hex(parent.span_id()).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(parent.flags()),
        true,
        TraceState::default(),
    ))
}

/// The exporter's HTTP client: hyper on the server's runtime. The batch processor calls it from
/// its own thread, outside any runtime, so each export is spawned onto the runtime and awaited.
#[derive(Debug, Clone)]
struct Client {
    runtime: tokio::runtime::Handle,
    inner: hyper_util::client::legacy::Client<crate::https_client::HttpsConnector, Full<Bytes>>,
}

impl Client {
    fn new(runtime: tokio::runtime::Handle) -> Result<Self, String> {
        let inner = crate::https_client::build()?;
        Ok(Self { runtime, inner })
    }
}

#[async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = self.inner.clone();
        let export = async move {
            let answer = inner.request(request.map(Full::new)).await?;
            let (parts, body) = answer.into_parts();
            let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let task = self
            .runtime
            .spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, export).await });
        match task.await? {
            Ok(answer) => answer,
            Err(_) => Err(format!("the collector did not answer within {EXPORT_TIMEOUT:?}").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// A layer that records nothing, behind the exporter's filter, as the exporter sits.
    struct Nothing;
    impl<S: Subscriber> Layer<S> for Nothing {}

    fn spans_built(ratio: f64) -> (bool, bool, bool) {
        let subscriber = tracing_subscriber::registry().with(
            Sampling { ratio }
                .and_then(Nothing.with_filter(tracing_subscriber::filter::filter_fn(traced))),
        );
        tracing::subscriber::with_default(subscriber, || {
            let root =
                nexussale_core::trace::root(None, || tracing::trace_span!("r", otel.name = "r"));
            let child = root.in_scope(|| tracing::trace_span!("c", otel.name = "c"));
            let stray = tracing::trace_span!("s", otel.name = "s");
            (
                !root.is_disabled(),
                !child.is_disabled(),
                !stray.is_disabled(),
            )
        })
    }

    /// A span the sampler leaves out is not built at all (a per-layer filter refusing it still
    /// let the registry build it, and every poll enter it: an eighth of the purchase rate at
    /// 1 % sampling); a sampled trace's spans are, and nothing outside a trace's start is.
    #[test]
    fn unsampled_spans_are_never_built() {
        assert_eq!(spans_built(0.0), (false, false, false));
        assert_eq!(spans_built(1.0), (true, true, false));
    }
}
