//! docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check what can be
//! checked without one — the services, ports, health checks and start order the README promises,
//! and that every setting the server is given is one of its own flags' environment twins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::collections::BTreeSet;

use clap::CommandFactory;
use nexussale_server::Config;
use serde_yaml::Value;

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_runs_the_whole_stack_in_order() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["kafka", "kafka-ui", "mysql", "redis", "server"])
    );
    assert_eq!(
        strings(&compose["services"]["server"]["ports"]),
        ["3000:3000"]
    );
    assert_eq!(
        strings(&compose["services"]["kafka-ui"]["ports"]),
        ["8080:8080"]
    );
    // Kafka in KRaft mode: no ZooKeeper anywhere.
    let kafka = &compose["services"]["kafka"]["environment"];
    assert_eq!(
        kafka["KAFKA_PROCESS_ROLES"].as_str(),
        Some("broker,controller")
    );
    assert!(!names.iter().any(|name| name.contains("zookeeper")));
    // The server starts once its backends are healthy; every backend and the server have a
    // health check.
    for backend in ["redis", "mysql", "kafka"] {
        assert_eq!(
            compose["services"]["server"]["depends_on"][backend]["condition"].as_str(),
            Some("service_healthy"),
            "{backend}"
        );
        assert!(
            compose["services"][backend]["healthcheck"]["test"].is_sequence(),
            "{backend}"
        );
    }
    assert!(
        strings(&compose["services"]["server"]["healthcheck"]["test"])
            .iter()
            .any(|part| part.ends_with("/ready"))
    );
}

#[test]
fn the_server_is_configured_only_through_its_own_variables() {
    let known: BTreeSet<String> = Config::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    for contract in [
        "NEXUSSALE_LISTEN",
        "NEXUSSALE_REDIS_URL",
        "NEXUSSALE_KAFKA_BROKERS",
        "NEXUSSALE_DATABASE_URL",
        "NEXUSSALE_SALES",
        "NEXUSSALE_ADMIN_TOKEN",
        "NEXUSSALE_NO_WORKER",
    ] {
        assert!(known.contains(contract), "the server has no {contract}");
    }
    let compose = compose();
    let environment = compose["services"]["server"]["environment"]
        .as_mapping()
        .unwrap();
    for name in environment.keys().filter_map(Value::as_str) {
        assert!(
            known.contains(name) || name == "RUST_LOG",
            "compose sets {name}, which the server does not read"
        );
    }
    // Credentials are required, never defaulted (`${VAR:?message}`).
    for secret in [
        "NEXUSSALE_ADMIN_TOKEN",
        "NEXUSSALE_PAYMENT_TOKEN",
        "NEXUSSALE_JWT_SECRET",
    ] {
        let value = environment[secret].as_str().unwrap_or_default();
        assert!(
            value.starts_with(&format!("${{{secret}:?")),
            "compose must require {secret}, not default it: {value}"
        );
    }
    // The backends the compose file runs are the ones the server is pointed at.
    assert_eq!(
        environment["NEXUSSALE_KAFKA_BROKERS"].as_str(),
        Some("kafka:9092")
    );
    assert!(
        environment["NEXUSSALE_REDIS_URL"]
            .as_str()
            .unwrap()
            .contains("//redis:")
    );
    assert!(
        environment["NEXUSSALE_DATABASE_URL"]
            .as_str()
            .unwrap()
            .contains("@mysql:")
    );
}

#[test]
fn the_dockerfile_builds_and_runs_the_server() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile");
    let dockerfile = std::fs::read_to_string(path).unwrap();
    let stages = dockerfile
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .count();
    assert_eq!(stages, 2, "a build stage and a runtime stage");
    assert!(dockerfile.contains("-p nexussale-server"));
    assert!(dockerfile.contains("EXPOSE 3000"));
    assert!(dockerfile.contains("NEXUSSALE_LISTEN=0.0.0.0:3000"));
    assert!(
        dockerfile.contains("USER "),
        "the server does not run as root"
    );
}
