//! Trace context: W3C `traceparent`/`tracestate`, carried in attachments.
//!
//! A consumer call made while a provider request is being served (in the
//! same task: the handler's future, or futures it awaits) continues that
//! request's trace; any other call starts a trace. The context travels in
//! the `traceparent` and `tracestate` attachments, which `rpc` and `dubbo`
//! send as attachments and `tri` as HTTP headers of the same names, so
//! OpenTelemetry-instrumented peers (Java Dubbo with its tracing module, gRPC)
//! join the same trace.
//!
//! A call or request is traced (a span made, the context sent) when a
//! `tracing` subscriber wants its span, or when it continues a trace that
//! came in: a process without a subscriber still passes a trace on.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rpc_core::Invocation;
use tracing::Span;
use tracing::field::Empty;

/// The attachment (and `tri` header) carrying the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// The attachment (and `tri` header) carrying the W3C trace state.
pub const TRACESTATE: &str = "tracestate";

/// Where a call or request sits in a trace: its trace id, its own span id,
/// whether the trace is sampled, and the vendors' `tracestate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace's id (never zero).
    pub trace_id: u128,
    /// The span's id (never zero).
    pub span_id: u64,
    /// The `sampled` flag of `traceparent`.
    pub sampled: bool,
    /// The `tracestate` that came with it, passed on unchanged.
    pub tracestate: Option<Arc<str>>,
}

impl TraceContext {
    /// A new trace's first span.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: nonzero_u128(),
            span_id: nonzero_u64(),
            sampled: true,
            tracestate: None,
        }
    }

    /// A new span of the same trace, a child of this one.
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: nonzero_u64(),
            ..self.clone()
        }
    }

    /// Reads a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`, W3C
    /// Trace Context level 1). `None` for anything else, all-zero ids and
    /// version `ff` included, as the specification says: such a request
    /// starts a new trace.
    pub fn parse(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version.eq_ignore_ascii_case("ff") || !is_hex(version) {
            return None;
        }
        // Version 00 has exactly four fields; later versions may add some.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace.len() != 32
            || span.len() != 16
            || flags.len() != 2
            || !is_hex(trace)
            || !is_hex(span)
            || !is_hex(flags)
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            tracestate: None,
        })
    }

    /// This context as a `traceparent` value.
    pub fn traceparent(&self) -> String {
        let mut text = String::with_capacity(55);
        let _ = write!(
            text,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        );
        text
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The context of the provider request being served by this task, if any.
    pub fn current() -> Option<TraceContext> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn nonzero_u64() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return id;
        }
    }
}

tokio::task_local! {
    /// The request a provider is serving, for the calls its handler makes.
    static CURRENT: TraceContext;
    /// The consumer call in progress, for its attempts.
    static CALL: CallScope;
}

/// What a consumer call's attempts record on its span.
pub(crate) struct CallScope {
    span: Span,
    attempts: AtomicU32,
}

/// Starts tracing a consumer call: its span (`rpc.call`) and context, sent
/// with the invocation. `None` when nobody wants the span and no trace came in.
pub(crate) fn start_call(invocation: &mut Invocation) -> Option<(Span, CallScope)> {
    let parent = TraceContext::current();
    let span = tracing::info_span!(
        "rpc.call",
        otel.kind = "client",
        service = %invocation.service(),
        method = invocation.method(),
        trace_id = Empty,
        span_id = Empty,
        parent_id = Empty,
        attempts = Empty,
        provider = Empty,
        outcome = Empty,
    );
    if span.is_disabled() && parent.is_none() {
        return None;
    }
    #[allow(unused_mut)]
    let mut context = match &parent {
        Some(parent) => {
            span.record("parent_id", parent.span_id_hex());
            parent.child()
        }
        None => TraceContext::new_root(),
    };
    #[cfg(feature = "otel")]
    super::otel::align(&span, parent.as_ref(), &mut context);
    span.record("trace_id", context.trace_id_hex());
    span.record("span_id", context.span_id_hex());
    invocation.set_attachment(TRACEPARENT, context.traceparent());
    if let Some(state) = &context.tracestate {
        invocation.set_attachment(TRACESTATE, state.to_string());
    }
    let scope = CallScope {
        span: span.clone(),
        attempts: AtomicU32::new(0),
    };
    Some((span, scope))
}

