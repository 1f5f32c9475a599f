//! A Kafka-protocol broker for trying the stack without Kafka: librdkafka's in-process mock
//! cluster (3 brokers), with the given topic and its dead-letter topic created, reachable at
//! one bootstrap address (default `127.0.0.1:9092`, where a Kafka broker usually is). Prints
//! that address on its first line, then runs until it is killed (Ctrl-C).
//!
//! ```text
//! cargo run -p nexussale-examples --example mock_kafka                  # 127.0.0.1:9092
//! cargo run -p nexussale-examples --example mock_kafka -- --listen 127.0.0.1:0 my.topic
//! ```
//!
//! The mock's brokers listen on random ports; the bootstrap address forwards to the first of
//! them, and the cluster's metadata then points clients at all three directly. It keeps its
//! events in memory only (5 MB per partition): for trying and testing, not for production.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};

use nexussale_kafka::testkit::MockHost;

fn main() {
    let mut listen = "127.0.0.1:9092".to_owned();
    let mut topic = "nexussale.orders".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().unwrap_or_else(|| usage("--listen needs ADDR")),
            "-h" | "--help" => usage(""),
            flag if flag.starts_with('-') => usage(&format!("unknown flag {flag}")),
            _ => topic = arg,
        }
    }
    let listener = TcpListener::bind(&listen).unwrap_or_else(|err| {
        eprintln!("mock_kafka: cannot listen on {listen}: {err} (is a broker running there? try --listen 127.0.0.1:0)");
        std::process::exit(1);
    });
    let host = MockHost::start();
    host.create_topic(&topic, 12);
    host.create_topic(&format!("{topic}.dlq"), 1);
    let Some(first_broker) = host.bootstrap().split(',').next().map(str::to_owned) else {
        eprintln!("mock_kafka: the mock cluster has no broker");
        std::process::exit(1);
    };
    let address = listener
        .local_addr()
        .map_or(listen, |address| address.to_string());
    println!("{address}");
    let _ = std::io::stdout().flush();
    eprintln!(
        "mock_kafka: librdkafka's mock cluster, topics {topic} and {topic}.dlq; use --kafka-brokers {address} (Ctrl-C stops it)"
    );
    for client in listener.incoming().flatten() {
        let first_broker = first_broker.clone();
        std::thread::spawn(move || forward(client, &first_broker));
    }
}

/// Copies bytes both ways between a client and the broker until either side closes.
fn forward(client: TcpStream, broker: &str) {
    let Ok(upstream) = TcpStream::connect(broker) else {
        return;
    };
    let (Ok(mut client_reader), Ok(mut upstream_writer)) =
        (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let inbound = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut upstream_writer);
        let _ = upstream_writer.shutdown(Shutdown::Write);
    });
    let (mut upstream_reader, mut client_writer) = (upstream, client);
    let _ = std::io::copy(&mut upstream_reader, &mut client_writer);
    let _ = client_writer.shutdown(Shutdown::Both);
    let _ = inbound.join();
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("mock_kafka: {problem}");
    }
    eprintln!(
        "usage: mock_kafka [--listen ADDR (default 127.0.0.1:9092)] [TOPIC (default nexussale.orders)]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 });
}
