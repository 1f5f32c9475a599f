//! What an SRE reads: the metrics the alert rules and the dashboard use are served by a live
//! server on the full stack, the rules pass `promtool`, a purchase's trace runs from its HTTP
//! request to its order's insert in a separate worker process (through Kafka), its JSON log lines
//! name the trace, and a dead collector holds nothing up.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Stack, client, send, start_server_with_env, stop};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use nexussale_core::testkit::services::{redis_url, unavailable};
use nexussale_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use nexussale_redis::redis;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::Mutex;
use prost::Message;
use serde_json::{Value, json};

fn repository_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The metric names an expression reads (Prometheus' own `up` aside).
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for c in expression.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.starts_with("nexussale_") || word.starts_with("process_") {
                names.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

/// Every metric `deploy/prometheus/alerts.yml` and `deploy/grafana/nexussale.json` read.
fn metrics_in_use() -> BTreeSet<String> {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&repository_file("deploy/prometheus/alerts.yml")).unwrap();
    let mut names = BTreeSet::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            names.extend(metric_names(rule["expr"].as_str().unwrap()));
        }
    }
    let dashboard: Value =
        serde_json::from_str(&repository_file("deploy/grafana/nexussale.json")).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            names.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        names.extend(metric_names(variable["definition"].as_str().unwrap()));
    }
    names
}

/// The series names of a Prometheus text answer.
fn served_series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

