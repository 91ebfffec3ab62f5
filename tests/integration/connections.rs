//! The server's connection limits, against a real node over raw TCP: a client that sends a
//! request head slowly, or a keep-alive connection left idle, is disconnected after
//! `limits.header_read_timeout_secs` (hyper's own default never ran under `axum::serve`: such a
//! connection stayed open for good); past `limits.max_connections` a new connection is closed
//! at once, counted, and the node serves again once connections close.

use crate::common;

use std::net::SocketAddr;

use common::{DEADLINE, get_text, metric_sample, start, test_config};
use marquee_api::guard::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; the bytes it sent before. Fails at the
/// test deadline (a connection nobody closes).
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .expect("the server closes the connection before the deadline");
        match read {
            Ok(0) | Err(_) => return received,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

async fn metrics(addr: SocketAddr) -> String {
    get_text(&format!("http://{addr}/metrics")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits = Limits {
        header_read_timeout_secs: 1.0,
        ..Limits::default()
    };
    let node = start(config).await;

    // A request head that never ends: closed without an answer.
    let mut slow = TcpStream::connect(node.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answered = until_closed(&mut slow).await;
    assert!(
        !String::from_utf8_lossy(&answered).contains("200 OK"),
        "an unfinished head is not served"
    );

    // A keep-alive connection: its request answered, then closed once idle.
    let mut idle = TcpStream::connect(node.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = until_closed(&mut idle).await;
    assert!(
        String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered)
    );

    // Whole requests are served as before.
    let status = common::http()
        .get(format!("{}/healthz", node.url()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_are_closed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let node = start(config).await;

    // Three connections held open (a request each, so each is surely accepted).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(node.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 1024];
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // The fourth is closed without an answer.
    let mut fourth = TcpStream::connect(node.addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(
        until_closed(&mut fourth).await.is_empty(),
        "no answer past the cap"
    );

    // Once they close, the node serves again; the refusal was counted.
    drop(held);
    let url = format!("{}/metrics", node.url());
    let text = common::eventually("the node to serve again", || {
        let url = url.clone();
        async move {
            let response = common::http().get(url).send().await.ok()?;
            response.text().await.ok()
        }
    })
    .await;
    let refused = metric_sample(&text, "marquee_http_connections_refused_total");
    assert!(refused >= 1.0, "refused: {refused}");
    let open = metric_sample(&metrics(node.addr).await, "marquee_http_connections_open");
    assert!((1.0..=3.0).contains(&open), "open connections: {open}");
    node.shutdown().await.unwrap();
}
