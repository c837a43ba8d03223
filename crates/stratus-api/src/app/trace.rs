//! The trace a change belongs to, kept with the instance it changes.
//!
//! When traces are exported, every request runs in a span; the instance it creates or changes
//! records that span's W3C `traceparent` and the request id, and the host's agent starts its
//! work on that change as a child of it. One trace then shows a create from the API through
//! the store to the driver step that booted the guest, across processes.

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C `traceparent` of the current span, when it belongs to an exported trace.
pub(crate) fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span = span.span_context();
    span.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.trace_flags().to_u8()
        )
    })
}