async fn scrape(http: &common::HttpClient, base: &str) -> String {
    let response = http
        .request(
            http::Request::get(format!("{base}/metrics"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

/// The access lines follow `RUST_LOG` alone: with `warn` and another target at `info`, the
/// server wrote one for every request (the subscriber, asked whether anything wanted the event,
/// said yes for a layer without a filter). `info` writes them, as the control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_follow_the_log_filter() {
    let http = client();
    for (filter, wanted) in [
        ("info", true),
        // Another target at info: here the one of the "listening" line the helper waits for.
        ("warn,nexussale_server::server=info", false),
    ] {
        let (server, address, log) = start_server_with_env(&[], &[("RUST_LOG", filter)]);
        for _ in 0..3 {
            let (status, _) = send(
                &http,
                Method::GET,
                &format!("http://{address}/health"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
        stop(server);
        // The process is gone; its last lines may still be on their way through the pipe.
        let deadline = Instant::now() + Duration::from_secs(2);
        let written = loop {
            let written = log.lock().contains("nexussale_server::access");
            if written || Instant::now() > deadline {
                break written;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            written, wanted,
            "RUST_LOG={filter}: access lines {written}, wanted {wanted}"
        );
    }
}

/// Every metric the rules and the dashboard read is on a live server's `/metrics`, once it has
/// served purchases, payments, cancels, expiries, a dead letter, a store rebuild and a books
/// check; and docs/OPERATIONS.md lists every metric it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_read_is_served() {
    let Some(stack) = Stack::start("metrics", 2).await else {
        return;
    };
    let args = stack.args(&["--reconcile-every-secs", "1"]);
    let (server, address, _) = start_server_with_env(&args, &[]);
    let base = format!("http://{address}");
    let http = client();
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/sales"),
        Some(json!({"sku": "metrics", "stock": 10, "reservation_ttl_secs": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut orders = Vec::new();
    for user in ["ann", "bob", "cid"] {
        let (status, body) = send(
            &http,
            Method::POST,
            &format!("{base}/v1/sales/metrics/purchase"),
            Some(json!({ "user": user })),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        orders.push(body["order_id"].as_str().unwrap().to_owned());
    }
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/orders/{}/pay", orders[0]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/orders/{}/cancel", orders[1]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // An event nobody can read: the worker sends it to the dead-letter topic.
    let producer: FutureProducer = nexussale_kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", stack.kafka.bootstrap())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&stack.topic)
                .key("metrics")
                .payload("not an order event"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    // The store loses the sale (Redis emptied): the next purchase meets it and rebuilds.
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut connection = redis.get_connection().unwrap();
    let prefix = args[args
        .iter()
        .position(|arg| *arg == "--redis-prefix")
        .unwrap()
        + 1];
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut connection)
        .unwrap();
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut connection).unwrap();
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/sales/metrics/purchase"),
        Some(json!({ "user": "dan" })),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let needed = metrics_in_use();
    assert!(needed.len() >= 15, "{needed:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&http, &base).await;
        let served = served_series(&text);
        let missing: Vec<&String> = needed
            .iter()
            .filter(|name| !served.contains(*name))
            .collect();
        // The rebuild's and the expiry's series come once they happened.
        if missing.is_empty()
            && produced(&text).is_some_and(|(events, requests)| events >= 3 && requests >= 1)
            && text.contains("nexussale_orders_settled_total{status=\"expired\"} 1")
            && text.contains("nexussale_dead_letters_total 1")
            && text.contains("nexussale_stock_rebuilds_total{outcome=\"restored\"} 1")
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "missing from /metrics: {missing:?}, or an expiry, a dead letter or a rebuild \
             not counted once, or the producer's events not counted\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for expected in [
        "nexussale_orders_settled_total{status=\"paid\"} 1",
        "nexussale_orders_settled_total{status=\"cancelled\"} 1",
        "nexussale_backend_up{backend=\"stock\"} 1",
        "nexussale_reconcile_drift_units{sku=\"metrics\",kind=\"sold\"}",
        "nexussale_http_requests_total{method=\"POST\",route=\"/v1/sales/{sku}/purchase\",class=\"2xx\"} 3",
        "nexussale_http_requests_total{method=\"POST\",route=\"/v1/sales/{sku}/purchase\",class=\"5xx\"} 1",
        "nexussale_purchases_total{outcome=\"unavailable\"} 1",
        "nexussale_build_info{version=\"",
        "nexussale_sweeper_store_calls_total ",
    ] {
        assert!(text.contains(expected), "{expected} not in\n{text}");
    }
    // docs/OPERATIONS.md documents every family served.
    let operations = repository_file("docs/OPERATIONS.md");
    for family in served_series(&text) {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| family.strip_suffix(suffix))
            .unwrap_or(&family);
        assert!(
            operations.contains(&format!("`{family}")),
            "docs/OPERATIONS.md does not list {family}"
        );
    }
    // The producer's statistics: every event went out in some produce request, none in two.
    let (events, requests) = produced(&text).unwrap();
    assert!(requests <= events, "{events} events in {requests} requests");
    stop(server);
    stack.drop_database().await;
}

/// The Kafka producer's events sent and the produce requests that carried them, as served.
fn produced(text: &str) -> Option<(u64, u64)> {
    let value = |name: &str| {
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .parse::<u64>()
                .ok()
        })
    };
    Some((
        value("nexussale_kafka_events_produced_total")?,
        value("nexussale_kafka_produce_requests_total")?,
    ))
}

/// `promtool` checks the rules and the compose file's Prometheus configuration, and runs the
/// rules' unit tests (deploy/prometheus/alerts_test.yml).
#[test]
fn promtool_passes_the_rules_and_their_tests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus");
    let run = |args: &[&str]| match std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => Some(output),
        Err(err) => unavailable("promtool (Debian's prometheus package)", err),
    };
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["check", "config", "prometheus.yml"],
        &["test", "rules", "alerts_test.yml"],
    ] {
        let Some(output) = run(args) else { return };
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// One span, as the collector received it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    links: Vec<String>,
}

/// An OTLP/HTTP receiver: decodes each `ExportTraceServiceRequest` and keeps its spans.
struct Collector {
    address: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&spans);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let kept = Arc::clone(&kept);
                            async move {
                                assert_eq!(request.uri().path(), "/v1/traces");
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let export = ExportTraceServiceRequest::decode(body).unwrap();
                                kept.lock().extend(received(export));
                                Ok::<_, Infallible>(
                                    http::Response::builder()
                                        .header("content-type", "application/x-protobuf")
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            spans,
            task,
        }
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn received(export: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource in export.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value.as_ref())
            .and_then(|value| match &value.value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    name,
                )) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    links: span.links.iter().map(|link| hex(&link.trace_id)).collect(),
                });
            }
        }
    }
    spans
}