/// Runs `future` as the consumer call of `scope`.
pub(crate) async fn in_call<F: Future>(scope: CallScope, future: F) -> F::Output {
    CALL.scope(scope, future).await
}

/// Notes an attempt of the call in progress (if traced): its number and provider.
pub(crate) fn note_attempt(invocation: &Invocation) {
    let _ = CALL.try_with(|scope| {
        let attempt = scope.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        scope.span.record("attempts", attempt);
        if let Some(provider) = invocation.provider() {
            scope.span.record("provider", provider.address());
        }
    });
}

/// Starts tracing a provider request: its span (`rpc.serve`) and context,
/// continuing the caller's trace. `None` when nobody wants the span and no
/// trace came in.
pub(crate) fn start_serve(invocation: &Invocation) -> Option<(Span, TraceContext)> {
    let parent = invocation.attachment(TRACEPARENT).and_then(TraceContext::parse);
    let span = tracing::info_span!(
        "rpc.serve",
        otel.kind = "server",
        service = %invocation.service(),
        method = invocation.method(),
        trace_id = Empty,
        span_id = Empty,
        parent_id = Empty,
        remote = Empty,
        outcome = Empty,
    );
    if span.is_disabled() && parent.is_none() {
        return None;
    }
    #[allow(unused_mut)]
    let mut context = match &parent {
        Some(parent) => {
            span.record("parent_id", parent.span_id_hex());
            let mut child = parent.child();
            child.tracestate = invocation.attachment(TRACESTATE).map(Arc::from);
            child
        }
        None => TraceContext::new_root(),
    };
    #[cfg(feature = "otel")]
    super::otel::align(&span, parent.as_ref(), &mut context);
    span.record("trace_id", context.trace_id_hex());
    span.record("span_id", context.span_id_hex());
    if let Some(remote) = invocation.remote_address() {
        span.record("remote", tracing::field::display(remote));
    }
    Some((span, context))
}

/// Runs `future` as the provider request of `context`: calls it makes continue the trace.
pub(crate) async fn in_request<F: Future>(context: TraceContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_what_the_spec_rejects() {
        let context = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(context.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(context.span_id, 0x00f067aa0ba902b7);
        assert!(context.sampled);
        assert_eq!(
            context.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xbf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        let child = context.child();
        assert_eq!(child.trace_id, context.trace_id);
        assert_ne!(child.span_id, context.span_id);
    }

    fn invocation() -> Invocation {
        let key = rpc_core::ServiceKey::new("org.example.Greeter", None, None);
        Invocation::new(key, "sayHello", Default::default(), rpc_core::Serialization::default())
    }

    #[tokio::test]
    async fn a_call_made_while_serving_continues_the_request_trace_and_its_tracestate() {
        let mut request = invocation();
        request.set_attachment(TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        request.set_attachment(TRACESTATE, "vendor=abc");
        // No subscriber: a trace that came in is still passed on.
        let (_, served) = start_serve(&request).expect("an incoming trace is continued");
        assert_eq!(served.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_ne!(served.span_id, 0x00f067aa0ba902b7);
        let served_span = served.span_id;
        let nested = in_request(served, async {
            let mut call = invocation();
            start_call(&mut call).expect("a call inside a traced request is traced");
            call
        })
        .await;
        let sent = TraceContext::parse(nested.attachment(TRACEPARENT).unwrap()).unwrap();
        assert_eq!(sent.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_ne!(sent.span_id, served_span, "the nested call is a span of its own");
        assert_eq!(nested.attachment(TRACESTATE), Some("vendor=abc"));
    }
}
