//! Trace context across the order queue: a purchase's trace continues in the worker that
//! persists its order, in another process, through a W3C `traceparent` carried with the event.
//!
//! The core records its spans through `tracing` (level `TRACE`, each with an `otel.name`:
//! nothing is recorded unless a subscriber asks for them) and knows no exporter. What turns the
//! current span into a `traceparent` and back is a [`Propagation`] the program installs once
//! (the server's, over OpenTelemetry, when `--otlp-endpoint` is set); without one, nothing is
//! carried and it costs one atomic load per event.
//!
//! A queue adapter carries [`current`] with each event it publishes (Kafka: the `traceparent`
//! header) and hands it back in [`Delivery::trace`](crate::Delivery::trace); the worker then
//! makes each order's insert a child of its purchase's span, and links the batch to each.

use std::fmt;
use std::sync::OnceLock;

/// A W3C trace context header value: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`
/// (<https://www.w3.org/TR/trace-context/#traceparent-header>), checked on the way in.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceParent(Box<str>);

impl TraceParent {
    /// The header value, if it is a well-formed version-00 `traceparent` with non-zero ids.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        let hex = |range: std::ops::Range<usize>| {
            bytes[range]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        };
        let zero = |range: std::ops::Range<usize>| bytes[range].iter().all(|b| *b == b'0');
        let well_formed = bytes.len() == 55
            && &bytes[..3] == b"00-"
            && bytes[35] == b'-'
            && bytes[52] == b'-'
            && hex(3..35)
            && hex(36..52)
            && hex(53..55)
            && !zero(3..35)
            && !zero(36..52);
        well_formed.then(|| Self(value.into()))
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    /// The parent span's id, 16 hex digits.
    pub fn span_id(&self) -> &str {
        &self.0[36..52]
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        // Two hex digits, checked by `parse`.
        u8::from_str_radix(&self.0[53..55], 16).unwrap_or(0)
    }

    /// Whether the caller sampled the trace (its `sampled` flag).
    pub fn sampled(&self) -> bool {
        self.flags() & 1 == 1
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Turns `tracing` spans into trace contexts and back: the bridge to whatever exports the
/// spans (the server's is OpenTelemetry's, through `tracing-opentelemetry`).
///
/// # Contract
///
/// - [`current`](Propagation::current) answers the context of the current span, or `None`
///   when there is none (or it is not recorded).
/// - [`follow`](Propagation::follow) makes `span` a child of `parent`; it is called before
///   the span is first entered. [`link`](Propagation::link) adds a link to `linked`.
/// - All three are cheap and never block: they run on the purchase and worker paths.
///
/// ```
/// use nexussale_core::trace::{Propagation, TraceParent};
///
/// /// Propagates nothing (what the core does with none installed).
/// #[derive(Debug)]
/// struct Nothing;
///
/// impl Propagation for Nothing {
///     fn current(&self) -> Option<TraceParent> {
///         None
///     }
///     fn follow(&self, _: &tracing::Span, _: &TraceParent) {}
///     fn link(&self, _: &tracing::Span, _: &TraceParent) {}
/// }
///
/// assert!(nexussale_core::trace::install(Nothing));
/// assert!(nexussale_core::trace::current().is_none());
/// ```
pub trait Propagation: Send + Sync + fmt::Debug + 'static {
    /// The current span's context.
    fn current(&self) -> Option<TraceParent>;
    /// Makes `span` a child of `parent`.
    fn follow(&self, span: &tracing::Span, parent: &TraceParent);
    /// Links `span` to `linked`.
    fn link(&self, span: &tracing::Span, linked: &TraceParent);
}

static INSTALLED: OnceLock<Box<dyn Propagation>> = OnceLock::new();

/// Installs the process's propagation; answers false (and changes nothing) when one is already
/// installed.
pub fn install(propagation: impl Propagation) -> bool {
    INSTALLED.set(Box::new(propagation)).is_ok()
}

/// The current span's context, through the installed [`Propagation`]; `None` without one.
pub fn current() -> Option<TraceParent> {
    INSTALLED.get()?.current()
}

/// Makes `span` a child of `parent` (nothing without an installed [`Propagation`]).
pub fn follow(span: &tracing::Span, parent: &TraceParent) {
    if let Some(propagation) = INSTALLED.get()
        && !span.is_disabled()
    {
        propagation.follow(span, parent);
    }
}

/// What [`root`] says of the span being made, for a sampler ([`starting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Not made by [`root`]: the span joins the current trace, if any, and starts none.
    Inside,
    /// A trace starts here, no remote parent: the sampler decides alone.
    Fresh,
    /// A trace continues here from remote parents.
    Remote {
        /// Whether any remote parent was sampled.
        sampled: bool,
    },
}

std::thread_local! {
    static STARTING: std::cell::Cell<Start> = const { std::cell::Cell::new(Start::Inside) };
}

/// Makes a span that starts (or continues from another process) a trace here: `make`, with
/// `parents` the trace contexts it will follow or link to. A subscriber that samples as traces
/// start (the server's exporter) reads [`starting`] while the span is made, so that a trace not
/// sampled costs no span at all, here or downstream.
pub fn root<'a>(
    parents: impl IntoIterator<Item = &'a TraceParent>,
    make: impl FnOnce() -> tracing::Span,
) -> tracing::Span {
    let start = parents
        .into_iter()
        .fold(Start::Fresh, |start, parent| Start::Remote {
            sampled: start == (Start::Remote { sampled: true }) || parent.sampled(),
        });
    STARTING.set(start);
    let span = make();
    STARTING.set(Start::Inside);
    span
}

/// What the span being made on this thread is to its trace (see [`root`]).
pub fn starting() -> Start {
    STARTING.get()
}

/// Links `span` to `linked` (nothing without an installed [`Propagation`]).
pub fn link(span: &tracing::Span, linked: &TraceParent) {
    if let Some(propagation) = INSTALLED.get()
        && !span.is_disabled()
    {
        propagation.link(span, linked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_are_taken() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(good).unwrap();
        assert_eq!(parsed.as_str(), good);
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.span_id(), "00f067aa0ba902b7");
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-1",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_root_tells_the_sampler_what_its_parents_decided() {
        let sampled =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let unsampled =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-00").unwrap();
        assert!(sampled.sampled() && !unsampled.sampled());
        assert_eq!((sampled.flags(), unsampled.flags()), (1, 0));
        let seen = |parents: &[&TraceParent]| {
            let mut start = None;
            root(parents.iter().copied(), || {
                start = Some(starting());
                tracing::Span::none()
            });
            start.unwrap()
        };
        assert_eq!(seen(&[]), Start::Fresh);
        assert_eq!(seen(&[&unsampled]), Start::Remote { sampled: false });
        assert_eq!(
            seen(&[&sampled, &unsampled]),
            Start::Remote { sampled: true }
        );
        assert_eq!(
            seen(&[&unsampled, &sampled]),
            Start::Remote { sampled: true }
        );
        assert_eq!(
            starting(),
            Start::Inside,
            "a span made after the root starts nothing"
        );
    }
}
