//! What librdkafka says, said once: its clients' errors go to one [`OutageLog`] per queue.
//!
//! librdkafka reports a broker that is down through its error callback *and* its log callback,
//! again on every reconnect attempt (dozens a second with the short backoff this crate sets):
//! left to rdkafka's default context, an absent broker wrote ~35 ERROR lines a second, each
//! twice. Here an outage is one warning, its end one line, with the count in between.

use std::sync::Arc;

use nexussale_core::OutageLog;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use tracing::{debug, error, trace, warn};

/// The context of the queue's producer and admin clients.
#[derive(Debug, Clone)]
pub(crate) struct QuietContext {
    pub(crate) outage: Arc<OutageLog>,
    /// Why the brokers' TLS or SASL handshake failed, the last time it did: librdkafka reports it
    /// only here, while the call that needed the brokers fails as a mere transport failure.
    refused: Arc<parking_lot::Mutex<Option<String>>>,
}

impl QuietContext {
    pub(crate) fn new(outage: Arc<OutageLog>) -> Self {
        Self {
            outage,
            refused: Arc::default(),
        }
    }

    /// Why the last TLS or SASL handshake failed, if one did.
    pub(crate) fn handshake_refused(&self) -> Option<String> {
        self.refused.lock().clone()
    }
}

/// The offsets reader of [`drain`](crate::drain) is a consumer that never joins its group.
impl ConsumerContext for QuietContext {}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log(&self.outage, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_handshake_failure(&error, reason) {
            *self.refused.lock() = Some(reason.to_owned());
        }
        report(&self.outage, &error, reason);
    }

    /// The producer's statistics (every [`STATISTICS_EVERY`]): how many events went out in how
    /// many produce requests, so an operator sees how well the producer batches (each request
    /// costs the broker about as much as its events).
    fn stats(&self, statistics: Statistics) {
        let (events, requests) = produced(&statistics);
        metrics::counter!("nexussale_kafka_events_produced_total").absolute(events);
        metrics::counter!("nexussale_kafka_produce_requests_total").absolute(requests);
    }
}

/// How often the producer reports its statistics (`statistics.interval.ms`).
pub(crate) const STATISTICS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Events the producer sent to brokers and the produce requests that carried them, since it
/// started.
fn produced(statistics: &Statistics) -> (u64, u64) {
    let requests = statistics
        .brokers
        .values()
        .filter_map(|broker| broker.req.get("Produce"))
        .map(|count| u64::try_from(*count).unwrap_or(0))
        .sum();
    (u64::try_from(statistics.txmsgs).unwrap_or(0), requests)
}

/// librdkafka's log lines: errors are reported through [`report`] as well, so they are only
/// debug detail here; warnings stay warnings unless the cluster is known to be down.
pub(crate) fn log(outage: &OutageLog, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => debug!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Warning if !outage.is_down() => {
            warn!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Warning | RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            debug!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => trace!(target: "librdkafka", facility, "{message}"),
    }
}

/// Whether librdkafka's error says the brokers refused this client's TLS (a certificate that does
/// not hold) or SASL (credentials): no retry mends that.
fn is_handshake_failure(error: &KafkaError, reason: &str) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication)
    ) || reason.contains("SSL_HANDSHAKE")
        || reason.contains("SASL authentication error")
}

/// librdkafka's error callback: a fatal error (the idempotent producer gave up) always gets its
/// own line; anything else is one more failure of the current outage.
pub(crate) fn report(outage: &OutageLog, err: &KafkaError, reason: &str) {
    if err.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
        error!(error = %err, reason, "kafka client failed for good; restart the process");
    } else {
        outage.failure(&format_args!("{err}: {reason}"));
    }
}
