//! The queue between `track` and the server, and the task that empties it.
//!
//! `track` appends to a bounded queue under a mutex and returns; it never waits on the network.
//! One sender task takes up to `batch_size` events at a time, once the batch is full, the
//! oldest queued event has waited `linger`, or a flush or close asks, and posts them as one
//! NDJSON request. Batches go one at a time, in order, so that a user's events arrive in the
//! order they were tracked.
//!
//! Outcomes of a request:
//! - 202: delivered; each event the server refused (its `rejected` list) goes to the error
//!   callback with the server's message and is not retried. 422 is the same with every event
//!   refused.
//! - 408, 429, 5xx, a network error or a timeout: the same batch, with the same `event_id`s, is
//!   sent again after a delay: the server's `Retry-After` when it gave one, else exponential
//!   backoff from `backoff_initial`, doubling up to `backoff_max`, with jitter (a random half of
//!   the delay) so that many clients do not retry in step. There is no limit on attempts: the
//!   queue bound is what limits memory, and `close` what limits time. The server de-duplicates
//!   by `event_id`, so a batch it stored before the connection broke is applied once.
//! - Any other 4xx (401, 403, 400, 413, 415): the batch is refused as a whole, reported, and
//!   not retried; sending it again would get the same answer.
//!
//! When the queue is full, `track` drops the oldest queued event (never one being sent) and
//! counts it; the callback hears of drops as [`DeliveryError::Dropped`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{ApiErrorBody, DeliveryError};
use crate::event::Event;

/// The error callback of [`crate::ClientBuilder::on_error`].
pub type ErrorCallback = Arc<dyn Fn(&DeliveryError) + Send + Sync>;

/// What the sender needs of the client's configuration.
#[derive(Clone)]
pub(crate) struct Settings {
    pub batch_size: usize,
    pub linger: Duration,
    pub queue_capacity: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub drain_on_drop: Duration,
    pub on_error: Option<ErrorCallback>,
}

/// Counters of what happened to tracked events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Waiting in the queue or being sent.
    pub pending: u64,
    /// Acknowledged by the server (durable there).
    pub delivered: u64,
    /// Refused by the server (validation, or a whole batch refused): reported, not retried.
    pub rejected: u64,
    /// Dropped because the queue was full, or still undelivered when `close` gave up.
    pub dropped: u64,
    /// Requests sent again after a transient failure.
    pub retries: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    delivered: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
}

struct Queued {
    seq: u64,
    at: Instant,
    event: Event,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Queued>,
    next_seq: u64,
    /// The sequence numbers of the batch being sent.
    in_flight: Option<(u64, usize)>,
    /// Send what is queued now, without waiting for a full batch or the linger.
    flush: bool,
    /// Set by `close` (or the last handle's drop): deliver what is left until this instant.
    closing: Option<Instant>,
    dropped_unreported: u64,
}

impl Queue {
    /// The lowest sequence number not yet settled (delivered, refused or dropped).
    fn lowest_unsettled(&self) -> u64 {
        self.in_flight
            .map(|(first, _)| first)
            .or_else(|| self.events.front().map(|queued| queued.seq))
            .unwrap_or(self.next_seq)
    }
}

/// The state shared by the client handles and the sender task.
pub(crate) struct Shared {
    pub http: reqwest::Client,
    pub events_url: reqwest::Url,
    pub api_key: Option<String>,
    pub settings: Settings,
    queue: Mutex<Queue>,
    /// Wakes the sender: an event, a flush, a close.
    wake: Notify,
    /// Wakes flushers: a batch settled.
    settled: Notify,
    counters: Counters,
}

/// `track` on a closed client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client is closed; the event was not queued")]
pub struct Closed;

/// `flush` or `close` reached its deadline first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pending} events were still undelivered at the deadline")]
pub struct Undelivered {
    pub pending: u64,
}