/// A front end (`--no-worker`) and a separate worker process on Redis, the Kafka mock cluster
/// and MySQL, both exporting to a collector: each purchase, sent with a `traceparent` of its
/// own, is one trace holding the front end's HTTP request, purchase, stock reserve and publish,
/// and the worker's insert of that order, each span a child of the one before it across the
/// process boundary. The front end's JSON log lines name the trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_is_one_trace_from_http_to_the_workers_insert() {
    let Some(stack) = Stack::start("traces", 2).await else {
        return;
    };
    let collector = Collector::start().await;
    let otlp = collector.address.clone();
    let env = |service| {
        [
            ("OTEL_SERVICE_NAME", service),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
            ("NEXUSSALE_LOG_FORMAT", "json"),
        ]
    };
    let (front, front_address, front_log) = start_server_with_env(
        &stack.args(&["--no-worker", "--otlp-endpoint", &otlp]),
        &env("front"),
    );
    let (worker, _, _) =
        start_server_with_env(&stack.args(&["--otlp-endpoint", &otlp]), &env("worker"));
    let base = format!("http://{front_address}");
    let http = client();
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/sales"),
        Some(json!({"sku": "traced", "stock": 100})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // Each purchase carries a trace of its own, as a calling service's span would.
    let mut traces: BTreeMap<String, (String, String)> = BTreeMap::new();
    for n in 0..5u32 {
        let trace_id = format!("{:032x}", 0xabc0_0000_u128 + u128::from(n) + 1);
        let caller = format!("{:016x}", 0x1000 + n);
        let traceparent = format!("00-{trace_id}-{caller}-01");
        let (status, body) = common::send_as(
            &http,
            Method::POST,
            &format!("{base}/v1/sales/traced/purchase"),
            None,
            &[("traceparent", &traceparent)],
            Some(json!({ "user": format!("buyer-{n}") })),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        traces.insert(
            trace_id,
            (caller, body["order_id"].as_str().unwrap().to_owned()),
        );
    }

    // Wait until the worker's insert of each order has been exported too.
    let deadline = Instant::now() + Duration::from_secs(60);
    let spans = loop {
        let spans = collector.spans();
        let inserted = traces
            .keys()
            .filter(|trace| {
                spans
                    .iter()
                    .any(|span| &span.trace_id == *trace && span.name == "insert order")
            })
            .count();
        if inserted == traces.len() {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "{inserted} of {} orders' inserts traced; spans: {spans:#?}",
            traces.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (trace, (caller, order)) in &traces {
        let in_trace: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|span| &span.trace_id == trace)
            .collect();
        let by_name: HashMap<&str, &ReceivedSpan> = in_trace
            .iter()
            .map(|span| (span.name.as_str(), *span))
            .collect();
        let one = |name: &str| -> &ReceivedSpan {
            by_name
                .get(name)
                .unwrap_or_else(|| panic!("no {name:?} span in trace {trace}: {in_trace:#?}"))
        };
        let http_span = one("POST /v1/sales/{sku}/purchase");
        let purchase = one("purchase");
        let reserve = one("stock reserve");
        let publish = one("queue publish");
        let insert = one("insert order");
        // The chain: the caller → HTTP → purchase → reserve, publish → (Kafka) → insert.
        assert_eq!(&http_span.parent, caller, "{in_trace:#?}");
        assert_eq!(purchase.parent, http_span.span_id);
        assert_eq!(reserve.parent, purchase.span_id);
        assert_eq!(publish.parent, purchase.span_id);
        assert_eq!(insert.parent, publish.span_id, "{in_trace:#?}");
        for span in [http_span, purchase, reserve, publish] {
            assert_eq!(span.service, "front", "{span:?}");
        }
        assert_eq!(insert.service, "worker");
        // The worker's batch joins each trace it persisted: as a child, or by a link.
        assert!(
            spans.iter().any(|span| span.name == "worker batch"
                && span.service == "worker"
                && (&span.trace_id == trace || span.links.contains(trace))),
            "no worker batch joins {trace} (order {order})"
        );
    }
    // The front end's log lines of a request name its trace and span, beside the request id.
    let log = front_log.lock().clone();
    let first_trace = traces.keys().next().unwrap();
    assert!(
        log.lines().any(
            |line| line.contains(&format!("\"trace_id\":\"{first_trace}\""))
                && line.contains("\"span_id\":\"")
                && line.contains("\"request_id\":\"")
        ),
        "no JSON line names trace {first_trace}:\n{log}"
    );
    stop(front);
    stop(worker);
    stack.drop_database().await;
}

/// Sampling is decided as a trace starts, and followed downstream: with a ratio of 0, a caller
/// that sampled its trace gets every span of its purchase (to the worker's insert, through the
/// in-process queue), one that did not gets none, nor does a request without a caller's trace;
/// and nothing else (the sweeper, a backend call outside a request) starts a trace of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_follows_the_callers_decision_and_the_ratio() {
    let collector = Collector::start().await;
    let (server, address, _) = start_server_with_env(
        &["--otlp-endpoint", &collector.address],
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    );
    let base = format!("http://{address}");
    let http = client();
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/sales"),
        Some(json!({"sku": "sampled", "stock": 100})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (mut sampled, mut unsampled) = (BTreeSet::new(), BTreeSet::new());
    for n in 0..30u32 {
        let trace_id = format!("{:032x}", 0xdef0_0000_u128 + u128::from(n) + 1);
        let flags = match n % 3 {
            0 => Some("01"),
            1 => Some("00"),
            _ => None,
        };
        let traceparent = flags.map(|flags| format!("00-{trace_id}-{:016x}-{flags}", 0x2000 + n));
        let headers: Vec<(&str, &str)> = traceparent
            .iter()
            .map(|value| ("traceparent", value.as_str()))
            .collect();
        let (status, body) = common::send_as(
            &http,
            Method::POST,
            &format!("{base}/v1/sales/sampled/purchase"),
            None,
            &headers,
            Some(json!({ "user": format!("buyer-{n}") })),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        match flags {
            Some("01") => sampled.insert(trace_id),
            Some(_) => unsampled.insert(trace_id),
            None => false,
        };
    }
    // Every sampled purchase's insert arrives; then a few export rounds more for stragglers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = collector.spans();
        let inserted: BTreeSet<&String> = spans
            .iter()
            .filter(|span| span.name == "insert order")
            .map(|span| &span.trace_id)
            .collect();
        if inserted.len() >= sampled.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} inserts: {spans:#?}",
            inserted.len(),
            sampled.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop(server);
    let spans = collector.spans();
    // Outside the sampled traces, only the trace of a worker batch that joined several (its
    // own, linked to a sampled one) and what that batch did.
    let batches: BTreeSet<&String> = spans
        .iter()
        .filter(|span| {
            span.name == "worker batch" && span.links.iter().any(|link| sampled.contains(link))
        })
        .map(|span| &span.trace_id)
        .collect();
    for span in &spans {
        assert!(
            !unsampled.contains(&span.trace_id),
            "a trace its caller did not sample was recorded: {span:#?}"
        );
        assert!(
            sampled.contains(&span.trace_id) || batches.contains(&span.trace_id),
            "a trace started that no caller sampled: {span:#?}"
        );
    }
    for trace in &sampled {
        for name in ["POST /v1/sales/{sku}/purchase", "purchase", "insert order"] {
            assert!(
                spans
                    .iter()
                    .any(|span| &span.trace_id == trace && span.name == name),
                "no {name:?} in sampled trace {trace}"
            );
        }
    }
}

/// With the collector's address black-holed (connections accepted, never answered) every
/// purchase of a burst is answered at once: the export waits on its own thread, never in the
/// request; and the server still stops promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_holds_up_no_purchase() {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", hole.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = tokio::spawn({
        let held = Arc::clone(&held);
        async move {
            while let Ok((stream, _)) = hole.accept().await {
                held.lock().push(stream);
            }
        }
    });
    let (server, address, _) = start_server_with_env(
        &["--otlp-endpoint", &otlp],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    );
    let base = format!("http://{address}");
    let http = client();
    let (status, _) = send(
        &http,
        Method::POST,
        &format!("{base}/v1/sales"),
        Some(json!({"sku": "dark", "stock": 10_000})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let (http, base, slowest) = (http.clone(), base.clone(), Arc::clone(&slowest));
            tokio::spawn(async move {
                for n in 0..125 {
                    let started = Instant::now();
                    let uri = format!("{base}/v1/sales/dark/purchase");
                    let purchase = send(
                        &http,
                        Method::POST,
                        &uri,
                        Some(json!({ "user": format!("u{task}-{n}") })),
                    );
                    let (status, body) = tokio::time::timeout(Duration::from_secs(5), purchase)
                        .await
                        .expect("a purchase waited 5 s with the collector black-holed");
                    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                    let took = started.elapsed();
                    let mut slowest = slowest.lock();
                    *slowest = (*slowest).max(took);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Exports are under way (and stuck) by now.
    assert!(
        !held.lock().is_empty(),
        "the exporter never tried the collector"
    );
    // One export waits up to its 10 s timeout: a purchase that waited on it would show it.
    let slowest = *slowest.lock();
    assert!(
        slowest < Duration::from_secs(5),
        "a purchase took {slowest:?} with the collector black-holed"
    );
    let stopping = Instant::now();
    stop(server);
    assert!(stopping.elapsed() < Duration::from_secs(15));
    holder.abort();
}
