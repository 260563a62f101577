//! The `otel` feature: the spans of [`crate::observe`] exported to an
//! OpenTelemetry collector over OTLP/HTTP, with the W3C ids the peers see.
//!
//! [`layer`] is a `tracing-subscriber` layer (`tracing-opentelemetry`) whose
//! spans go to the collector at `$OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4318`). With it installed, each `rpc.call` and
//! `rpc.serve` span takes its trace and span ids from OpenTelemetry (a
//! continued trace its parent from the incoming `traceparent`), and those
//! are the ids sent on, so the collector's parent links match across processes.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

use super::TraceContext;

/// A layer exporting spans as `service_name` (OTLP/HTTP, batched on a
/// thread of its own), and the provider to [shut down](SdkTracerProvider::shutdown)
/// before the process exits, so the last spans are sent.
pub fn layer<S>(
    service_name: &str,
) -> Result<(impl tracing_subscriber::Layer<S> + use<S>, SdkTracerProvider), opentelemetry_otlp::ExporterBuildError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_string())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    Ok((with_provider(&provider), provider))
}

/// A layer exporting spans through `provider` (your own exporter and processors).
pub fn with_provider<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S> + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("rpc"))
}

/// Makes `context` the ids OpenTelemetry gave `span` (a child of `parent`
/// when a trace came in); nothing when no OpenTelemetry layer records it.
pub(super) fn align(span: &Span, parent: Option<&TraceContext>, context: &mut TraceContext) {
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id.to_be_bytes()),
            SpanId::from_bytes(parent.span_id.to_be_bytes()),
            if parent.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    if ids.is_valid() {
        context.trace_id = u128::from_be_bytes(ids.trace_id().to_bytes());
        context.span_id = u64::from_be_bytes(ids.span_id().to_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use rpc_core::{Invocation, Serialization, ServiceKey};
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    use super::super::trace::{TRACEPARENT, in_request, start_call, start_serve};
    use super::*;

    /// Keeps what it is given.
    #[derive(Clone, Debug, Default)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Kept {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn invocation() -> Invocation {
        let key = ServiceKey::new("org.example.Greeter", None, None);
        Invocation::new(key, "sayHello", Default::default(), Serialization::default())
    }

    #[tokio::test]
    async fn exported_spans_carry_the_ids_sent_on_the_wire() {
        let kept = Kept::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(kept.clone()).build();
        let subscriber = tracing_subscriber::registry().with(with_provider(&provider));
        let _default = tracing::subscriber::set_default(subscriber);

        let mut request = invocation();
        request.set_attachment(TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let (serve_span, served) = start_serve(&request).unwrap();
        let served_id = served.span_id;
        let (call_span, nested) = in_request(served, async {
            let mut call = invocation();
            let (span, _) = start_call(&mut call).unwrap();
            (span, call)
        })
        .instrument(serve_span.clone())
        .await;
        let sent = TraceContext::parse(nested.attachment(TRACEPARENT).unwrap()).unwrap();
        drop(call_span);
        drop(serve_span);
        let spans = kept.0.lock().unwrap().clone();
        let hex = |id: SpanId| u64::from_be_bytes(id.to_bytes());
        let serve = spans
            .iter()
            .find(|s| s.name == "rpc.serve")
            .expect("the serve span is exported");
        let call = spans
            .iter()
            .find(|s| s.name == "rpc.call")
            .expect("the call span is exported");
        // The serve span continues the caller's trace under the caller's span…
        assert_eq!(
            u128::from_be_bytes(serve.span_context.trace_id().to_bytes()),
            0x4bf92f3577b34da6a3ce929d0e0e4736
        );
        assert_eq!(hex(serve.parent_span_id), 0x00f067aa0ba902b7);
        assert_eq!(hex(serve.span_context.span_id()), served_id);
        // …and the nested call's exported span is the one its traceparent names.
        assert_eq!(hex(call.parent_span_id), served_id);
        assert_eq!(hex(call.span_context.span_id()), sent.span_id);
        assert_eq!(
            u128::from_be_bytes(call.span_context.trace_id().to_bytes()),
            sent.trace_id
        );
    }
}
