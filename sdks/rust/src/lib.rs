//! The Rust client of Marquee: send viewers' events without blocking and without losing them
//! to a network blip, and ask for recommendations.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use marquee_client::{Client, RecommendationOptions};
//!
//! let client = Client::builder("http://127.0.0.1:8080").api_key("mq_…").build()?;
//! client.rate("alice", "movie-1", 4.5)?; // queued; sent in a batch
//! client.watch("alice", "movie-2", 0.8)?;
//! client.flush(Duration::from_secs(5)).await?; // optional: wait for delivery
//! let picks = client
//!     .recommendations("alice", &RecommendationOptions::default().count(5))
//!     .await?;
//! for pick in &picks.items {
//!     println!("{} {:.3}", pick.item_id, pick.score);
//! }
//! client.close(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! # Delivery
//! [`Client::track`] (and the helpers [`Client::view`], [`Client::rate`], …) puts the event on
//! a bounded in-memory queue and returns at once. A background task sends the queue in NDJSON
//! batches of up to `batch_size` events, when a batch is full or its oldest event has waited
//! `linger`. Every event carries an `event_id` (a UUIDv7 given by [`Event::new`]), so a batch
//! sent again after a lost answer is applied once: the server de-duplicates by id.
//!
//! - Network errors, timeouts, 408, 429 and 5xx are retried, without limit, with exponential
//!   backoff and jitter; 429 and 503 wait the server's `Retry-After` instead.
//! - Events the server refuses (a 4xx, or an event in a batch's `rejected` list) are not retried:
//!   they go to the [`ClientBuilder::on_error`] callback with the server's message.
//! - A full queue drops its oldest event and counts it ([`Stats::dropped`],
//!   [`DeliveryError::Dropped`]): memory stays bounded while the server is away.
//! - [`Client::flush`] waits for what was tracked before it, [`Client::close`] also stops the
//!   client; both take a deadline. Dropping the last handle without `close` leaves the task
//!   `drain_on_drop` (10 s by default) to deliver what is queued.
//!
//! Events live in memory until acknowledged: a process that dies loses its queue. Where
//! that matters, call `flush` at the points that must not lose events.
//!
//! The client needs a Tokio runtime: build it inside one.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod bulk;
mod delivery;
mod error;
mod event;
mod query;
mod search;

use std::sync::Arc;
use std::time::Duration;

pub use bulk::{Refusal, SEND_ATTEMPTS, Sent};
pub use delivery::{Closed, ErrorCallback, Stats, Undelivered};
pub use error::{DeliveryError, Error};
pub use event::{Event, EventKind};
pub use query::{
    ITEMS_PER_REQUEST, Item, Recommendation, RecommendationOptions, Recommendations,
    TrendingOptions, Upserted,
};
pub use search::{FacetCount, Facets, SearchItem, SearchOptions, SearchResults, Suggestion};

use delivery::{Settings, Shared};

/// Settings of a [`Client`]; [`Client::builder`] starts one.
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    batch_size: usize,
    linger: Duration,
    queue_capacity: usize,
    request_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    drain_on_drop: Duration,
    on_error: Option<ErrorCallback>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("batch_size", &self.batch_size)
            .field("linger", &self.linger)
            .field("queue_capacity", &self.queue_capacity)
            .finish_non_exhaustive()
    }
}

/// Most events the server takes in one request.
pub const MAX_BATCH_SIZE: usize = 10_000;

impl ClientBuilder {
    /// The API key, sent as `Authorization: Bearer KEY`. An `ingest` key can only send events;
    /// queries need `read`, catalogue writes `admin`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Most events per request (default 500, at most [`MAX_BATCH_SIZE`]).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events;
        self
    }

    /// How long an event may wait for its batch to fill (default 100 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Most events held in memory (default 10,000); past it the oldest is dropped.
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events;
        self
    }

    /// Time limit of one request (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The first retry delay (default 200 ms) and the longest (default 30 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// How long the background task keeps delivering after the last handle is dropped without
    /// `close` (default 10 s).
    pub fn drain_on_drop(mut self, drain: Duration) -> Self {
        self.drain_on_drop = drain;
        self
    }

    /// Called from the background task for every delivery problem: refused events with the
    /// server's message, retries, drops. Keep it quick; it must not block.
    pub fn on_error(mut self, callback: impl Fn(&DeliveryError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(callback));
        self
    }

    /// Checks the settings and starts the background task (on the current Tokio runtime).
    pub fn build(self) -> Result<Client, Error> {
        let mut base = reqwest::Url::parse(&self.base_url)
            .map_err(|error| Error::Config(format!("base_url: {error}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "base_url: {:?} is not an http(s) URL",
                self.base_url
            )));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(Error::Config(format!(
                "batch_size: must be 1 to {MAX_BATCH_SIZE}, got {}",
                self.batch_size
            )));
        }
        if self.queue_capacity < self.batch_size {
            return Err(Error::Config(format!(
                "queue_capacity: must be at least batch_size ({}), got {}",
                self.batch_size, self.queue_capacity
            )));
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return Err(Error::Config(
                "backoff: initial must be above zero and at most max".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("the client must be built inside a Tokio runtime".into()))?;
        let http = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .build()?;
        let events_url = base.join("v1/events").expect("a relative path joins");
        let shared = Arc::new(Shared::new(
            http.clone(),
            events_url,
            self.api_key.clone(),
            Settings {
                batch_size: self.batch_size,
                linger: self.linger,
                queue_capacity: self.queue_capacity,
                backoff_initial: self.backoff_initial,
                backoff_max: self.backoff_max,
                drain_on_drop: self.drain_on_drop,
                on_error: self.on_error,
            },
        ));
        let sender = runtime.spawn(delivery::run(shared.clone()));
        Ok(Client {
            handle: Arc::new(Handle {
                shared,
                sender: tokio::sync::Mutex::new(Some(sender)),
                http,
                base,
                api_key: self.api_key,
            }),
        })
    }
}

