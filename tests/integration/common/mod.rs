//! Helpers shared by the integration tests: a real node on a temporary data directory and an
//! HTTP client against it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use marquee_ingest::EventLog;
use marquee_node::{NodeConfig, RunningNode};
use serde_json::Value;

/// How long a test waits for something that should happen in well under a second.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A node configuration for tests: loopback, an ephemeral port, quick index rebuilds, auth off
/// (the tests of keys turn it on).
pub fn test_config(data_dir: &Path) -> NodeConfig {
    let mut config = NodeConfig::new(data_dir, "127.0.0.1:0".parse().unwrap());
    config.auth = marquee_api::guard::AuthMode::Off;
    config.index.rebuild_interval = Duration::from_millis(500);
    config.block_cache_bytes = 32 * 1024 * 1024;
    config
}

pub async fn start(config: NodeConfig) -> RunningNode {
    let node = RunningNode::start(config).await.expect("node starts");
    node.wait_ready().await.expect("node loads");
    node
}

/// A Fluvio backend on a topic of its own for one test (`marquee-test-<name>-<time>`), when
/// `MARQUEE_FLUVIO_ENDPOINT` holds the `HOST:PORT` of a running cluster's SC; `None`, after
/// printing that the test was skipped, otherwise. There is no stand-in Fluvio: without a
/// cluster, the same test body runs on the embedded log only. `MARQUEE_FLUVIO_REPLICATION`
/// (default 1) sets the topic's replication factor, for a cluster of several SPUs.
pub fn fluvio_backend(name: &str) -> Option<marquee_ingest::LogBackend> {
    match std::env::var("MARQUEE_FLUVIO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            // A cluster of several SPUs can test replicated topics.
            let replication = std::env::var("MARQUEE_FLUVIO_REPLICATION")
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(1);
            Some(marquee_ingest::LogBackend::Fluvio {
                endpoint,
                topic: format!("marquee-test-{name}-{}", nanos % 1_000_000_000_000),
                replication,
            })
        }
        _ => {
            eprintln!(
                "skipped: set MARQUEE_FLUVIO_ENDPOINT=HOST:PORT (a running Fluvio cluster's SC) \
                 to run this test on Fluvio"
            );
            None
        }
    }
}

/// Waits until the processor has applied everything appended so far.
pub async fn caught_up(node: &RunningNode) {
    let services = node.services().expect("ready");
    let started = Instant::now();
    loop {
        let ends = services.log.end_offsets().unwrap();
        if services.processor.committed_offsets() == ends {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "processor did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn get_json(url: &str) -> (u16, Value) {
    let response = http().get(url).send().await.expect("request sent");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

pub async fn get_text(url: &str) -> String {
    let response = http().get(url).send().await.expect("request sent");
    response.text().await.expect("a text body")
}

pub async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = http()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

pub async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    post(url, "application/json", serde_json::to_vec(body).unwrap()).await
}

/// Item ids of a recommendation (or similar/trending) answer.
pub fn item_ids(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item["item_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` until it returns `Some`, or fails the test at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one sample of a metrics text, e.g. `name{reason="auth"}`; 0 when absent.
/// Sends `request` with `Prefer: respond-async`: it must answer 202 with a job whose `url` is
/// the `Location` header. Returns the job as answered.
pub async fn start_job(request: reqwest::RequestBuilder) -> Value {
    let response = request
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    let job: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{job}");
    assert_eq!(
        Some(job["url"].as_str().unwrap()),
        location.as_deref(),
        "a 202 names the job in Location: {job}"
    );
    job
}

/// Polls the job at `base` + `url` until it is no longer running; returns it then.
pub async fn finished_job(base: &str, url: &str) -> Value {
    eventually("the job to end", || async {
        let (status, job) = get_json(&format!("{base}{url}")).await;
        assert_eq!(status, 200, "{job}");
        (job["status"] != "running").then_some(job)
    })
    .await
}

pub fn metric_sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every sample of the metric `name` in a metrics text, whatever their labels.
pub fn metric_total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with(name) && matches!(line.as_bytes().get(name.len()), Some(b'{' | b' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A loopback port free at the time of the call, for a child process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `marquee serve` child process.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub fn start(data_dir: &Path, port: u16) -> Server {
        Server::start_with(data_dir, port, &[])
    }

    /// `marquee serve` with `extra` arguments (`--config FILE`, `--auth on`, …).
    pub fn start_with(data_dir: &Path, port: u16, extra: &[&str]) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_marquee"))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("MARQUEE_LOG", "warn")
            // Auth off unless `extra` turns it on (a flag wins over its variable).
            .env("MARQUEE_AUTH", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("marquee serve starts");
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(response) = http().get(format!("{}/readyz", self.url)).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "marquee serve exited during start-up"
            );
            assert!(started.elapsed() < DEADLINE, "not ready in time");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn kill(mut self) {
        // SIGKILL: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed assertion must not leave a node running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The clock the server stamps appends with: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Per item: event count and co-occurrence list (neighbour id → weight), as an item table holds
/// them. By id: two states may number the items differently.
pub type ItemSummary =
    std::collections::BTreeMap<String, (u64, std::collections::BTreeMap<String, f32>)>;

pub fn item_summary(table: &marquee_vector_store::ItemTable) -> ItemSummary {
    let table = table.read();
    table
        .numbers()
        .map(|number| {
            let pairs = table
                .neighbours(number)
                .entries()
                .iter()
                .map(|&(to, weight)| (table.id(to).unwrap().to_string(), weight))
                .collect();
            (
                table.id(number).unwrap().to_string(),
                (table.event_count(number), pairs),
            )
        })
        .collect()
}

/// The first difference between two summaries, if any: counts and neighbours must be equal,
/// weights within a relative 1e-4 (the order additions arrive in, from two workers or two
/// nodes, moves the last bits of a sum).
pub fn item_difference(left: &ItemSummary, right: &ItemSummary) -> Option<String> {
    if left.len() != right.len() {
        return Some(format!("{} items against {}", left.len(), right.len()));
    }
    for (item, (count, pairs)) in left {
        let Some((other_count, other_pairs)) = right.get(item) else {
            return Some(format!("{item} missing"));
        };
        if count != other_count {
            return Some(format!("{item}: {count} events against {other_count}"));
        }
        if !pairs.keys().eq(other_pairs.keys()) {
            return Some(format!("{item}: other neighbours"));
        }
        for ((to, weight), other) in pairs.iter().zip(other_pairs.values()) {
            if (weight - other).abs() > 1e-4 * weight.abs().max(1.0) {
                return Some(format!("{item} → {to}: {weight} against {other}"));
            }
        }
    }
    None
}

/// A state store's settings for in-process tests: the default dimension, a 1-hour
/// de-duplication window, a 16 MiB block cache.
pub fn small_store_config() -> marquee_vector_store::StoreConfig {
    marquee_vector_store::StoreConfig {
        dimension: marquee_stream_processor::ModelConfig::default().stored_dimension(),
        dedup_window: Duration::from_secs(3600),
        block_cache_bytes: 16 << 20,
        cipher: None,
    }
}
