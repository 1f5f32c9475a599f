//! `rediss://` against a Redis that speaks only TLS, with certificates the test makes
//! (`testkit::TlsRedis`): the stock kit passes with the CA given; a wrong CA, an expired or
//! wrong-host certificate, and a CA given for a `redis://` URL are each refused at connect.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::sync::Arc;

use nexussale_core::DynStockStore;
use nexussale_core::testkit::services::unavailable;
use nexussale_core::testkit::{self, stock::Remaining};
use nexussale_redis::testkit::{ServerCertificate, TlsRedis};
use nexussale_redis::{RedisConfig, RedisStockStore};

fn start(certificate: ServerCertificate) -> Option<TlsRedis> {
    match TlsRedis::start(certificate) {
        Ok(redis) => Some(redis),
        Err(reason) => unavailable("redis-server with TLS", reason),
    }
}

async fn connect(url: &str, ca: &std::path::Path) -> nexussale_core::Result<RedisStockStore> {
    let config = RedisConfig::default().root_certificate(std::fs::read(ca).unwrap());
    let store = RedisStockStore::connect_with(url, config).await?;
    store.ping().await?;
    Ok(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_over_tls_with_the_servers_ca() {
    let Some(redis) = start(ServerCertificate::Valid) else {
        return;
    };
    let store: DynStockStore = Arc::new(connect(&redis.url(), &redis.ca()).await.unwrap());
    testkit::stock::run_all(store, Remaining::Bounded).await;
}

#[tokio::test]
async fn a_certificate_that_does_not_hold_is_refused() {
    for (certificate, wrong_ca) in [
        (ServerCertificate::Valid, true),
        (ServerCertificate::Expired, false),
        (ServerCertificate::WrongHost, false),
    ] {
        let Some(redis) = start(certificate) else {
            return;
        };
        let ca = if wrong_ca {
            redis.other_ca()
        } else {
            redis.ca()
        };
        let err = connect(&redis.url(), &ca).await.unwrap_err().to_string();
        assert!(err.contains("certificate"), "{certificate:?}: {err}");
    }
}

#[tokio::test]
async fn a_ca_for_a_plain_url_is_refused_not_ignored() {
    let Some(redis) = start(ServerCertificate::Valid) else {
        return;
    };
    let plain = redis.url().replace("rediss://", "redis://");
    let err = connect(&plain, &redis.ca()).await.unwrap_err().to_string();
    assert!(err.contains("not rediss://"), "{err}");
}
