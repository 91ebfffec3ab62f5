//! The operators' view, checked against a real Prometheus.
//!
//! `promtool` checks the configuration and the alert rules and runs their unit tests
//! (`deploy/prometheus/alerts.test.yml`); the Grafana dashboard is checked structurally (Grafana
//! itself is not installed here). Then a live node under a synthetic load is scraped by a real
//! Prometheus on 127.0.0.1 (every second, rules evaluated every second; otherwise the deploy
//! configuration as shipped), and:
//! - every query of every dashboard panel returns data;
//! - every metric an alert rule names exists;
//! - pausing the processor while ingest goes on makes `MarqueeProcessorLagGrowing` pending.
//!
//! Needs `prometheus` and `promtool` (Debian's `prometheus` package, which `scripts/setup.sh`
//! installs). Where they are absent the test says it was skipped and passes, unless
//! `MARQUEE_REQUIRE_PROMETHEUS=1` (set by CI), which makes their absence a failure.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The data source uid the dashboard must use: the one provisioned for Grafana.
const DATASOURCE_UID: &str = "marquee-prometheus";

/// How long the live checks wait for Prometheus to have what they look for.
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// `prometheus` and `promtool`, or `None` (after saying so) when the test must be skipped.
fn prometheus_binaries() -> Option<(PathBuf, PathBuf)> {
    match (find_in_path("prometheus"), find_in_path("promtool")) {
        (Some(server), Some(tool)) => Some((server, tool)),
        _ => {
            let required = std::env::var("MARQUEE_REQUIRE_PROMETHEUS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "MARQUEE_REQUIRE_PROMETHEUS=1 but prometheus/promtool are not on PATH \
                 (scripts/setup.sh installs Debian's prometheus package)"
            );
            eprintln!(
                "skipped: prometheus and promtool are not on PATH (scripts/setup.sh installs them)"
            );
            None
        }
    }
}

fn promtool(tool: &Path, args: &[&str]) {
    let output = Command::new(tool)
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn dashboard() -> Value {
    let path = repo().join("deploy/grafana/dashboards/marquee.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard is JSON")
}

/// Every query expression of every panel (rows excluded), with its panel title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push((title.clone(), expr.to_owned()));
            }
        }
    }
    queries
}

#[test]
fn the_dashboard_is_well_formed_and_uses_the_provisioned_data_source() {
    let provisioning =
        std::fs::read_to_string(repo().join("deploy/grafana/provisioning/datasources/marquee.yml"))
            .unwrap();
    assert!(
        provisioning.contains(&format!("uid: {DATASOURCE_UID}")),
        "the provisioned data source has uid {DATASOURCE_UID}"
    );
    let dashboard = dashboard();
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion: {}",
        dashboard["schemaVersion"]
    );
    assert!(dashboard["uid"].as_str().is_some_and(|uid| !uid.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate id: {title}"
        );
        let grid = &panel["gridPos"];
        assert!(
            ["h", "w", "x", "y"].iter().all(|key| grid[key].is_u64()),
            "gridPos of {title}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], DATASOURCE_UID, "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], DATASOURCE_UID, "{title}");
            let expr = target["expr"].as_str().unwrap_or("");
            assert!(!expr.trim().is_empty(), "{title} has an empty query");
            assert!(
                !expr.replace(' ', "").contains("orvector("),
                "{title} pads its query: {expr}"
            );
        }
    }
    // Every area the operators' view must cover has a panel.
    let titles: Vec<String> = panels
        .iter()
        .filter_map(|panel| panel["title"].as_str())
        .map(str::to_lowercase)
        .collect();
    for area in [
        "accepted",
        "lag",
        "freshness",
        "latency",
        "error",
        "strategy",
        "index",
        "rocksdb",
        "memory",
        "cpu",
    ] {
        assert!(
            titles.iter().any(|title| title.contains(area)),
            "no panel about {area}: {titles:?}"
        );
    }
}

