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
use tracing_subscriber::registry::LookupSpan;

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
fn write_time(writer: &mut Writer<'_>, now: DateTime<Utc>) -> fmt::Result {
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        let second = now.timestamp();
        if cached.0 != second {
            cached.1.clear();
            let _ = write!(cached.1, "{}", now.format("%Y-%m-%dT%H:%M:%S"));
            cached.0 = second;
        }
        writer.write_str(&cached.1)
    })?;
    write!(writer, ".{:06}Z", now.nanosecond() % 1_000_000_000 / 1000)
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
        if let Some(scope) = ctx.event_scope() {
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
            writer.write_char(' ')?;
        }
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_writer::tests::Sink;

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
}
