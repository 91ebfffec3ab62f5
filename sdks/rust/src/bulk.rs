//! Calls for loaders — imports, backfills, benchmarks — that send a batch and wait for its
//! answer: [`Client::send_events`], [`Client::wait_ready`], [`Client::backup`].
//!
//! Unlike [`Client::track`], a batch is sent now and its answer returned, refusals included.
//! Unlike queries, it is retried: a batch whose events carry ids is applied once however often
//! it is sent. Network errors, 408, 429 and 5xx are retried up to [`SEND_ATTEMPTS`] times, with
//! exponential backoff (100 ms doubling to 5 s) or as `Retry-After` says (at most a minute); any
//! other refusal is returned at once with the server's message.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiErrorBody;
use crate::{Client, Error};

/// Attempts of one batch before its last failure is returned.
pub const SEND_ATTEMPTS: u32 = 8;

/// The answer to a batch: how many events were appended, and each refused one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sent {
    pub accepted: u64,
    pub rejected: Vec<Refusal>,
}

/// One refused event of a batch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Refusal {
    /// Its position in the batch.
    pub index: usize,
    /// The field at fault.
    #[serde(default)]
    pub field: String,
    /// The server's message, `field: what is wrong`.
    #[serde(default, rename = "error")]
    pub message: String,
}

#[derive(Deserialize)]
struct IngestAnswer {
    #[serde(default)]
    accepted: u64,
    #[serde(default)]
    rejected: Vec<Refusal>,
}

/// A failure worth another attempt, or the answer.
enum Attempt<T> {
    Done(Result<T, Error>),
    Retry {
        error: Error,
        wait: Option<Duration>,
    },
}

impl Client {
    /// `POST /v1/events` with `events` as NDJSON (anything that serialises as the server's
    /// event JSON: this crate's [`crate::Event`], or a server-side event type), waiting for the
    /// answer. A batch the server refuses as a whole for its content (every event invalid)
    /// comes back as `Ok` with every refusal; see the module docs for retries.
    pub async fn send_events<E: Serialize>(&self, events: &[E]) -> Result<Sent, Error> {
        let mut body = Vec::with_capacity(events.len() * 128);
        for event in events {
            serde_json::to_writer(&mut body, event)
                .map_err(|error| Error::Config(format!("events: cannot be encoded: {error}")))?;
            body.push(b'\n');
        }
        let url = self.url(&["v1", "events"]);
        self.with_retries(|| async {
            let request = self
                .handle
                .http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                .body(body.clone());
            let (status, retry_after, text) = match self.exchange(request).await {
                Ok(answer) => answer,
                Err(error) => return Attempt::Retry { error, wait: None },
            };
            let ingest = || {
                serde_json::from_str::<IngestAnswer>(&text)
                    .map(|answer| Sent {
                        accepted: answer.accepted,
                        rejected: answer.rejected,
                    })
                    .map_err(|error| Error::Decode(error.to_string()))
            };
            match status {
                StatusCode::ACCEPTED | StatusCode::OK => Attempt::Done(ingest()),
                StatusCode::UNPROCESSABLE_ENTITY if ingest().is_ok() => Attempt::Done(ingest()),
                status => classify(status, retry_after, &text),
            }
        })
        .await
    }

    /// Waits until the node answers `GET /readyz` with 200 (its state is loaded), up to
    /// `timeout`; the last failure otherwise.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        let url = self.url(&["readyz"]);
        loop {
            let outcome = match self.handle.http.get(url.clone()).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let error = ApiErrorBody::parse(&response.text().await.unwrap_or_default());
                    Error::Api {
                        status,
                        code: error.code,
                        message: error.message,
                        retry_after: None,
                    }
                }
                Err(error) => Error::Network(error),
            };
            if started.elapsed() >= timeout {
                return Err(outcome);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `POST /v1/admin/backups`: an online backup into `dir`, a new directory inside the
    /// node's `backup_root` — a name, or an absolute path under it (an `operations` or `admin`
    /// key). Returns the server's answer: the directory and the backup's manifest. A backup
    /// that outlasts the request runs on as a job on the server (202); this follows the job
    /// (`GET /v1/admin/jobs/{id}`, every half second) to its end. Not retried: a backup must
    /// not run twice.
    pub async fn backup(&self, dir: &str) -> Result<serde_json::Value, Error> {
        let request = self
            .handle
            .http
            .post(self.url(&["v1", "admin", "backups"]))
            .json(&serde_json::json!({ "dir": dir }));
        let mut answer: serde_json::Value = self.send(request).await?;
        loop {
            let Some(id) = answer["id"].as_str().filter(|_| answer["kind"] == "backup") else {
                return Ok(answer);
            };
            match answer["status"].as_str() {
                Some("succeeded") => return Ok(answer["result"].clone()),
                Some("failed") => {
                    let error = &answer["error"];
                    return Err(Error::Api {
                        status: error["status"].as_u64().unwrap_or(500) as u16,
                        code: error["code"].as_str().unwrap_or("failed").to_owned(),
                        message: error["message"].as_str().unwrap_or_default().to_owned(),
                        retry_after: None,
                    });
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let poll = self.handle.http.get(self.url(&["v1", "admin", "jobs", id]));
            answer = self.send(poll).await?;
        }
    }

    /// Sends `request` with the key; the status, `Retry-After` and body text.
    pub(crate) async fn exchange(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Option<Duration>, String), Error> {
        if let Some(key) = &self.handle.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await?;
        let status = response.status();
        let retry_after = crate::error::retry_after(response.headers());
        Ok((status, retry_after, response.text().await?))
    }

    /// Runs `attempt` until it is done or [`SEND_ATTEMPTS`] attempts failed.
    async fn with_retries<T, F, A>(&self, mut attempt: A) -> Result<T, Error>
    where
        A: FnMut() -> F,
        F: std::future::Future<Output = Attempt<T>>,
    {
        let mut delay = Duration::from_millis(100);
        for tried in 1..=SEND_ATTEMPTS {
            match attempt().await {
                Attempt::Done(outcome) => return outcome,
                Attempt::Retry { error, .. } if tried == SEND_ATTEMPTS => return Err(error),
                Attempt::Retry { wait, .. } => {
                    let wait = wait.map_or(delay, |wait| wait.min(Duration::from_secs(60)));
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// What a failed answer comes to: another attempt (408, 429, 5xx) or the error.
fn classify<T>(status: StatusCode, retry_after: Option<Duration>, text: &str) -> Attempt<T> {
    let body = ApiErrorBody::parse(text);
    let error = Error::Api {
        status: status.as_u16(),
        code: body.code,
        message: body.message,
        retry_after,
    };
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Attempt::Retry {
            error,
            wait: retry_after,
        }
    } else {
        Attempt::Done(Err(error))
    }
}
