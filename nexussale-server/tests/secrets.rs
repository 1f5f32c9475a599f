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
