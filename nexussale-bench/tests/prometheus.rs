//! A real Prometheus (Debian's) scrapes a server through a `nexussale-bench` burst: its queries
//! answer what the bench saw, and it loads and evaluates the alert rules without error. (Its
//! own test binary: the server's counters are this process's, and no other test's purchases
//! may land in them.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bench, in_memory};
use nexussale_core::testkit::servers::{free_port, temp_dir};
use nexussale_core::testkit::services::unavailable;
use serde_json::Value;

/// A throwaway Prometheus scraping `target` every second; stopped (and its data removed) when
/// dropped, also by a failed test.
struct Prometheus {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    fn start(target: &str) -> Option<Self> {
        let dir = temp_dir("prometheus").unwrap();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml");
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: nexussale\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", free_port().unwrap());
        let child = match Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                return unavailable("prometheus (Debian's prometheus package)", err);
            }
        };
        let prometheus = Self {
            child,
            address,
            dir,
        };
        prometheus.wait("ready", || {
            let ready = Command::new("curl")
                .args(["-fsS", &format!("http://{}/-/ready", prometheus.address)])
                .output()
                .is_ok_and(|output| output.status.success());
            ready.then_some(())
        });
        Some(prometheus)
    }

    /// The `data.result` of an instant query.
    fn query(&self, query: &str) -> Vec<Value> {
        let output = Command::new("curl")
            .args([
                "-fsS",
                &format!("http://{}/api/v1/query", self.address),
                "--data-urlencode",
                &format!("query={query}"),
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{query}: {output:?}");
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        answer["data"]["result"].as_array().unwrap().clone()
    }

    /// The one value of an instant query, if it has one.
    fn value(&self, query: &str) -> Option<f64> {
        let result = self.query(query);
        let value = result.first()?["value"][1].as_str()?;
        value.parse().ok()
    }

    fn wait<T>(&self, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(value) = ready() {
                return value;
            }
            assert!(Instant::now() < deadline, "prometheus: {what} within 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn prometheus_sees_what_the_bench_saw_and_evaluates_the_rules() {
    let server = in_memory(true);
    let Some(prometheus) = Prometheus::start(&server.address) else {
        return;
    };
    prometheus.wait("the server scraped", || {
        (prometheus.value("up{job=\"nexussale\"}") == Some(1.0)).then_some(())
    });
    let (code, summary) = bench(
        &server.address,
        &[
            "--sku",
            "scraped",
            "--stock",
            "1500",
            "--users",
            "4000",
            "--concurrency",
            "32",
        ],
    );
    assert_eq!(code, 0, "{summary}");
    let attempts = summary["attempts"].as_f64().unwrap();
    // Once a scrape after the burst is in: the counters by outcome are the bench's counts.
    let by_outcome = |outcome: &str| {
        prometheus.value(&format!(
            "sum(nexussale_purchases_total{{outcome=\"{outcome}\"}})"
        ))
    };
    prometheus.wait("a scrape after the burst", || {
        (by_outcome("accepted") == summary["accepted"].as_f64()
            && prometheus.value("sum(nexussale_purchases_total)") == Some(attempts))
        .then_some(())
    });
    assert_eq!(by_outcome("sold_out"), summary["sold_out"].as_f64());
    // The purchases Prometheus counts over the window: exactly what the bench sent; and its rate
    // over the window, what the bench sent over it (`increase` extrapolates to the window's end
    // by up to a scrape interval: give it 20 s of samples to be within 10 %).
    let exact = prometheus
        .value("sum(max_over_time(nexussale_purchases_total[5m]) - min_over_time(nexussale_purchases_total[5m]))")
        .unwrap();
    assert_eq!(exact, attempts);
    std::thread::sleep(Duration::from_secs(20));
    let increase = prometheus
        .value("sum(increase(nexussale_purchases_total[5m]))")
        .unwrap();
    assert!(
        (increase - attempts).abs() <= attempts * 0.1,
        "increase {increase}, the bench's attempts {attempts}"
    );
    // Requests through the purchase route, all answered 2xx or 409.
    let purchase_requests = prometheus
        .value("sum(nexussale_http_requests_total{route=\"/v1/sales/{sku}/purchase\"})")
        .unwrap();
    assert_eq!(purchase_requests, attempts);
    // The sale's burn-down: all sold or reserved, none left.
    assert_eq!(
        prometheus.value("nexussale_units_available{sku=\"scraped\"}"),
        Some(0.0)
    );
    // The rules load and evaluate (each rule's health `ok`), and none fires on a healthy run.
    let rules = prometheus.wait("the rules evaluated", || {
        let output = Command::new("curl")
            .args([
                "-fsS",
                &format!("http://{}/api/v1/rules", prometheus.address),
            ])
            .output()
            .ok()?;
        let answer: Value = serde_json::from_slice(&output.stdout).ok()?;
        let rules: Vec<Value> = answer["data"]["groups"][0]["rules"].as_array()?.clone();
        rules
            .iter()
            .all(|rule| rule["health"] == "ok" && rule["lastEvaluation"] != "0001-01-01T00:00:00Z")
            .then_some(rules)
    });
    assert_eq!(rules.len(), 9);
    let firing: Vec<&Value> = rules
        .iter()
        .filter(|rule| rule["state"] == "firing")
        .collect();
    assert!(firing.is_empty(), "{firing:#?}");
    drop(prometheus);
    drop(server);
}
