//! [`PlainFormat`]: the server binary's text log line, as tracing-subscriber's default `Full`
//! format writes it without colours (`2026-12-03T09:00:00.123456Z  INFO span{field=…}: target:
//! message field=value …`), at a fraction of its cost: with the access log on, that format's
//! styling (every field name painted, even with colours off) and clock formatting were most of a
//! request's logging instructions (docs/BENCHMARKS.md). A terminal keeps the colourful default.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use chrono::{DateTime, Timelike, Utc};
use tracing::field::Field;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::field::delimited::Delimited;
use tracing_subscriber::fmt::format::{FieldFn, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::log_writer::{BufferedLog, FlushOnDrop};
use crate::otel::Traces;
use crate::stack::request_id;

/// Fields as `name=value`, space-separated; the message bare.
pub type PlainFields =
    Delimited<&'static str, FieldFn<fn(&mut Writer<'_>, &Field, &dyn fmt::Debug) -> fmt::Result>>;

/// The field formatter [`PlainFormat`] goes with (`.fmt_fields(plain_fields())`).
pub fn plain_fields() -> PlainFields {
    let field: fn(&mut Writer<'_>, &Field, &dyn fmt::Debug) -> fmt::Result =
        |writer, field, value| {
            if field.name() == "message" {
                write!(writer, "{value:?}")
            } else {
                write!(writer, "{}={value:?}", field.name())
            }
        };
    tracing_subscriber::fmt::format::debug_fn(field).delimited(" ")
}

/// The event formatter (`.event_format(PlainFormat)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFormat;

thread_local! {
    /// The last second formatted on this thread, and its text up to the seconds.
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the date and time formatted once per second per thread.
fn write_time(out: &mut impl fmt::Write, now: DateTime<Utc>) -> fmt::Result {
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        let second = now.timestamp();
        if cached.0 != second {
            cached.1.clear();
            let _ = write!(cached.1, "{}", now.format("%Y-%m-%dT%H:%M:%S"));
            cached.0 = second;
        }
        out.write_str(&cached.1)
    })?;
    // Six digits of microseconds, without `fmt`'s padding machinery.
    let micros = now.nanosecond() % 1_000_000_000 / 1000;
    let mut digits = *b".000000Z";
    let mut rest = micros;
    for digit in digits[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    // Only ASCII digits and punctuation were written.
    out.write_str(std::str::from_utf8(&digits).unwrap_or(".000000Z"))
}

fn level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => " WARN",
        Level::INFO => " INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S, N> FormatEvent<S, N> for PlainFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        write_time(&mut writer, Utc::now())?;
        writer.write_char(' ')?;
        writer.write_str(level(metadata.level()))?;
        writer.write_char(' ')?;
        // A request served with the binary's own access lines has no `request` span: its id
        // is in a task-local slot, written as that span would be (it would be the root).
        let mut spans = request_id::with_current(|id| {
            writer.write_str("request{request_id=")?;
            writer.write_str(id)?;
            writer.write_str("}:")
        })
        .transpose()?
        .is_some();
        if let Some(scope) = ctx.event_scope() {
            spans = true;
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
            }
        }
        if spans {
            writer.write_char(' ')?;
        }
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The log writer [`init_logs`] gave the plain format, for [`AppState::log_lines`].
///
/// [`AppState::log_lines`]: crate::AppState::log_lines
static PLAIN_LINES: std::sync::OnceLock<BufferedLog> = std::sync::OnceLock::new();

/// Whether the filter [`init_logs`] installed lets access lines through (true when it installed
/// none: the embedding service's subscriber decides, through the access event).
static ACCESS_LINES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// The filter `RUST_LOG` asks for; `info` when it is unset or unreadable.
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Whether `filter` lets the access log's INFO lines through, asked of the filter alone. The
/// installed subscriber cannot tell: with a per-layer filter it answers whether any layer wants
/// an event, and a layer without a filter (the exporter's sampler, or the absent exporter's
/// `None`) wants them all, so under `RUST_LOG=warn,<another target>=info` every request got an
/// access line. A directive that depends on a span (`[request]=info`) is asked outside any.
fn lets_access_lines_through(filter: EnvFilter) -> bool {
    let probe = tracing_subscriber::registry().with(filter);
    tracing::subscriber::with_default(
        probe,
        || tracing::enabled!(target: crate::stack::ACCESS_TARGET, Level::INFO),
    )
}