/// A Prometheus server on 127.0.0.1, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Prometheus with the shipped configuration, changed only in what a test needs: the
/// node's address, one-second scrapes and rule evaluations, and absolute paths.
fn start_prometheus(server: &Path, target: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("deploy/prometheus/prometheus.yml")).unwrap();
    let alerts = repo().join("deploy/prometheus/alerts.yml");
    let mut config = shipped.clone();
    for (from, to) in [
        ("scrape_interval: 15s", "scrape_interval: 1s".to_owned()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_owned(),
        ),
        ("- alerts.yml", format!("- {}", alerts.display())),
        ("\"127.0.0.1:8080\"", format!("\"{target}\"")),
    ] {
        assert!(
            config.contains(from),
            "the shipped prometheus.yml has `{from}`"
        );
        config = config.replace(from, &to);
    }
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(server)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// The result vector of an instant query, or `None` while Prometheus cannot answer.
async fn instant_query(prometheus: &str, expr: &str) -> Option<Vec<Value>> {
    let mut url = reqwest::Url::parse(&format!("{prometheus}/api/v1/query")).unwrap();
    url.query_pairs_mut().append_pair("query", expr);
    let response = http().get(url).send().await.ok()?;
    let body: Value = response.json().await.ok()?;
    assert_eq!(body["status"], "success", "query {expr}: {body}");
    body["data"]["result"].as_array().cloned()
}

