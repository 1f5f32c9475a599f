//! docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check what can be
//! checked without one — the services, ports, health checks and start order the README promises,
//! and that every setting the server is given is one of its own flags' environment twins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::collections::BTreeSet;

use clap::CommandFactory;
use nexussale_server::Config;
use serde_yaml::Value;

/// The compose file with its merge keys (`<<: *anchor`) applied, as compose reads it.
fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
    let mut compose: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    compose.apply_merge().unwrap();
    compose
}

const BACKENDS: [&str; 7] = [
    "redis",
    "mysql",
    "kafka",
    "kafka-ui",
    "prometheus",
    "grafana",
    "jaeger",
];

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
        BTreeSet::from([
            "grafana",
            "jaeger",
            "kafka",
            "kafka-2",
            "kafka-3",
            "kafka-ui",
            "mysql",
            "prometheus",
            "redis",
            "server"
        ])
    );
    // Only the server on every interface; the backends on loopback, for an operator.
    assert_eq!(
        strings(&compose["services"]["server"]["ports"]),
        ["3000:3000"]
    );
    for backend in BACKENDS {
        for port in strings(&compose["services"][backend]["ports"]) {
            assert!(port.starts_with("127.0.0.1:"), "{backend} publishes {port}");
        }
    }
    // Everything comes back after a crash or a reboot.
    for name in &names {
        assert_eq!(
            compose["services"][*name]["restart"].as_str(),
            Some("unless-stopped"),
            "{name}"
        );
    }
    // Every image at a release of its own, never a moving tag.
    for name in &names {
        if let Some(image) = compose["services"][*name]["image"].as_str() {
            let (_, tag) = image.rsplit_once(':').unwrap_or((image, ""));
            assert!(
                !tag.is_empty() && !["latest", "main", "master"].contains(&tag),
                "{name}: {image}"
            );
        }
    }
    // The maintained Kafka UI, behind a login.
    let ui = &compose["services"]["kafka-ui"];
    assert!(
        ui["image"]
            .as_str()
            .unwrap()
            .starts_with("kafbat/kafka-ui:")
    );
    assert_eq!(ui["environment"]["AUTH_TYPE"].as_str(), Some("LOGIN_FORM"));
    // Kafka keeps its log on a volume; `--profile ha` adds two brokers of their own.
    assert!(
        strings(&compose["services"]["kafka"]["volumes"])
            .iter()
            .any(|volume| volume.ends_with(":/var/lib/kafka/data"))
    );
    let mut nodes = BTreeSet::new();
    for broker in ["kafka", "kafka-2", "kafka-3"] {
        let node = &compose["services"][broker]["environment"]["KAFKA_NODE_ID"];
        assert!(
            nodes.insert(node.as_u64().unwrap()),
            "{broker}: node id taken"
        );
        if broker != "kafka" {
            assert_eq!(strings(&compose["services"][broker]["profiles"]), ["ha"]);
        }
    }
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
            // RUST_LOG and OpenTelemetry's own are read by the libraries.
            known.contains(name) || name == "RUST_LOG" || name.starts_with("OTEL_"),
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
    // So are the backends' passwords, wherever they appear; no password is written out.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docker-compose.yml"
    ))
    .unwrap();
    for secret in [
        "REDIS_PASSWORD",
        "MYSQL_PASSWORD",
        "MYSQL_ROOT_PASSWORD",
        "KAFKA_UI_PASSWORD",
    ] {
        let uses: Vec<&str> = text
            .match_indices(&format!("${{{secret}"))
            .map(|(at, _)| &text[at..])
            .collect();
        assert!(!uses.is_empty(), "{secret} is not used");
        for using in uses {
            assert!(
                using.starts_with(&format!("${{{secret}:?")),
                "compose must require {secret}, not default it: {}",
                using.lines().next().unwrap()
            );
        }
    }
    for value in [
        &compose["services"]["mysql"]["environment"]["MYSQL_PASSWORD"],
        &compose["services"]["kafka-ui"]["environment"]["SPRING_SECURITY_USER_PASSWORD"],
    ] {
        assert!(value.as_str().unwrap().starts_with("${"), "{value:?}");
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
            .ends_with("@redis:6379")
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

/// Prometheus and Grafana read their configuration from the repository: every file compose
/// mounts exists, Prometheus scrapes the server and loads the alert rules, and the dashboard
/// uses the datasource Grafana is provisioned with.
#[test]
fn monitoring_is_provisioned_from_the_repository() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let compose = compose();
    for service in ["prometheus", "grafana"] {
        for volume in strings(&compose["services"][service]["volumes"]) {
            if let Some(path) = volume.strip_prefix("./") {
                let path = path.split(':').next().unwrap();
                assert!(
                    std::path::Path::new(root).join(path).exists(),
                    "{service} mounts {path}, which is not in the repository"
                );
            }
        }
    }
    let read = |path: &str| std::fs::read_to_string(format!("{root}/{path}")).unwrap();
    let prometheus: Value =
        serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml")).unwrap();
    assert_eq!(strings(&prometheus["rule_files"]), ["alerts.yml"]);
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["job_name"].as_str(), Some("nexussale"));
    assert_eq!(
        strings(&job["static_configs"][0]["targets"]),
        ["server:3000"]
    );
    let datasources: Value = serde_yaml::from_str(&read(
        "deploy/grafana/provisioning/datasources/prometheus.yml",
    ))
    .unwrap();
    let uid = datasources["datasources"][0]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        datasources["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/nexussale.json")).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for panel in panels {
        assert_eq!(
            panel["datasource"]["uid"].as_str(),
            Some(uid.as_str()),
            "{panel}"
        );
        assert!(!panel["targets"].as_array().unwrap().is_empty(), "{panel}");
    }
    // Anyone may look, nobody unauthenticated may edit.
    let grafana = &compose["services"]["grafana"]["environment"];
    assert_eq!(grafana["GF_AUTH_ANONYMOUS_ENABLED"].as_str(), Some("true"));
    assert_eq!(
        grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"].as_str(),
        Some("Viewer")
    );
    assert!(
        grafana["GF_SECURITY_ADMIN_PASSWORD"]
            .as_str()
            .unwrap()
            .contains(":?"),
        "Grafana's admin password must be required, not defaulted"
    );
}