/// A Marquee client. Cheap to clone; clones share one queue and one background task.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.handle.base.as_str())
            .field("stats", &self.stats())
            .finish()
    }
}

struct Handle {
    shared: Arc<Shared>,
    sender: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    http: reqwest::Client,
    base: reqwest::Url,
    api_key: Option<String>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let drain = self.shared.settings.drain_on_drop;
        self.shared.begin_close(tokio::time::Instant::now() + drain);
    }
}

impl Client {
    /// Starts the settings of a client of the server at `base_url` (`http://host:port`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            batch_size: 500,
            linger: Duration::from_millis(100),
            queue_capacity: 10_000,
            request_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            drain_on_drop: Duration::from_secs(10),
            on_error: None,
        }
    }

    /// Queues an event for delivery and returns at once. Fails only after [`Client::close`].
    pub fn track(&self, event: Event) -> Result<(), Closed> {
        self.handle.shared.track(event)
    }

    pub fn view(&self, user_id: &str, item_id: &str) -> Result<(), Closed> {
        self.track(Event::new(EventKind::View, user_id, item_id))
    }

    pub fn click(&self, user_id: &str, item_id: &str) -> Result<(), Closed> {
        self.track(Event::new(EventKind::Click, user_id, item_id))
    }

    /// A watch of `fraction` (0 to 1) of the item.
    pub fn watch(&self, user_id: &str, item_id: &str, fraction: f64) -> Result<(), Closed> {
        self.track(Event::new(EventKind::Watch, user_id, item_id).with_value(fraction))
    }

    /// A rating of `stars`, 0.5 to 5 in half steps.
    pub fn rate(&self, user_id: &str, item_id: &str, stars: f64) -> Result<(), Closed> {
        self.track(Event::new(EventKind::Rating, user_id, item_id).with_value(stars))
    }

    pub fn like(&self, user_id: &str, item_id: &str) -> Result<(), Closed> {
        self.track(Event::new(EventKind::Like, user_id, item_id))
    }

    pub fn dislike(&self, user_id: &str, item_id: &str) -> Result<(), Closed> {
        self.track(Event::new(EventKind::Dislike, user_id, item_id))
    }

    pub fn add_to_watchlist(&self, user_id: &str, item_id: &str) -> Result<(), Closed> {
        self.track(Event::new(EventKind::AddToWatchlist, user_id, item_id))
    }

    pub fn skip(&self, user_id: &str, item_id: &str) -> Result<(), Closed> {
        self.track(Event::new(EventKind::Skip, user_id, item_id))
    }

    /// The list `recommendation_id` was shown, its items at `positions` (from 0) on screen.
    /// Send one when a list appears; outcomes then name it with [`Event::from_list`].
    pub fn impression(
        &self,
        user_id: &str,
        recommendation_id: &str,
        positions: impl IntoIterator<Item = u32>,
    ) -> Result<(), Closed> {
        self.track(Event::impression(user_id, recommendation_id, positions))
    }

    /// Sends what is queued now and waits until every event tracked before the call is
    /// acknowledged or refused, or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Undelivered> {
        self.handle
            .shared
            .flush(tokio::time::Instant::now() + timeout)
            .await
    }

    /// Stops taking events, delivers the queue within `timeout`, and stops the background
    /// task. What is still undelivered at the deadline is dropped, counted and reported.
    pub async fn close(&self, timeout: Duration) -> Result<(), Undelivered> {
        let before = self.stats().dropped;
        self.handle
            .shared
            .begin_close(tokio::time::Instant::now() + timeout);
        if let Some(sender) = self.handle.sender.lock().await.take() {
            let _ = sender.await;
        }
        let lost = self.stats().dropped - before;
        if lost > 0 {
            return Err(Undelivered { pending: lost });
        }
        Ok(())
    }

    /// What happened to tracked events so far.
    pub fn stats(&self) -> Stats {
        self.handle.shared.stats()
    }
}
