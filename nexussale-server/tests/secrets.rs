//! No secret reaches the logs: not the admin token (right or wrong, at debug level, through
//! every route that reads it), not a password in a backend URL, not a Kafka option's value, even
//! when start-up fails on them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, send};
use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::json;

const SERVER: &str = env!("CARGO_BIN_EXE_nexussale-server");

/// Everything the process wrote, stdout and stderr, once it has exited.
fn output_of(mut child: std::process::Child) -> String {
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    child.wait().unwrap();
    out + &err
}

/// What a pipe holds until it closes.
fn read_all(mut pipe: impl Read) -> String {
    let mut text = String::new();
    pipe.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn a_failed_start_does_not_print_the_passwords_it_was_given() {
    let child = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0"])
        // Nothing listens on port 9: connecting fails, and the error is logged.
        .args([
            "--database-url",
            "mysql://root:TOPSECRET-db-5c1@127.0.0.1:9/test",
        ])
        .args(["--kafka-option", "sasl.password=TOPSECRET-kafka-77e"])
        .env("NEXUSSALE_ADMIN_TOKEN", "TOPSECRET-admin-0aa")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let output = output_of(child);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        output.contains("127.0.0.1:9"),
        "the failure does not say what failed:\n{output}"
    );
    assert!(
        !output.contains("TOPSECRET"),
        "a secret in the log:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_log_even_at_debug_level() {
    let mut child = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0", "--sale", "ps5=10"])
        .env("NEXUSSALE_ADMIN_TOKEN", "TOPSECRET-admin-f00")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The address, from the "listening" line.
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let address = loop {
        let mut byte = [0u8; 1];
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "server exited early");
        seen.push(byte[0]);
        let text = String::from_utf8_lossy(&seen);
        if let Some(at) = text.find("address=") {
            let rest = &text[at + "address=".len()..];
            if let Some(end) = rest.find(char::is_whitespace) {
                break rest[..end].to_owned();
            }
        }
    };
    let reader = std::thread::spawn(move || read_all(stdout));

    let base = format!("http://{address}");
    let http = client();
    for token in ["TOPSECRET-admin-f00", "TOPSECRET-wrong-b4d", ""] {
        let request = common::request(Method::POST, &format!("{base}/v1/sales"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(bytes::Bytes::from(
                json!({ "sku": "s", "stock": 1 }).to_string(),
            )))
            .unwrap();
        let response = http.request(request).await.unwrap();
        assert!(
            [
                StatusCode::CREATED,
                StatusCode::UNAUTHORIZED,
                StatusCode::CONFLICT
            ]
            .contains(&response.status())
        );
    }
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/sales/ps5/purchase"),
        Some(json!({ "user": "u", "idempotency_key": "key-1" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success());

    let mut log = String::from_utf8_lossy(&seen).into_owned();
    log += &reader.join().unwrap();
    log += &read_all(child.stderr.take().unwrap());
    assert!(log.contains("DEBUG"), "not a debug log:\n{log}");
    for secret in ["TOPSECRET-admin-f00", "TOPSECRET-wrong-b4d"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// `{:?}` of everything a running server holds — its configuration, the backends' settings, the
/// connected backends, the engine and the handlers' state — shows no secret: not the admin
/// token, not a database or Redis password, not a Kafka property's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_of_a_fully_configured_server_shows_no_secret() {
    use clap::Parser;
    use nexussale_core::testkit::services::{database_url, redis_url, unavailable};
    use nexussale_core::testkit::unique_name;
    use nexussale_kafka::testkit::MockHost;
    use nexussale_mysql::sqlx::{self, Connection};
    use nexussale_server::{AppState, Backends, Config};

    // A MySQL user with a password, so the connected repository really holds one.
    let mut admin = match sqlx::MySqlConnection::connect(&database_url()).await {
        Ok(admin) => admin,
        Err(err) => {
            return unavailable("mysql", format!("{}: {err}", database_url())).unwrap_or(());
        }
    };
    let user = unique_name("secret_");
    let password = unique_name("TOPSECRET-db-");
    sqlx::query(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(&format!("GRANT ALL ON test.* TO '{user}'@'%'"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = database_url();
    let host = base
        .split_once('@')
        .map_or(base.trim_start_matches("mysql://"), |(_, host)| host);
    let database = format!("mysql://{user}:{password}@{host}");

    let kafka = MockHost::start();
    let config = Config::try_parse_from([
        "nexussale-server",
        "--admin-token",
        "TOPSECRET-admin-4d2",
        "--payment-token",
        "TOPSECRET-payment-71c",
        "--jwt-secret",
        "TOPSECRET-jwt-0a9",
        "--redis-url",
        "redis://:TOPSECRET-redis-9b1@redis.example:6379",
        "--database-url",
        &database,
        "--kafka-brokers",
        kafka.bootstrap(),
        "--kafka-option",
        "sasl.password=TOPSECRET-kafka-e07",
    ])
    .unwrap();
    let mut settings = config.backends();
    let shown_settings = format!("{settings:?}");
    // The local Redis has no password: connect to it as it is, the URL above is for `settings`.
    settings.redis_url = Some(redis_url());
    let backends = Backends::connect(&settings).await.unwrap();
    let engine = backends.engine();
    let mut state = AppState::new(engine.clone());
    state.identity = config.identity().await.expect("identity");
    let shown = [
        format!("{config:?}"),
        shown_settings,
        format!("{backends:?}"),
        format!("{engine:?}"),
        format!("{state:?}"),
    ];
    drop((state, engine, backends));
    sqlx::query(&format!("DROP USER '{user}'@'%'"))
        .execute(&mut admin)
        .await
        .unwrap();
    for shown in &shown {
        assert!(
            !shown.contains("TOPSECRET"),
            "a secret in Debug output: {shown}"
        );
    }
    // What is shown still says what was configured.
    let all = shown.join("\n");
    for expected in [
        "sasl.password",
        "redis.example:6379",
        &user,
        "KafkaOrderQueue",
    ] {
        assert!(all.contains(expected), "`{expected}` not shown: {all}");
    }
}
