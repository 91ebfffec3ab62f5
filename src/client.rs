//! A small client that sends catalogue items and events to a running node.
//!
//! Events are sent as NDJSON batches, one request at a time so that a user's events keep their
//! order. A batch answered 5xx or not answered at all is retried with exponential backoff (the
//! events carry ids, so a retry of a batch that was in fact appended is de-duplicated by the
//! processor); a 429 waits for its `Retry-After` and retries; another 4xx is reported and stops
//! the command. With an API key (`--api-key`, `MARQUEE_API_KEY`), every request carries it as
//! `Authorization: Bearer KEY`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use marquee_schemas::{Event, Item};
use serde::Deserialize;

/// Events per request.
pub const EVENTS_PER_REQUEST: usize = 5000;
/// Items per request.
pub const ITEMS_PER_REQUEST: usize = 2000;
const MAX_ATTEMPTS: u32 = 8;

/// The node's answer to an event batch.
#[derive(Debug, Deserialize)]
pub struct IngestAnswer {
    pub accepted: usize,
    pub rejected: Vec<serde_json::Value>,
}

/// Client of one node.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
}

impl Client {
    pub fn new(base_url: &str) -> Result<Client> {
        Client::with_api_key(base_url, None)
    }

    /// A client that sends `api_key` with every request.
    pub fn with_api_key(base_url: &str, api_key: Option<&str>) -> Result<Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .context("--api-key: not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Waits until the node answers `/readyz` with 200, up to `deadline`.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let response = self
                .http
                .get(format!("{}/readyz", self.base_url))
                .send()
                .await;
            if matches!(&response, Ok(answer) if answer.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > deadline {
                bail!("{} did not become ready within {deadline:?}", self.base_url);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn post_with_retry(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<String> {
        let url = format!("{}{path}", self.base_url);
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=MAX_ATTEMPTS {
            let outcome = self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone())
                .send()
                .await;
            match outcome {
                Ok(response) if response.status().is_success() => {
                    return response.text().await.context("reading the answer");
                }
                Ok(response)
                    if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS
                        && attempt < MAX_ATTEMPTS =>
                {
                    let wait = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait.min(60))).await;
                }
                Ok(response) if response.status().is_client_error() => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    bail!("{url} refused the request ({status}): {text}");
                }
                Ok(response) if attempt == MAX_ATTEMPTS => {
                    bail!(
                        "{url} answered {} after {attempt} attempts",
                        response.status()
                    );
                }
                Err(error) if attempt == MAX_ATTEMPTS => {
                    return Err(error).with_context(|| format!("sending to {url}"));
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Posts a JSON body (no retry: for admin calls that must not run twice) and returns the
    /// JSON answer; a non-2xx answer is an error carrying the server's message.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.base_url);
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("sending to {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{url} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("reading the answer of {url}"))
    }

    /// Upserts catalogue items in chunks.
    pub async fn put_items(&self, items: &[Item]) -> Result<()> {
        for chunk in items.chunks(ITEMS_PER_REQUEST) {
            let body = serde_json::to_vec(chunk).context("encoding items")?;
            self.post_with_retry("/v1/items", "application/json", body)
                .await?;
        }
        Ok(())
    }

    /// Sends one batch of events as NDJSON.
    pub async fn send_events(&self, events: &[Event]) -> Result<IngestAnswer> {
        let mut body = Vec::with_capacity(events.len() * 128);
        for event in events {
            serde_json::to_writer(&mut body, event).context("encoding an event")?;
            body.push(b'\n');
        }
        let text = self
            .post_with_retry("/v1/events", "application/x-ndjson", body)
            .await?;
        serde_json::from_str(&text).context("reading the ingest answer")
    }

    /// Sends `events` in batches, showing progress (a bar on a terminal, log lines otherwise).
    /// Returns the number of accepted events.
    pub async fn send_all_events(
        &self,
        events: impl Iterator<Item = Event>,
        total: u64,
        label: &str,
    ) -> Result<u64> {
        let progress = Progress::new(total, label);
        let mut accepted = 0u64;
        let mut batch = Vec::with_capacity(EVENTS_PER_REQUEST);
        let mut events = events.peekable();
        while events.peek().is_some() {
            batch.clear();
            batch.extend(events.by_ref().take(EVENTS_PER_REQUEST));
            let answer = self.send_events(&batch).await?;
            if let Some(first) = answer.rejected.first() {
                eprintln!("{} events rejected, first: {first}", answer.rejected.len());
            }
            accepted += answer.accepted as u64;
            progress.advance(batch.len() as u64);
        }
        progress.finish();
        Ok(accepted)
    }
}

/// Progress of a long command: an indicatif bar on a terminal, a line every 10% otherwise.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: std::cell::Cell<u64>,
    next_report: std::cell::Cell<u64>,
    started: Instant,
    label: String,
}

impl Progress {
    pub(crate) fn new(total: u64, label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            bar
        });
        Progress {
            bar,
            total,
            done: std::cell::Cell::new(0),
            next_report: std::cell::Cell::new(total / 10),
            started: Instant::now(),
            label: label.to_owned(),
        }
    }

    pub(crate) fn advance(&self, count: u64) {
        let done = self.done.get() + count;
        self.done.set(done);
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => {
                if done >= self.next_report.get() || done == self.total {
                    let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
                    let rate = done as f64 / seconds;
                    let eta = (self.total.saturating_sub(done)) as f64 / rate.max(1e-9);
                    eprintln!(
                        "{}: {done}/{} events, {rate:.0} events/s, ETA {eta:.0} s",
                        self.label, self.total
                    );
                    self.next_report.set(done + self.total / 10);
                }
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        let seconds = self.started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} events in {seconds:.1} s ({:.0} events/s)",
            self.label,
            self.done.get(),
            self.done.get() as f64 / seconds.max(1e-3)
        );
    }
}
