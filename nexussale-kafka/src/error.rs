//! This crate's errors, and the one place that decides which are worth retrying.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What can go wrong with Kafka. Converted into [`nexussale_core::Error::Backend`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueueError {
    /// The client or a broker failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// An event could not be encoded.
    #[error("cannot encode the event: {0}")]
    Encode(#[from] serde_json::Error),
    /// The brokers' TLS or SASL handshake failed, with librdkafka's reason.
    #[error("the brokers refused the TLS or SASL handshake: {0}")]
    Handshake(String),
    /// A blocking consumer call did not complete (its thread panicked or the runtime stopped).
    #[error("the consumer call was interrupted: {0}")]
    Interrupted(String),
}

/// Broker answers that the same request will meet again.
const PERMANENT: &[RDKafkaErrorCode] = &[
    RDKafkaErrorCode::MessageSizeTooLarge,
    RDKafkaErrorCode::InvalidMessage,
    RDKafkaErrorCode::InvalidRecord,
    RDKafkaErrorCode::TopicAuthorizationFailed,
    RDKafkaErrorCode::ClusterAuthorizationFailed,
    RDKafkaErrorCode::GroupAuthorizationFailed,
    RDKafkaErrorCode::SaslAuthenticationFailed,
    RDKafkaErrorCode::InvalidConfig,
    RDKafkaErrorCode::Fatal,
    RDKafkaErrorCode::UnsupportedVersion,
    RDKafkaErrorCode::InvalidRequiredAcks,
];

impl QueueError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Kafka(KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)) => false,
            Self::Kafka(err) => err
                .rdkafka_error_code()
                .is_none_or(|code| !PERMANENT.contains(&code)),
            Self::Encode(_) | Self::Handshake(_) => false,
            Self::Interrupted(_) => true,
        }
    }
}

impl From<QueueError> for nexussale_core::Error {
    fn from(err: QueueError) -> Self {
        if err.is_retryable() {
            Self::retryable("kafka", err)
        } else {
            Self::permanent("kafka", err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_full_queues_are_retryable_and_oversized_events_are_not() {
        let retryable =
            |err: KafkaError| nexussale_core::Error::from(QueueError::Kafka(err)).is_retryable();
        assert!(retryable(KafkaError::MessageProduction(
            RDKafkaErrorCode::QueueFull
        )));
        assert!(retryable(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(retryable(KafkaError::MessageProduction(
            RDKafkaErrorCode::NotEnoughReplicas
        )));
        assert!(!retryable(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(!retryable(KafkaError::ClientCreation("bad".into())));
    }
}
