//! The `marquee` binary's logs and traces: JSON log lines off a terminal, a request id in the
//! response and in the log lines of its request, and spans exported over OTLP/HTTP.
//!
//! The collector here is a minimal HTTP server that records what it receives and answers 200:
//! the exporter under test is the real one, and the assertions are on the bytes it sent
//! (protobuf: strings appear verbatim).

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request the collector received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// Reads HTTP/1.1 requests on one connection until it closes, recording each.
fn serve_connection(stream: TcpStream, received: &Mutex<Vec<Received>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let mut length = 0usize;
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => value.trim().clone_into(&mut content_type),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        received.lock().unwrap().push(Received {
            path,
            content_type,
            body,
        });
        writer.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )?;
    }
}

fn start_collector() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let shared = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let _ = serve_connection(stream, &shared);
            });
        }
    });
    (port, received)
}

/// Kills the node if the test fails before stopping it.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_logged_as_json_with_their_id_and_exported_as_otlp_spans() {
    let (collector_port, received) = start_collector();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let log_path = dir.path().join("marquee.log");
    let child = Command::new(env!("CARGO_BIN_EXE_marquee"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args([
            "--otlp-endpoint",
            &format!("http://127.0.0.1:{collector_port}"),
        ])
        .env("MARQUEE_LOG", "info,tower_http=debug")
        .env("MARQUEE_AUTH", "off")
        .env_remove("MARQUEE_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("marquee starts");
    let mut node = Node(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let started = Instant::now();
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node did not get ready: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The client's request id is kept and returned; without one, the node makes one.
    let response = client
        .get(format!("{base}/v1/trending?count=3"))
        .header("x-request-id", "trace-me-4821")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-me-4821");
    // A path with a user id: logs and spans name its route, never the id (an erasure cannot
    // reach them).
    let response = client
        .get(format!(
            "{base}/v1/users/erasable-viewer-5309/recommendations"
        ))
        .header("x-request-id", "with-a-user-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client.get(format!("{base}/healthz")).send().await.unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");

    // SIGTERM: a clean stop flushes the spans still queued.
    let status = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    while node.0.try_wait().unwrap().is_none() {
        assert!(stopped.elapsed() < Duration::from_secs(30), "no clean stop");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Logs: standard error is a file here, so every line is a JSON object, and the lines of
    // the traced request carry its id.
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line["fields"]["message"] == "node ready")
    );
    assert!(
        lines
            .iter()
            .any(|line| line["span"]["request_id"] == "trace-me-4821"),
        "no log line of the request carries its id:\n{logs}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line["span"]["request_id"] == "with-a-user-id"
                && line["span"]["route"] == "/v1/users/{user_id}/recommendations"),
        "no log line names the route of the request with a user id:\n{logs}"
    );
    assert!(
        !logs.contains("erasable-viewer-5309"),
        "a user id in the logs:\n{logs}"
    );

    // Traces: at least one OTLP/HTTP protobuf export holding the service name, the request
    // span and its id.
    let received = received.lock().unwrap().clone();
    let traces: Vec<&Received> = received
        .iter()
        .filter(|request| request.path == "/v1/traces")
        .collect();
    assert!(!traces.is_empty(), "nothing exported: {received:?}");
    assert!(
        traces
            .iter()
            .all(|request| request.content_type == "application/x-protobuf")
    );
    let body: Vec<u8> = traces
        .iter()
        .flat_map(|request| request.body.clone())
        .collect();
    for needle in ["marquee", "request", "trace-me-4821", "/v1/trending"] {
        assert!(
            contains(&body, needle.as_bytes()),
            "`{needle}` is not in the exported spans"
        );
    }
    assert!(
        !contains(&body, b"erasable-viewer-5309"),
        "a user id in the exported spans"
    );
}