/// Whether the server's access lines are to be written: the filter [`init_logs`] installed
/// lets them through, or it installed none.
pub(crate) fn access_lines_pass() -> bool {
    ACCESS_LINES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the server binary's logging as the process's global subscriber, filtered by
/// `RUST_LOG` (default `info`), and answers the guard that writes what is still buffered when
/// dropped (keep it until the process ends). Lines go to stdout in bursts ([`BufferedLog`]):
/// one JSON object a line with `NEXUSSALE_LOG_FORMAT=json`; tracing-subscriber's colourful
/// format on a terminal; otherwise (collected logs) [`PlainFormat`], whose writer [`run`] then
/// hands to the HTTP service for its access lines. Does nothing but answer the guard when a
/// global subscriber is already set.
///
/// [`run`]: crate::run
pub fn init_logs() -> FlushOnDrop {
    init_logs_with(None).map_or_else(|_| BufferedLog::stdout().1, |(flush, _)| flush)
}

/// [`init_logs`], and with `otlp_endpoint` the spans exported there too ([`Traces`]; keep it
/// until the process ends, after the log guard). An error only when the exporter cannot be
/// built (a malformed endpoint); nothing is installed then.
pub fn init_logs_with(
    otlp_endpoint: Option<&str>,
) -> Result<(FlushOnDrop, Option<Traces>), String> {
    let traces = otlp_endpoint.map(Traces::start).transpose()?;
    let filter = log_filter();
    let (writer, flush) = BufferedLog::stdout();
    let logs = tracing_subscriber::fmt::layer().with_writer(writer.clone());
    let json = std::env::var("NEXUSSALE_LOG_FORMAT").is_ok_and(|format| format == "json");
    let plain = !json && !std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if json {
        logs.json().with_current_span(true).boxed()
    } else if plain {
        logs.with_ansi(false)
            .fmt_fields(plain_fields())
            .event_format(PlainFormat)
            .boxed()
    } else {
        logs.with_ansi(true).boxed()
    };
    let (traces, spans) = traces.unzip();
    let installed = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .try_init()
        .is_ok();
    if installed {
        let through = lets_access_lines_through(log_filter());
        ACCESS_LINES.store(through, std::sync::atomic::Ordering::Relaxed);
    }
    if installed && plain {
        let _ = PLAIN_LINES.set(writer);
    }
    Ok((flush, traces))
}

/// The writer [`init_logs`] installed with [`PlainFormat`], if it did.
pub(crate) fn plain_lines() -> Option<BufferedLog> {
    PLAIN_LINES.get().cloned()
}

/// One access-log line as [`PlainFormat`] writes the access event inside the request's span
/// (`… INFO request{request_id=…}: nexussale_server::access: request method=… route=… status=…
/// latency_us=…`), written straight into `lines`: no event, no span, no field visitor. The binary
/// does this when its subscriber writes `PlainFormat` into the same writer, so the file reads the
/// same either way (a test compares the two).
pub(crate) fn write_access_line(lines: &BufferedLog, line: &AccessLine<'_>) {
    thread_local! {
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    LINE.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        let _ = write_time(&mut *buffer, Utc::now());
        buffer.push_str("  INFO request{request_id=");
        buffer.push_str(line.request_id);
        buffer.push_str("}: ");
        buffer.push_str(crate::stack::ACCESS_TARGET);
        buffer.push_str(": request method=");
        buffer.push_str(line.method);
        buffer.push_str(" route=");
        buffer.push_str(line.route);
        buffer.push_str(" status=");
        buffer.push_str(itoa::Buffer::new().format(line.status));
        buffer.push_str(" latency_us=");
        buffer.push_str(itoa::Buffer::new().format(line.latency_us));
        buffer.push('\n');
        lines.write_line(buffer.as_bytes());
    });
}

