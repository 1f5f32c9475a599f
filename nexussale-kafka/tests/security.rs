//! Kafka's TLS and SASL are librdkafka's, built against the system's OpenSSL (rdkafka's `ssl`
//! feature): what the client accepts without a broker. The TLS handshake itself is tested on a
//! tansu broker (`conformance.rs`, and the server's start-up test).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use nexussale_kafka::{KafkaConfig, KafkaOrderQueue};

fn secured(protocol: &str, mechanism: &str) -> KafkaConfig {
    KafkaConfig::new("127.0.0.1:1")
        .set("security.protocol", protocol)
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", "shop")
        .set("sasl.password", "s3cret")
}

/// SASL PLAIN and SCRAM-SHA-256/512, over TLS or not, are accepted: a client built without them
/// refuses the configuration when it is created (as this crate did before it enabled `ssl`).
/// An unknown mechanism is refused the same way, so the check is real; and the password never
/// shows in the configuration's `Debug`.
#[tokio::test]
async fn sasl_plain_and_scram_over_tls_are_built_in() {
    for protocol in ["SASL_SSL", "SASL_PLAINTEXT"] {
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let config = secured(protocol, mechanism);
            assert!(!format!("{config:?}").contains("s3cret"));
            if let Err(err) = KafkaOrderQueue::connect(config).await {
                panic!("{protocol} {mechanism}: {err}");
            }
        }
    }
    let err = KafkaOrderQueue::connect(secured("SASL_SSL", "NOT-A-MECHANISM"))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(
        KafkaOrderQueue::connect(KafkaConfig::new("127.0.0.1:1").set("security.protocol", "SSL"))
            .await
            .is_ok()
    );
}
