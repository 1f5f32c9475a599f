//! Where tests find real services, and what they do when one is missing.
//!
//! | variable | default |
//! | --- | --- |
//! | `NEXUSSALE_REDIS_URL` | `redis://127.0.0.1:6379` |
//! | `NEXUSSALE_DATABASE_URL` | `mysql://root@127.0.0.1:3306/test` |
//! | `NEXUSSALE_KAFKA_BROKERS` | unset: tests use librdkafka's in-process mock cluster |
//!
//! A test that cannot reach its service calls [`unavailable`]: it prints why and skips, unless
//! `NEXUSSALE_REQUIRE_SERVICES=1` (set by CI), where a silent skip would hide a missing service:
//! then it fails.

/// The default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The default MySQL / MariaDB URL.
pub const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Whether a missing service fails the test (`NEXUSSALE_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    var("NEXUSSALE_REQUIRE_SERVICES").is_some_and(|value| value != "0")
}

/// `NEXUSSALE_REDIS_URL` or the default.
pub fn redis_url() -> String {
    var("NEXUSSALE_REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// `NEXUSSALE_DATABASE_URL` or the default.
pub fn database_url() -> String {
    var("NEXUSSALE_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// `NEXUSSALE_KAFKA_BROKERS`, if set.
pub fn kafka_brokers() -> Option<String> {
    var("NEXUSSALE_KAFKA_BROKERS")
}

/// Reports a service the test cannot reach: prints the reason and answers `None` (skip), or
/// panics when services are required.
///
/// ```no_run
/// use nexussale_core::testkit::services::{redis_url, unavailable};
///
/// async fn setup() -> Option<std::net::TcpStream> {
///     // A real setup would open the backend's client here.
///     match std::net::TcpStream::connect("127.0.0.1:6379") {
///         Ok(stream) => Some(stream),
///         Err(err) => unavailable("redis", format!("{}: {err}", redis_url())),
///     }
/// }
/// ```
pub fn unavailable<T>(service: &str, reason: impl std::fmt::Display) -> Option<T> {
    if services_required() {
        panic!("{service} is required (NEXUSSALE_REQUIRE_SERVICES=1) but unavailable: {reason}");
    }
    eprintln!("skipping: {service} unavailable: {reason}");
    None
}