/// What one access-log line says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessLine<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) method: &'a str,
    pub(crate) route: &'a str,
    pub(crate) status: u16,
    pub(crate) latency_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_writer::tests::Sink;
    use tracing::Instrument;

    /// The access lines' answer comes from the log filter alone.
    #[test]
    fn access_lines_pass_as_the_filter_says() {
        for (directives, through) in [
            ("info", true),
            ("warn", false),
            ("warn,nexussale_core::engine::sweeper=info", false),
            ("warn,nexussale_server::access=info", true),
            ("info,nexussale_server::access=off", false),
        ] {
            let answer = lets_access_lines_through(EnvFilter::new(directives));
            assert_eq!(answer, through, "{directives}");
        }
    }

    /// What the default format writes with colours off, and this one too.
    fn lines(plain: bool) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let log = || {
            let span = tracing::info_span!("request", request_id = %"id-1");
            let _entered = span.enter();
            tracing::info!(target: "nexussale_server::access", method = %"POST", route = "/v1/sales", status = 201u16, latency_ms = 0.25, "request");
            tracing::warn!(error = %"gone", "a line with one field");
        };
        if plain {
            let subscriber = builder
                .fmt_fields(plain_fields())
                .event_format(PlainFormat)
                .finish();
            tracing::subscriber::with_default(subscriber, log);
        } else {
            tracing::subscriber::with_default(builder.finish(), log);
        }
        String::from_utf8(sink.0.lock().clone()).unwrap()
    }

    #[test]
    fn writes_what_the_default_format_writes_without_colours() {
        // Everything after the timestamp is the same; the timestamps have the same shape.
        let (default, plain) = (lines(false), lines(true));
        let split = |text: &str| -> Vec<(usize, String)> {
            text.lines()
                .map(|line| {
                    let (time, rest) = line.split_once(' ').unwrap();
                    (time.len(), rest.to_owned())
                })
                .collect()
        };
        assert_eq!(split(&plain), split(&default), "\n{plain}\n{default}");
        assert!(plain.contains(
            "INFO request{request_id=id-1}: nexussale_server::access: request method=POST route=\"/v1/sales\" status=201 latency_ms=0.25"
        ), "{plain}");
        let time = plain.split(' ').next().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.len() == 27,
            "{time}"
        );
    }

    /// A subscriber writing this format into `sink`.
    fn plain_into(sink: &Sink) -> impl Subscriber + Send + Sync + 'static {
        let writer = sink.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(plain_fields())
            .event_format(PlainFormat)
            .finish()
    }

    /// Everything after the timestamp of each line `sink` holds.
    fn after_time(sink: &Sink) -> Vec<String> {
        let text = String::from_utf8(sink.0.lock().clone()).unwrap();
        text.lines()
            .map(|line| line.split_once(' ').unwrap().1.to_owned())
            .collect()
    }

    #[test]
    fn the_direct_access_line_is_the_access_event_as_this_format_writes_it() {
        let through_tracing = Sink::default();
        tracing::subscriber::with_default(plain_into(&through_tracing), || {
            let span = tracing::info_span!("request", request_id = %"0af3");
            let _entered = span.enter();
            tracing::info!(target: crate::stack::ACCESS_TARGET, method = %"POST", route = %"/v1/sales/{sku}/purchase", status = 202u16, latency_us = 1234u64, "request");
        });
        let direct = Sink::default();
        let (lines, flush) = BufferedLog::to(direct.clone());
        write_access_line(
            &lines,
            &AccessLine {
                request_id: "0af3",
                method: "POST",
                route: "/v1/sales/{sku}/purchase",
                status: 202,
                latency_us: 1234,
            },
        );
        drop(flush);
        assert_eq!(after_time(&direct), after_time(&through_tracing));
        let text = String::from_utf8(direct.0.lock().clone()).unwrap();
        let time = text.split(' ').next().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.len() == 27,
            "{time}"
        );
    }

    /// Without a `request` span, the id a request set in its task-local slot is written as that
    /// span would have been.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_id_in_the_task_local_slot_reads_as_the_span() {
        let (with_span, with_slot) = (Sink::default(), Sink::default());
        for (sink, slot) in [(&with_span, false), (&with_slot, true)] {
            let _default = tracing::subscriber::set_default(plain_into(sink));
            let log = async {
                let inner = tracing::info_span!("store", call = "reserve");
                let _entered = inner.enter();
                tracing::warn!(error = %"gone", "a backend failed");
            };
            if slot {
                let id = http::HeaderValue::from_static("id-7");
                request_id::scope(id, log).await;
            } else {
                log.instrument(tracing::info_span!("request", request_id = %"id-7"))
                    .await;
            }
        }
        assert_eq!(after_time(&with_slot), after_time(&with_span));
        assert!(
            after_time(&with_slot)[0]
                .starts_with(" WARN request{request_id=id-7}:store{call=\"reserve\"}: "),
            "{:?}",
            after_time(&with_slot)
        );
    }
}