/// Polls until `check` holds or the deadline passes; returns whether it held.
async fn within<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Traffic on every route until `stop`: events (with one malformed and one invalid element per
/// batch), recommendations, similar items, trending, items, users, probes, a route that does
/// not exist and a bad parameter.
async fn load(base: String, stop: Arc<AtomicBool>) {
    let client = http();
    let kinds = [
        "view",
        "click",
        "rating",
        "like",
        "add_to_watchlist",
        "watch",
    ];
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut lines = Vec::new();
        for k in 0..40u64 {
            let n = round * 40 + k;
            let kind = kinds[(n % kinds.len() as u64) as usize];
            let mut event = json!({
                "event_id": format!("load-{n}"),
                "user_id": format!("viewer-{}", n % 50),
                "item_id": format!("film-{}", (n * 7 + n / 50) % 60),
                "kind": kind,
            });
            match kind {
                "rating" => event["value"] = json!(1 + n % 5),
                "watch" => event["value"] = json!(0.8),
                _ => {}
            }
            lines.push(event.to_string());
        }
        lines.push("{not json".to_owned());
        lines.push(
            json!({"user_id": "viewer-1", "item_id": "film-1", "kind": "teleport"}).to_string(),
        );
        let _ = client
            .post(format!("{base}/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(lines.join("\n"))
            .send()
            .await;
        let user = round % 50;
        let film = round % 60;
        // A list shown, and a click on its first item: the experiments' panels.
        if let Ok(response) = client
            .get(format!(
                "{base}/v1/users/viewer-{user}/recommendations?count=10"
            ))
            .send()
            .await
            && let Ok(list) = response.json::<Value>().await
            && let Some(first) = list["items"][0]["item_id"].as_str()
        {
            let id = &list["recommendation_id"];
            let _ = client
                .post(format!("{base}/v1/events"))
                .json(&json!([
                    {"user_id": format!("viewer-{user}"), "kind": "impression",
                     "recommendation_id": id, "positions": [0, 1, 2]},
                    {"user_id": format!("viewer-{user}"), "item_id": first, "kind": "click",
                     "recommendation_id": id, "position": 0},
                ]))
                .send()
                .await;
        }
        for path in [
            format!("/v1/users/newcomer-{round}/recommendations?count=5"),
            format!("/v1/users/viewer-{user}"),
            format!("/v1/items/film-{film}/similar?count=5"),
            format!("/v1/items/film-{film}"),
            "/v1/trending?count=10".to_owned(),
            "/v1/admin/processor".to_owned(),
            "/healthz".to_owned(),
            "/readyz".to_owned(),
            "/openapi.json".to_owned(),
            "/no/such/route".to_owned(),
            "/v1/trending?count=many".to_owned(),
        ] {
            let _ = client.get(format!("{base}{path}")).send().await;
        }
        let _ = client
            .put(format!("{base}/v1/items/film-{film}"))
            .json(&json!({"title": format!("Film {film}"), "genres": ["Drama"]}))
            .send()
            .await;
        let _ = client
            .post(format!("{base}/v1/items"))
            .json(&json!([{"item_id": format!("extra-{}", round % 5), "genres": ["Comedy"]}]))
            .send()
            .await;
        round += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Metric names in a PromQL expression: identifiers that start with `marquee_`, and `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut current = String::new();
    let mut in_string = false;
    for character in expr.chars().chain(std::iter::once(' ')) {
        if character == '"' {
            in_string = !in_string;
            current.clear();
            continue;
        }
        if in_string {
            continue;
        }
        if character.is_ascii_alphanumeric() || character == '_' || character == ':' {
            current.push(character);
        } else {
            if current.starts_with("marquee_") || current == "up" {
                names.insert(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_finds_every_dashboard_query_and_alert_metric_and_the_lag_alert_fires() {
    let Some((server, tool)) = prometheus_binaries() else {
        return;
    };
    promtool(
        &tool,
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    promtool(&tool, &["check", "rules", "deploy/prometheus/alerts.yml"]);
    promtool(
        &tool,
        &["test", "rules", "deploy/prometheus/alerts.test.yml"],
    );

    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let (status, answer) = post_json(
        &format!("{base}/v1/admin/experiments"),
        &json!({"name": "load", "status": "running",
                "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(load(base.clone(), stop.clone()));
    let prometheus = start_prometheus(&server, &node.addr.to_string());
    let url = prometheus.url.clone();

    let scraped = within(PROMETHEUS_DEADLINE, || async {
        instant_query(&url, "up{job=\"marquee\"} == 1")
            .await
            .is_some_and(|result| !result.is_empty())
    })
    .await;
    assert!(scraped, "Prometheus never scraped the node at {base}");

    // Every panel query returns data. `$__rate_interval` is Grafana's; with one-second
    // scrapes, 15 s holds enough samples for a rate.
    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries(&dashboard()) {
        let expr = expr.replace("$__rate_interval", "15s");
        let found = within(PROMETHEUS_DEADLINE, || async {
            instant_query(&url, &expr)
                .await
                .is_some_and(|result| !result.is_empty())
        })
        .await;
        if !found {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );

    // Every metric an alert rule names exists (a healthy system returns nothing for an alert
    // condition itself, so the names are what can be checked).
    let (status, rules) = get_json(&format!("{url}/api/v1/rules")).await;
    assert_eq!(status, 200, "{rules}");
    let exposition = get_text(&format!("{base}/metrics")).await;
    let families: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let mut alert_count = 0;
    for group in rules["data"]["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            alert_count += 1;
            let query = rule["query"].as_str().expect("rule query");
            for name in metric_names(query) {
                if name == "up" {
                    continue;
                }
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| {
                        name.strip_suffix(suffix)
                            .filter(|base| families.contains(base))
                    })
                    .unwrap_or(&name);
                assert!(
                    families.contains(family),
                    "alert {} names {name}, which /metrics does not have",
                    rule["name"]
                );
            }
        }
    }
    let shipped = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml"))
        .expect("alerts.yml")
        .lines()
        .filter(|line| line.trim_start().starts_with("- alert:"))
        .count();
    assert!(shipped >= 10, "alerts.yml holds its alerts ({shipped})");
    assert_eq!(alert_count, shipped, "every alert of alerts.yml is loaded");

    // Induced fault: the processor stops while ingest continues; the lag alert goes pending.
    let (status, answer) = post_json(
        &format!("{base}/v1/admin/processor"),
        &json!({"paused": true}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["paused"], true);
    let pending = within(PROMETHEUS_DEADLINE, || async {
        let Ok(response) = http().get(format!("{url}/api/v1/alerts")).send().await else {
            return false;
        };
        let alerts: Value = response.json().await.unwrap_or(Value::Null);
        alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|alert| {
                alert["labels"]["alertname"] == "MarqueeProcessorLagGrowing"
                    && (alert["state"] == "pending" || alert["state"] == "firing")
            })
    })
    .await;
    assert!(
        pending,
        "MarqueeProcessorLagGrowing did not go pending while the processor was paused"
    );

    // Resumed, the processor works off the backlog.
    let (status, _) = post_json(
        &format!("{base}/v1/admin/processor"),
        &json!({"paused": false}),
    )
    .await;
    assert_eq!(status, 200);
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    caught_up(&node).await;
    drop(prometheus);
    node.shutdown().await.unwrap();
}

#[test]
fn metric_names_are_read_from_expressions() {
    let names = metric_names(
        r#"sum by (instance) (rate(marquee_a_total{route="/v1/x_y"}[5m])) > 0 and up == 0"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["marquee_a_total".to_owned(), "up".to_owned()]
    );
}