impl Shared {
    pub fn new(
        http: reqwest::Client,
        events_url: reqwest::Url,
        api_key: Option<String>,
        settings: Settings,
    ) -> Shared {
        Shared {
            http,
            events_url,
            api_key,
            settings,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            settled: Notify::new(),
            counters: Counters::default(),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a queue that is still consistent.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn track(&self, event: Event) -> Result<(), Closed> {
        let mut queue = self.queue();
        if queue.closing.is_some() {
            return Err(Closed);
        }
        if queue.events.len() >= self.settings.queue_capacity {
            queue.events.pop_front();
            queue.dropped_unreported += 1;
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.events.push_back(Queued {
            seq,
            at: Instant::now(),
            event,
        });
        let wake = queue.events.len() == 1 || queue.events.len() >= self.settings.batch_size;
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        let queue = self.queue();
        let pending = queue.events.len() + queue.in_flight.map_or(0, |(_, count)| count);
        Stats {
            pending: pending as u64,
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
    }

    /// Waits until every event tracked before the call is settled, or `deadline`.
    pub async fn flush(&self, deadline: Instant) -> Result<(), Undelivered> {
        let target = {
            let mut queue = self.queue();
            queue.flush = true;
            queue.next_seq
        };
        self.wake.notify_one();
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pending = {
                let queue = self.queue();
                let lowest = queue.lowest_unsettled();
                if lowest >= target {
                    return Ok(());
                }
                target - lowest
            };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Undelivered {
                    pending: pending.min(self.stats().pending),
                });
            }
        }
    }

    /// Stops taking events and gives the sender until `deadline` to deliver the rest.
    pub fn begin_close(&self, deadline: Instant) {
        let mut queue = self.queue();
        queue.closing = Some(queue.closing.map_or(deadline, |set| set.min(deadline)));
        queue.flush = true;
        drop(queue);
        self.wake.notify_one();
    }

    fn report(&self, error: DeliveryError) {
        if let Some(callback) = &self.settings.on_error {
            callback(&error);
        }
    }

    /// The next batch to send, waiting for one; `None` once closed and empty, or past the
    /// close deadline (what is left is then dropped and counted).
    async fn next_batch(&self) -> Option<Vec<Queued>> {
        loop {
            let wait_until = {
                if self.report_drops() {
                    continue;
                }
                let mut queue = self.queue();
                if let Some(deadline) = queue.closing
                    && (queue.events.is_empty() || Instant::now() >= deadline)
                {
                    let left = queue.events.len() as u64;
                    queue.events.clear();
                    drop(queue);
                    if left > 0 {
                        self.counters.dropped.fetch_add(left, Ordering::Relaxed);
                        self.report(DeliveryError::Undelivered { count: left });
                    }
                    self.settled.notify_waiters();
                    return None;
                }
                match queue.events.front() {
                    None => None,
                    Some(oldest) => {
                        let due = oldest.at + self.settings.linger;
                        if queue.events.len() >= self.settings.batch_size
                            || queue.flush
                            || queue.closing.is_some()
                            || Instant::now() >= due
                        {
                            let take = queue.events.len().min(self.settings.batch_size);
                            let batch: Vec<Queued> = queue.events.drain(..take).collect();
                            queue.in_flight = Some((batch[0].seq, batch.len()));
                            if queue.events.is_empty() {
                                queue.flush = false;
                            }
                            return Some(batch);
                        }
                        Some(due)
                    }
                }
            };
            match wait_until {
                None => self.wake.notified().await,
                Some(due) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep_until(due) => {}
                    }
                }
            }
        }
    }

    /// Reports the drops since the last report, if any; whether there were.
    fn report_drops(&self) -> bool {
        let dropped = std::mem::take(&mut self.queue().dropped_unreported);
        if dropped > 0 {
            self.report(DeliveryError::Dropped { count: dropped });
        }
        dropped > 0
    }

    fn close_deadline(&self) -> Option<Instant> {
        self.queue().closing
    }

    /// Marks the batch in flight settled and wakes the flushers.
    fn settle(&self) {
        self.queue().in_flight = None;
        self.settled.notify_waiters();
    }

    /// Sends one batch until it is delivered, refused, or the close deadline passes.
    async fn deliver(&self, batch: Vec<Queued>) {
        let mut body = String::new();
        for queued in &batch {
            body.push_str(&serde_json::to_string(&queued.event).expect("events serialise"));
            body.push('\n');
        }
        let mut attempt: u32 = 0;
        loop {
            let outcome = tokio::select! {
                outcome = self.post(body.clone()) => outcome,
                _ = self.close_deadline_passed() => Outcome::GiveUp,
            };
            let delay = match outcome {
                Outcome::Delivered { accepted, rejected } => {
                    self.counters
                        .delivered
                        .fetch_add(accepted, Ordering::Relaxed);
                    self.refused(&batch, rejected);
                    return;
                }
                Outcome::AllRejected(rejected) => {
                    self.refused(&batch, rejected);
                    return;
                }
                Outcome::Refused { status, error } => {
                    self.counters
                        .rejected
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.report(DeliveryError::BatchRefused {
                        status,
                        code: error.code,
                        message: error.message,
                        events: batch.len(),
                    });
                    return;
                }
                Outcome::Retry { retry_after, cause } => {
                    attempt = attempt.saturating_add(1);
                    let delay = retry_after
                        .map(|wait| wait + jitter(wait / 10))
                        .unwrap_or_else(|| self.backoff(attempt));
                    self.report(DeliveryError::Retrying {
                        attempt,
                        delay,
                        cause,
                    });
                    // A batch that keeps failing must not hold back the news of drops.
                    self.report_drops();
                    delay
                }
                Outcome::GiveUp => {
                    self.give_up(batch.len());
                    return;
                }
            };
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.close_deadline_passed() => {
                    self.give_up(batch.len());
                    return;
                }
            }
        }
    }

    /// Resolves once a close deadline, set now or later, has passed. Only the sender task
    /// waits on `wake`, and it re-reads the queue before every wait, so a wake consumed here
    /// is not lost.
    async fn close_deadline_passed(&self) {
        loop {
            let notified = self.wake.notified();
            match self.close_deadline() {
                Some(deadline) => {
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
                None => notified.await,
            }
        }
    }

    fn give_up(&self, count: usize) {
        self.counters
            .dropped
            .fetch_add(count as u64, Ordering::Relaxed);
        self.report(DeliveryError::Undelivered {
            count: count as u64,
        });
    }

    fn refused(&self, batch: &[Queued], rejected: Vec<Rejection>) {
        self.counters
            .rejected
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        for rejection in rejected {
            let Some(queued) = batch.get(rejection.index) else {
                continue;
            };
            self.report(DeliveryError::Rejected {
                event: Box::new(queued.event.clone()),
                field: rejection.field,
                message: rejection.error,
            });
        }
    }

    /// Exponential backoff with jitter: a random delay between half and all of
    /// `backoff_initial × 2^(attempt-1)`, capped at `backoff_max`.
    fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .settings
            .backoff_initial
            .saturating_mul(1u32 << (attempt - 1).min(20));
        let full = doubled.min(self.settings.backoff_max);
        full / 2 + jitter(full / 2)
    }

    async fn post(&self, body: String) -> Outcome {
        let mut request = self
            .http
            .post(self.events_url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Outcome::Retry {
                    retry_after: None,
                    cause: format!("network: {error}"),
                };
            }
        };
        let status = response.status();
        let retry_after = crate::error::retry_after(response.headers());
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) => {
                return Outcome::Retry {
                    retry_after: None,
                    cause: format!("network: {error}"),
                };
            }
        };
        match status {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::UNPROCESSABLE_ENTITY => {
                match serde_json::from_str::<IngestResult>(&text) {
                    Ok(result) if status == StatusCode::UNPROCESSABLE_ENTITY => {
                        Outcome::AllRejected(result.rejected)
                    }
                    Ok(result) => Outcome::Delivered {
                        accepted: result.accepted,
                        rejected: result.rejected,
                    },
                    Err(_) if status == StatusCode::UNPROCESSABLE_ENTITY => Outcome::Refused {
                        status: status.as_u16(),
                        error: ApiErrorBody::parse(&text),
                    },
                    // Acknowledged, with an answer this version does not read: delivered.
                    Err(_) => Outcome::Delivered {
                        accepted: 0,
                        rejected: Vec::new(),
                    },
                }
            }
            status
                if status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error() =>
            {
                let error = ApiErrorBody::parse(&text);
                Outcome::Retry {
                    retry_after,
                    cause: format!("{} {}: {}", status.as_u16(), error.code, error.message),
                }
            }
            status => Outcome::Refused {
                status: status.as_u16(),
                error: ApiErrorBody::parse(&text),
            },
        }
    }
}

/// What one request came to.
enum Outcome {
    Delivered {
        accepted: u64,
        rejected: Vec<Rejection>,
    },
    AllRejected(Vec<Rejection>),
    Refused {
        status: u16,
        error: ApiErrorBody,
    },
    Retry {
        retry_after: Option<Duration>,
        cause: String,
    },
    GiveUp,
}

#[derive(Debug, Deserialize)]
struct IngestResult {
    #[serde(default)]
    accepted: u64,
    #[serde(default)]
    rejected: Vec<Rejection>,
}

#[derive(Debug, Deserialize)]
struct Rejection {
    index: usize,
    #[serde(default)]
    field: String,
    #[serde(default)]
    error: String,
}

fn jitter(up_to: Duration) -> Duration {
    let nanos = up_to.as_nanos().min(u128::from(u64::MAX)) as u64;
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// The sender task: batches until closed.
pub(crate) async fn run(shared: Arc<Shared>) {
    while let Some(batch) = shared.next_batch().await {
        shared.deliver(batch).await;
        shared.settle();
    }
}
