/**
 * The TypeScript client of Marquee, for browsers and Node.js 20+: send viewers' events without
 * blocking and without losing them to a network blip or a closing tab, and ask for
 * recommendations. No dependencies: `fetch`, `AbortController`, `crypto.getRandomValues`.
 *
 * Delivery (the same rules as the Rust SDK):
 * - `track` (and `view`, `rate`, …) queues the event and returns at once. Events go in NDJSON
 *   batches of up to `batchSize`, when a batch is full or its oldest event has waited
 *   `lingerMs`; one batch at a time, in order.
 * - Each event has an `event_id` (UUIDv7) from the moment it is tracked, so a batch sent again
 *   after a lost answer is applied once: the server de-duplicates by id.
 * - Network errors, timeouts, 408, 429 and 5xx are retried without limit, with exponential
 *   backoff and jitter; 429 and 503 wait the server's `Retry-After` instead.
 * - Refused events (a 4xx, or an event in a batch's `rejected` list) are not retried: they go to
 *   `onError` with the server's message.
 * - A full queue drops its oldest event, counted in `stats().dropped` and reported.
 * - `flush(timeoutMs)` waits for what was tracked before it; `close(timeoutMs)` also stops.
 * - In a browser, when the page is hidden or unloaded (`visibilitychange`, `pagehide`), what is
 *   queued or in flight goes with `navigator.sendBeacon` to `/v1/events/beacon`, which takes
 *   an `ingest` key as a query parameter. Events that do not fit a beacon are kept in
 *   `localStorage` when `persist` is set, and sent by the next page of the same origin.
 */

export type EventKind =
  | "view"
  | "click"
  | "watch"
  | "rating"
  | "like"
  | "dislike"
  | "add_to_watchlist"
  | "skip"
  | "impression";

/** An event as the server takes it. */
export interface MarqueeEvent {
  event_id: string;
  user_id: string;
  /** Absent for an impression, which names a list instead. */
  item_id?: string;
  kind: EventKind;
  /** rating: stars 0.5 to 5 in half steps; watch: fraction 0 to 1. */
  value?: number;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  context?: Record<string, string>;
  /** The list the event came from: a recommendation answer's `recommendation_id`. */
  recommendation_id?: string;
  /** The item's position in that list, from 0. */
  position?: number;
  /** An impression's positions shown, from 0. */
  positions?: number[];
}

/** What `track` takes: the ids and kind, the rest optional. */
export interface TrackInput {
  userId: string;
  /** Required but for an impression. */
  itemId?: string;
  kind: EventKind;
  value?: number;
  timestamp?: number;
  eventId?: string;
  context?: Record<string, string>;
  /** The list the event came from (a recommendation answer's `recommendation_id`). */
  recommendationId?: string;
  /** The item's position in that list, from 0. */
  position?: number;
  /** An impression's positions shown, from 0. */
  positions?: number[];
}

/** Where a click, watch, rating or like came from: the list and the item's position in it. */
export interface FromList {
  recommendationId: string;
  position: number;
}

function fromList(from?: FromList): Partial<TrackInput> {
  return from === undefined
    ? {}
    : { recommendationId: from.recommendationId, position: from.position };
}

/** A delivery problem, given to `onError`. */
export type DeliveryError =
  | { type: "rejected"; event: MarqueeEvent; field: string; message: string }
  | { type: "batch_refused"; status: number; code: string; message: string; events: number }
  | { type: "retrying"; attempt: number; delayMs: number; cause: string }
  | { type: "dropped"; count: number }
  | { type: "undelivered"; count: number };

export interface ClientOptions {
  /** The server, such as `https://recs.example.com`. */
  baseUrl: string;
  /**
   * Sent as `Authorization: Bearer KEY` (and, for beacons, as the `key` query parameter). In a
   * browser, use a key whose one scope is `ingest`; queries need `read`.
   */
  apiKey?: string;
  /** Most events per request (default 500, at most 10,000). */
  batchSize?: number;
  /** How long an event may wait for its batch to fill (default 100 ms). */
  lingerMs?: number;
  /** Most events held in memory (default 10,000); past it the oldest is dropped. */
  queueCapacity?: number;
  /** Time limit of one request (default 10 s). */
  requestTimeoutMs?: number;
  /** First retry delay (default 200 ms). */
  backoffInitialMs?: number;
  /** Longest retry delay (default 30 s). */
  backoffMaxMs?: number;
  /** Called for every delivery problem. Keep it quick. */
  onError?: (error: DeliveryError) => void;
  /**
   * Browsers: send the queue by `navigator.sendBeacon` when the page is hidden or closed
   * (default true where `navigator.sendBeacon` exists).
   */
  beaconOnHide?: boolean;
  /** Browsers: a `localStorage` key under which events a beacon could not take are kept. */
  persist?: string;
  /** A `fetch` of the caller's (tests, instrumentation); the global one by default. */
  fetch?: typeof fetch;
}

/** What happened to tracked events so far. */
export interface Stats {
  /** Waiting in the queue or being sent. */
  pending: number;
  /** Acknowledged by the server. */
  delivered: number;
  /** Refused by the server; reported, not retried. */
  rejected: number;
  /** Dropped because the queue was full, or undelivered when `close` gave up. */
  dropped: number;
  /** Requests sent again after a transient failure. */
  retries: number;
  /** Handed to `navigator.sendBeacon` (delivery unconfirmed; de-duplicated by id). */
  beaconed: number;
}

export interface Recommendation {
  item_id: string;
  score: number;
  title?: string;
  genres?: string[];
  year?: number;
  /** Where it came from: `index`, `pairs`, `content`, `trending`, and `boost` or `pin` when a campaign moved it. */
  sources?: string[];
  /** The campaign that boosted or pinned it. */
  campaign?: string;
}

export interface Recommendations {
  user_id: string;
  /** `personalised`, `cold_start` or `popular`. */
  strategy: string;
  /** Names the list: pass it to `impression` when shown, and to the events that follow. */
  recommendation_id: string;
  /** Running experiment → the group the list was made for. */
  experiments: Record<string, string>;
  /** The feature flags on for the user. */
  flags: string[];
  items: Recommendation[];
  /** Pass it as `pageToken` for the next page of the same ranking; absent once it is spent. */
  next_page_token?: string;
}

/** A variant of an experiment: a share of the users and, optionally, ranking settings. */
export interface ExperimentVariant {
  name: string;
  share: number;
  config?: Record<string, unknown>;
}

/** An experiment as an operator sends it (`docs/EXPERIMENTS.md`). */
export interface ExperimentDefinition {
  name?: string;
  description?: string;
  status?: "draft" | "running" | "stopped";
  variants: ExperimentVariant[];
  holdout?: number;
  control?: string;
  salt?: string;
  attribution_window_secs?: number;
}

/** An experiment as the node keeps it. */
export interface Experiment extends ExperimentDefinition {
  name: string;
  status: "draft" | "running" | "stopped";
  holdout: number;
  control: string;
  id: string;
  created_ms: number;
  started_ms: number | null;
  stopped_ms: number | null;
}

/** A rate and its 95% interval. */
export interface Estimate {
  value: number;
  low: number;
  high: number;
}

/** One metric of a group: `estimate` is null with fewer than two users. */
export interface ResultMetric {
  estimate: Estimate | null;
  vs_control?: { difference: Estimate; p_value: number };
}

/** One group of an experiment's results (a variant, or the holdout). */
export interface ResultGroup {
  name: string;
  share: number;
  users: number;
  impressions: number;
  clicked: number;
  watched: number;
  positives: number;
  click_through: ResultMetric;
  watch_through: ResultMetric;
  positives_per_impression: ResultMetric;
  click_positions: number[];
}

/** `GET /v1/admin/experiments/{name}/results`. */
export interface ExperimentResults {
  experiment: string;
  status: string;
  control: string;
  groups: ResultGroup[];
  sample_ratio: { chi_square: number; degrees_of_freedom: number; p_value: number; mismatch: boolean } | null;
}

export interface RecommendationOptions {
  count?: number;
  genre?: string;
  exclude?: string[];
  excludeSeen?: boolean;
  /** A filter expression (docs/RULES.md), e.g. `genres HAS "Comedy" AND year >= 1990`. */
  filter?: string;
  /** The viewer's region, device and maturity rating, for `$region`, `$device`, `$maturity` in a filter. */
  region?: string;
  device?: string;
  maturity?: string;
  /** The previous answer's `next_page_token`. */
  pageToken?: string;
  /** At most this many items of one genre. */
  maxPerGenre?: number;
}

export interface Item {
  item_id: string;
  title?: string;
  genres?: string[];
  year?: number;
  tags?: string[];
  /** The licence window, in milliseconds since the epoch. */
  available_from?: number;
  available_until?: number;
  /** Pulled from every list. */
  hidden?: boolean;
  /** Custom properties, of the types the server's property schema declares. */
  properties?: Record<string, string | number | boolean | string[]>;
}

/** A catalogue item as `item()` returns it: with what the server knows of it. */
export interface ItemDetails extends Item {
  /** Events applied for it. */
  event_count: number;
  /** Whether it was upserted (an item seen only in events is not). */
  in_catalogue: boolean;
  /** Whether lists may hold it now: not hidden, inside its licence window. */
  available: boolean;
}

/** The processor's state, as `processor()` returns it. */
export interface ProcessorStatus {
  /** Paused by an operator: ingest goes on, the lag grows. */
  paused: boolean;
  /** The last batch failed (the processor retries). */
  failing: boolean;
  /** Events appended and not yet applied, all partitions. */
  lag_events: number;
  log_end_offsets: number[];
  committed_offsets: number[];
}

/** What the model knows of a user, as `user()` returns it. */
export interface UserSummary {
  user_id: string;
  /** Events applied (each `event_id` once). */
  event_count: number;
  last_timestamp: number;
  /** Every item the user interacted with, sorted. */
  seen_items: string[];
  /** The model's history window, newest first. */
  recent: Array<{ item_id: string; weight: number; timestamp: number }>;
}

/** Options of `search()`; the defaults are the server's. */
export interface SearchOptions {
  /** 1 to 100 (default 20). */
  count?: number;
  /** Only items of this genre (any case). */
  genre?: string;
  yearFrom?: number;
  yearTo?: number;
  /** Order equally relevant items by this viewer's taste. */
  userId?: string;
}

/** One item `search()` found. */
export interface SearchItem {
  item_id: string;
  title?: string;
  genres: string[];
  year?: number;
  /** The text relevance. */
  relevance: number;
}

/** What `search()` answers. */
export interface SearchResults {
  query: string;
  /** Best first. */
  items: SearchItem[];
  /** How many items matched in all. */
  total: number;
  /** False when no item matched every word, and these match some. */
  all_words: boolean;
  /** Whether equally relevant items were ordered by the viewer's taste. */
  personalised: boolean;
  /** Matches per genre (most first) and per decade (its first year, oldest first). */
  facets: {
    genres: Array<{ value: string; count: number }>;
    decades: Array<{ value: number; count: number }>;
  };
}

/** One title `suggest()` proposes. */
export interface Suggestion {
  item_id: string;
  title?: string;
  year?: number;
}

/** A query or catalogue call the server refused, with its status, code and message. */
/** How a request the node may run as a job is made. */
export interface JobOptions {
  /** Ask for 202 and the job at once (`Prefer: respond-async`) rather than a wait of most of the request timeout: the client polls the job instead of holding a connection open. */
  respondAsync?: boolean;
}

/** A long operation's job (`GET /v1/admin/jobs/{id}`, `/v1/exports/{id}`, `/v1/erasures/{id}`). */
export interface Job {
  id: string;
  kind: "backup" | "erasure" | "export";
  /** The backup's directory, or the user's keyed hash (never the id). */
  target: string;
  status: "running" | "succeeded" | "failed";
  started_ms: number;
  finished_ms?: number;
  /** The answer a waiting request would have had. */
  result?: unknown;
  /** The error a waiting request would have had. */
  error?: { status: number; code: string; message: string };
  /** Where to poll. */
  url: string;
}

export class MarqueeError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "MarqueeError";
  }
}

/** `flush` or `close` reached its deadline with events undelivered. */
export class UndeliveredError extends Error {
  constructor(readonly pending: number) {
    super(`${pending} events were still undelivered at the deadline`);
    this.name = "UndeliveredError";
  }
}

/** `track` after `close`. */
export class ClosedError extends Error {
  constructor() {
    super("the client is closed; the event was not queued");
    this.name = "ClosedError";
  }
}

/** A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. */
export function uuidv7(now: number = Date.now()): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let ms = now;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

interface Queued {
  seq: number;
  at: number;
  event: MarqueeEvent;
}

type Outcome =
  | { kind: "delivered"; accepted: number; rejected: Rejection[] }
  | { kind: "all_rejected"; rejected: Rejection[] }
  | { kind: "refused"; status: number; code: string; message: string }
  | { kind: "retry"; retryAfterMs?: number; cause: string };

interface Rejection {
  index: number;
  field: string;
  error: string;
}

/** The most bytes one beacon carries (browsers refuse beacons past 64 KiB in flight). */
const BEACON_BYTES = 60_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class MarqueeClient {
  private readonly base: string;
  private readonly options: Required<
    Pick<
      ClientOptions,
      | "batchSize"
      | "lingerMs"
      | "queueCapacity"
      | "requestTimeoutMs"
      | "backoffInitialMs"
      | "backoffMaxMs"
    >
  >;
  private readonly fetch: typeof fetch;
  private queue: Queued[] = [];
  private inFlight: Queued[] | null = null;
  private nextSeq = 0;
  private sending = false;
  private flushRequested = false;
  private closeDeadline: number | null = null;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;
  private settledWaiters: Array<() => void> = [];
  private readonly counters = { delivered: 0, rejected: 0, dropped: 0, retries: 0, beaconed: 0 };
  private readonly removeListeners: () => void;

  constructor(private readonly config: ClientOptions) {
    let url: URL;
    try {
      url = new URL(config.baseUrl);
    } catch {
      throw new TypeError(`baseUrl: ${JSON.stringify(config.baseUrl)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`baseUrl: ${JSON.stringify(config.baseUrl)} is not an http(s) URL`);
    }
    this.base = url.href.endsWith("/") ? url.href : `${url.href}/`;
    this.options = {
      batchSize: config.batchSize ?? 500,
      lingerMs: config.lingerMs ?? 100,
      queueCapacity: config.queueCapacity ?? 10_000,
      requestTimeoutMs: config.requestTimeoutMs ?? 10_000,
      backoffInitialMs: config.backoffInitialMs ?? 200,
      backoffMaxMs: config.backoffMaxMs ?? 30_000,
    };
    const { batchSize, queueCapacity, backoffInitialMs, backoffMaxMs } = this.options;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
      throw new RangeError(`batchSize: must be a whole number from 1 to 10000, got ${batchSize}`);
    }
    if (!Number.isInteger(queueCapacity) || queueCapacity < batchSize) {
      throw new RangeError(`queueCapacity: must be a whole number ≥ batchSize, got ${queueCapacity}`);
    }
    if (!(backoffInitialMs > 0 && backoffMaxMs >= backoffInitialMs)) {
      throw new RangeError("backoffInitialMs: must be above 0 and at most backoffMaxMs");
    }
    const globalFetch = globalThis.fetch?.bind(globalThis);
    this.fetch = config.fetch ?? globalFetch;
    this.removeListeners = this.listenForPageHide();
    this.restorePersisted();
  }

  // ---- events ----

  /** Queues an event and returns at once. Throws `ClosedError` after `close`. */
  track(input: TrackInput): MarqueeEvent {
    if (this.closeDeadline !== null) {
      throw new ClosedError();
    }
    const event: MarqueeEvent = {
      event_id: input.eventId ?? uuidv7(),
      user_id: input.userId,
      kind: input.kind,
      timestamp: input.timestamp ?? Date.now(),
    };
    if (input.itemId !== undefined) event.item_id = input.itemId;
    if (input.value !== undefined) event.value = input.value;
    if (input.recommendationId !== undefined) event.recommendation_id = input.recommendationId;
    if (input.position !== undefined) event.position = input.position;
    if (input.positions !== undefined) event.positions = input.positions;
    if (input.context !== undefined && Object.keys(input.context).length > 0) {
      event.context = input.context;
    }
    this.enqueue(event);
    return event;
  }

  view(userId: string, itemId: string, from?: FromList): MarqueeEvent {
    return this.track({ userId, itemId, kind: "view", ...fromList(from) });
  }

  /** A click; `from` names the list and position it was on, for attribution. */
  click(userId: string, itemId: string, from?: FromList): MarqueeEvent {
    return this.track({ userId, itemId, kind: "click", ...fromList(from) });
  }

  /** A watch of `fraction` (0 to 1) of the item. */
  watch(userId: string, itemId: string, fraction: number, from?: FromList): MarqueeEvent {
    return this.track({ userId, itemId, kind: "watch", value: fraction, ...fromList(from) });
  }

  /** A rating of `stars`, 0.5 to 5 in half steps. */
  rate(userId: string, itemId: string, stars: number, from?: FromList): MarqueeEvent {
    return this.track({ userId, itemId, kind: "rating", value: stars, ...fromList(from) });
  }

  like(userId: string, itemId: string, from?: FromList): MarqueeEvent {
    return this.track({ userId, itemId, kind: "like", ...fromList(from) });
  }

  /**
   * The list `recommendationId` was shown, its items at `positions` (from 0) on screen. Send
   * one when a list appears; pass `{recommendationId, position}` to what follows.
   */
  impression(userId: string, recommendationId: string, positions: number[]): MarqueeEvent {
    return this.track({ userId, kind: "impression", recommendationId, positions });
  }

  dislike(userId: string, itemId: string): MarqueeEvent {
    return this.track({ userId, itemId, kind: "dislike" });
  }

  addToWatchlist(userId: string, itemId: string): MarqueeEvent {
    return this.track({ userId, itemId, kind: "add_to_watchlist" });
  }

  skip(userId: string, itemId: string): MarqueeEvent {
    return this.track({ userId, itemId, kind: "skip" });
  }

  stats(): Stats {
    return {
      pending: this.queue.length + (this.inFlight?.length ?? 0),
      ...this.counters,
    };
  }

  /**
   * Sends what is queued now and resolves once every event tracked before the call is
   * acknowledged or refused; rejects with `UndeliveredError` at the deadline.
   */
  async flush(timeoutMs = 10_000): Promise<void> {
    const target = this.nextSeq;
    this.flushRequested = true;
    this.schedule();
    const deadline = Date.now() + timeoutMs;
    while (this.lowestUnsettled() < target) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new UndeliveredError(Math.min(target - this.lowestUnsettled(), this.stats().pending));
      }
      await this.settledOrTimeout(left);
    }
  }

  /**
   * Stops taking events and delivers the queue within `timeoutMs`; what is left then is
   * dropped, counted and reported, and the promise rejects with `UndeliveredError`.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    const before = this.counters.dropped;
    this.closeDeadline = Math.min(this.closeDeadline ?? Infinity, Date.now() + timeoutMs);
    this.removeListeners();
    this.flushRequested = true;
    this.schedule();
    while (this.sending || this.queue.length > 0) {
      if (Date.now() >= this.closeDeadline && !this.sending) {
        this.abandon(this.queue.splice(0).length);
        break;
      }
      await this.settledOrTimeout(Math.max(1, this.closeDeadline - Date.now()));
    }
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    const lost = this.counters.dropped - before;
    if (lost > 0) throw new UndeliveredError(lost);
  }

  // ---- queries ----

  /** `GET /v1/users/{userId}/recommendations`: what this user should watch next. */
  async recommendations(userId: string, options: RecommendationOptions = {}): Promise<Recommendations> {
    const query = new URLSearchParams();
    if (options.count !== undefined) query.set("count", String(options.count));
    if (options.genre !== undefined) query.set("genre", options.genre);
    if (options.exclude?.length) query.set("exclude", options.exclude.join(","));
    if (options.excludeSeen !== undefined) query.set("exclude_seen", String(options.excludeSeen));
    if (options.filter !== undefined) query.set("filter", options.filter);
    if (options.region !== undefined) query.set("region", options.region);
    if (options.device !== undefined) query.set("device", options.device);
    if (options.maturity !== undefined) query.set("maturity", options.maturity);
    if (options.pageToken !== undefined) query.set("page_token", options.pageToken);
    if (options.maxPerGenre !== undefined) query.set("max_per_genre", String(options.maxPerGenre));
    return this.request("GET", ["v1", "users", userId, "recommendations"], query);
  }

  /** `DELETE /v1/items/{itemId}` (an `admin` key): the item leaves every list and search; its events stay. */
  async deleteItem(itemId: string): Promise<void> {
    await this.request<string>("DELETE", ["v1", "items", itemId], undefined, undefined, undefined, "text");
  }

  /** `GET /v1/items/{itemId}/similar`: items most like this one. */
  async similar(itemId: string, options: { count?: number } = {}): Promise<Recommendation[]> {
    const query = new URLSearchParams();
    if (options.count !== undefined) query.set("count", String(options.count));
    const answer = await this.request<{ items: Recommendation[] }>("GET", ["v1", "items", itemId, "similar"], query);
    return answer.items;
  }

  /** `GET /v1/trending`: the most popular items now. */
  async trending(options: { count?: number; genre?: string } = {}): Promise<Recommendation[]> {
    const query = new URLSearchParams();
    if (options.count !== undefined) query.set("count", String(options.count));
    if (options.genre !== undefined) query.set("genre", options.genre);
    const answer = await this.request<{ items: Recommendation[] }>("GET", ["v1", "trending"], query);
    return answer.items;
  }

  /** `GET /v1/search`: catalogue items matching `text` (typos forgiven, the last word as a prefix), with facets. */
  async search(text: string, options: SearchOptions = {}): Promise<SearchResults> {
    const query = new URLSearchParams({ q: text });
    if (options.count !== undefined) query.set("count", String(options.count));
    if (options.genre !== undefined) query.set("genre", options.genre);
    if (options.yearFrom !== undefined) query.set("year_from", String(options.yearFrom));
    if (options.yearTo !== undefined) query.set("year_to", String(options.yearTo));
    if (options.userId !== undefined) query.set("user_id", options.userId);
    return this.request("GET", ["v1", "search"], query);
  }

  /** `GET /v1/search/suggest`: titles for a query being typed (1 to 20; default 8). */
  async suggest(text: string, options: { count?: number } = {}): Promise<Suggestion[]> {
    const query = new URLSearchParams({ q: text });
    if (options.count !== undefined) query.set("count", String(options.count));
    const answer = await this.request<{ suggestions: Suggestion[] }>("GET", ["v1", "search", "suggest"], query);
    return answer.suggestions;
  }

  /** `GET /v1/items/{itemId}`. */
  async item(itemId: string): Promise<ItemDetails> {
    return this.request("GET", ["v1", "items", itemId]);
  }

  /** `GET /v1/users/{userId}`: what the model knows of the user (404 when it knows nothing). */
  async user(userId: string): Promise<UserSummary> {
    return this.request("GET", ["v1", "users", userId]);
  }

  /**
   * `GET /v1/users/{userId}/export`: everything stored about the user (a `users` key). The node
   * runs an export as a job: when it answers 202 (asked to with `respondAsync`, or the export
   * outlasted most of its request timeout), the client follows the job to its end.
   */
  async exportUser(userId: string, options: JobOptions = {}): Promise<Record<string, unknown>> {
    return this.requestJob("GET", ["v1", "users", userId, "export"], options, (result) => ({
      ...(result as Record<string, unknown>),
      user_id: userId,
    }));
  }

  /**
   * `DELETE /v1/users/{userId}`: erases the user; answers once durable (a `users` key). A job
   * like {@link exportUser}'s, followed to its end.
   */
  async eraseUser(
    userId: string,
    options: JobOptions = {},
  ): Promise<{ user_id: string; erased: Record<string, unknown> }> {
    return this.requestJob("DELETE", ["v1", "users", userId], options, (result) => ({
      user_id: userId,
      erased: result as Record<string, unknown>,
    }));
  }

  /** `GET /v1/admin/processor`: paused, failing, lag and offsets per partition (an `admin` key). */
  async processor(): Promise<ProcessorStatus> {
    return this.request("GET", ["v1", "admin", "processor"]);
  }

  /** `POST /v1/admin/processor`: pauses or resumes the processor (an `admin` key). */
  async setProcessorPaused(paused: boolean): Promise<ProcessorStatus> {
    return this.request("POST", ["v1", "admin", "processor"], undefined, JSON.stringify({ paused }), "application/json");
  }

  /** `GET /metrics`: every metric, in Prometheus' text format (open). */
  async metrics(): Promise<string> {
    return this.request("GET", ["metrics"], undefined, undefined, undefined, "text");
  }

  /** `GET /v1/admin/experiments`: every experiment, by name (an `admin` key). */
  async experiments(): Promise<Experiment[]> {
    const answer: { experiments: Experiment[] } = await this.request("GET", ["v1", "admin", "experiments"]);
    return answer.experiments;
  }

  /** `POST /v1/admin/experiments`: creates an experiment (an `admin` key). */
  async createExperiment(definition: ExperimentDefinition): Promise<Experiment> {
    return this.request("POST", ["v1", "admin", "experiments"], undefined, JSON.stringify(definition), "application/json");
  }

  /** `PUT /v1/admin/experiments/{name}`: replaces an experiment's definition (an `admin` key). */
  async updateExperiment(name: string, definition: ExperimentDefinition): Promise<Experiment> {
    return this.request("PUT", ["v1", "admin", "experiments", name], undefined, JSON.stringify(definition), "application/json");
  }

  /** `GET /v1/admin/experiments/{name}/results`: per group, rates with intervals (an `admin` key). */
  async experimentResults(name: string): Promise<ExperimentResults> {
    return this.request("GET", ["v1", "admin", "experiments", name, "results"]);
  }

  /** `POST /v1/items`: creates or replaces catalogue items (an `admin` key). */
  async upsertItems(items: Item[]): Promise<{ upserted: number; rejected: Rejection[] }> {
    return this.request("POST", ["v1", "items"], undefined, JSON.stringify(items), "application/json");
  }

  // ---- internals ----

  private url(segments: string[], query?: URLSearchParams): string {
    const path = segments.map(encodeURIComponent).join("/");
    const search = query && [...query.keys()].length > 0 ? `?${query}` : "";
    return `${this.base}${path}${search}`;
  }

  private headers(contentType?: string): Record<string, string> {
    const headers: Record<string, string> = {};
    if (contentType) headers["content-type"] = contentType;
    if (this.config.apiKey) headers.authorization = `Bearer ${this.config.apiKey}`;
    return headers;
  }

  private async request<T>(
    method: string,
    segments: string[],
    query?: URLSearchParams,
    body?: string,
    contentType?: string,
    answer: "json" | "text" = "json",
  ): Promise<T> {
    const response = await this.fetchWithTimeout(this.url(segments, query), {
      method,
      headers: this.headers(contentType),
      body,
    });
    const text = await response.text();
    if (!response.ok) {
      const error = parseError(text);
      throw new MarqueeError(response.status, error.code, error.message, retryAfterMs(response));
    }
    return (answer === "text" ? text : JSON.parse(text)) as T;
  }

  /**
   * A request whose operation the node may run as a job: the answer, or for a 202 the job
   * polled (every 200 ms, doubling to 2 s) until it ends, then `finish` of its result (the
   * answer a waiting request gets) or its error thrown as the request's would be.
   */
  private async requestJob<T>(
    method: string,
    segments: string[],
    options: JobOptions,
    finish: (result: unknown) => T,
  ): Promise<T> {
    const headers = this.headers();
    if (options.respondAsync) headers.prefer = "respond-async";
    const response = await this.fetchWithTimeout(this.url(segments), { method, headers });
    const text = await response.text();
    if (!response.ok) {
      const error = parseError(text);
      throw new MarqueeError(response.status, error.code, error.message, retryAfterMs(response));
    }
    if (response.status !== 202) return JSON.parse(text) as T;
    let job = JSON.parse(text) as Job;
    for (let wait = 200; job.status === "running"; wait = Math.min(wait * 2, 2_000)) {
      await sleep(wait);
      job = await this.request<Job>("GET", job.url.split("/").filter((segment) => segment !== ""));
    }
    if (job.status === "failed") {
      const error = job.error ?? { status: 500, code: "internal", message: "the job failed" };
      throw new MarqueeError(error.status, error.code, error.message);
    }
    return finish(job.result);
  }

  private async fetchWithTimeout(url: string, init: RequestInit): Promise<Response> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.options.requestTimeoutMs);
    try {
      return await this.fetch(url, { ...init, signal: abort.signal });
    } finally {
      clearTimeout(timer);
    }
  }

  private enqueue(event: MarqueeEvent): void {
    if (this.queue.length >= this.options.queueCapacity) {
      this.queue.shift();
      this.counters.dropped += 1;
      this.report({ type: "dropped", count: 1 });
    }
    this.queue.push({ seq: this.nextSeq++, at: Date.now(), event });
    this.schedule();
  }

  private lowestUnsettled(): number {
    return this.inFlight?.[0]?.seq ?? this.queue[0]?.seq ?? this.nextSeq;
  }

  private settledOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.settledWaiters.push(done);
    });
  }

  private settled(): void {
    const waiters = this.settledWaiters;
    this.settledWaiters = [];
    for (const waiter of waiters) waiter();
  }

  private report(error: DeliveryError): void {
    try {
      this.config.onError?.(error);
    } catch {
      // A failing callback must not stop delivery.
    }
  }

  /** Starts sending when a batch is due, or sets the linger timer for when it will be. */
  private schedule(): void {
    if (this.sending || this.queue.length === 0) return;
    const due = this.queue[0].at + this.options.lingerMs;
    if (
      this.queue.length >= this.options.batchSize ||
      this.flushRequested ||
      this.closeDeadline !== null ||
      Date.now() >= due
    ) {
      if (this.lingerTimer !== null) {
        clearTimeout(this.lingerTimer);
        this.lingerTimer = null;
      }
      void this.pump();
    } else if (this.lingerTimer === null) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = null;
        this.schedule();
      }, Math.max(0, due - Date.now()));
    }
  }

  private async pump(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const due = this.queue[0].at + this.options.lingerMs;
        const ready =
          this.queue.length >= this.options.batchSize ||
          this.flushRequested ||
          this.closeDeadline !== null ||
          Date.now() >= due;
        if (!ready) break;
        const batch = this.queue.splice(0, this.options.batchSize);
        if (this.queue.length === 0) this.flushRequested = false;
        this.inFlight = batch;
        await this.deliver(batch);
        this.inFlight = null;
        this.settled();
      }
    } finally {
      this.sending = false;
      this.settled();
      this.schedule();
    }
  }

  private pastCloseDeadline(): boolean {
    return this.closeDeadline !== null && Date.now() >= this.closeDeadline;
  }

  private abandon(count: number): void {
    if (count === 0) return;
    this.counters.dropped += count;
    this.report({ type: "undelivered", count });
  }

  private async deliver(batch: Queued[]): Promise<void> {
    const body = batch.map((queued) => JSON.stringify(queued.event)).join("\n") + "\n";
    for (let attempt = 1; ; attempt++) {
      if (this.pastCloseDeadline()) {
        this.abandon(batch.length);
        return;
      }
      const outcome = await this.post(body);
      switch (outcome.kind) {
        case "delivered":
          this.counters.delivered += outcome.accepted;
          this.refused(batch, outcome.rejected);
          return;
        case "all_rejected":
          this.refused(batch, outcome.rejected);
          return;
        case "refused":
          this.counters.rejected += batch.length;
          this.report({
            type: "batch_refused",
            status: outcome.status,
            code: outcome.code,
            message: outcome.message,
            events: batch.length,
          });
          return;
        case "retry": {
          const delayMs =
            outcome.retryAfterMs !== undefined
              ? outcome.retryAfterMs + Math.random() * outcome.retryAfterMs * 0.1
              : this.backoff(attempt);
          this.report({ type: "retrying", attempt, delayMs, cause: outcome.cause });
          this.counters.retries += 1;
          if (this.closeDeadline !== null && Date.now() + delayMs >= this.closeDeadline) {
            await sleep(Math.max(0, this.closeDeadline - Date.now()));
            this.abandon(batch.length);
            return;
          }
          await sleep(delayMs);
        }
      }
    }
  }

  /** Half to all of `initial × 2^(attempt-1)`, capped at the maximum. */
  private backoff(attempt: number): number {
    const full = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffInitialMs * 2 ** Math.min(attempt - 1, 20),
    );
    return full / 2 + Math.random() * (full / 2);
  }

  private refused(batch: Queued[], rejected: Rejection[]): void {
    this.counters.rejected += rejected.length;
    for (const rejection of rejected) {
      const queued = batch[rejection.index];
      if (!queued) continue;
      this.report({
        type: "rejected",
        event: queued.event,
        field: rejection.field,
        message: rejection.error,
      });
    }
  }

  private async post(body: string): Promise<Outcome> {
    let response: Response;
    let text: string;
    try {
      response = await this.fetchWithTimeout(this.url(["v1", "events"]), {
        method: "POST",
        headers: this.headers("application/x-ndjson"),
        body,
        // Lets the request outlive the page when it fits (browsers cap keepalive bodies).
        keepalive: body.length < BEACON_BYTES,
      });
      text = await response.text();
    } catch (error) {
      return { kind: "retry", cause: `network: ${describe(error)}` };
    }
    const status = response.status;
    if (status === 200 || status === 202 || status === 422) {
      try {
        const result = JSON.parse(text) as { accepted?: number; rejected?: Rejection[] };
        if (status === 422) return { kind: "all_rejected", rejected: result.rejected ?? [] };
        return { kind: "delivered", accepted: result.accepted ?? 0, rejected: result.rejected ?? [] };
      } catch {
        if (status !== 422) return { kind: "delivered", accepted: 0, rejected: [] };
      }
    }
    const error = parseError(text);
    if (status === 408 || status === 429 || status >= 500) {
      return {
        kind: "retry",
        retryAfterMs: retryAfterMs(response),
        cause: `${status} ${error.code}: ${error.message}`,
      };
    }
    return { kind: "refused", status, code: error.code, message: error.message };
  }

  // ---- browsers: beacon on hide, persistence ----

  private listenForPageHide(): () => void {
    const enabled =
      (this.config.beaconOnHide ?? true) &&
      typeof window !== "undefined" &&
      typeof document !== "undefined" &&
      typeof navigator !== "undefined" &&
      typeof navigator.sendBeacon === "function";
    if (!enabled) return () => {};
    const onHide = () => this.beaconEverything();
    const onVisibility = () => {
      if (document.visibilityState === "hidden") onHide();
    };
    window.addEventListener("pagehide", onHide);
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      window.removeEventListener("pagehide", onHide);
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }

  /**
   * Hands the queue and the batch in flight to `navigator.sendBeacon`, which the browser
   * delivers after the page is gone. The batch in flight may reach the server twice; the
   * server applies it once (same `event_id`s). What a beacon refuses stays queued, and is
   * kept in `localStorage` with `persist`.
   */
  beaconEverything(): void {
    if (typeof navigator === "undefined" || typeof navigator.sendBeacon !== "function") return;
    const inFlight = this.inFlight ?? [];
    const queued = this.queue.splice(0);
    const events = [...inFlight, ...queued];
    const url = this.config.apiKey
      ? `${this.url(["v1", "events", "beacon"])}?key=${encodeURIComponent(this.config.apiKey)}`
      : this.url(["v1", "events", "beacon"]);
    let start = 0;
    while (start < events.length) {
      let end = start;
      let bytes = 0;
      const lines: string[] = [];
      while (end < events.length) {
        const line = `${JSON.stringify(events[end].event)}\n`;
        if (lines.length > 0 && bytes + line.length > BEACON_BYTES) break;
        lines.push(line);
        bytes += line.length;
        end += 1;
      }
      if (!navigator.sendBeacon(url, lines.join(""))) break;
      // Count the queued ones only: the batch in flight is still being counted by its fetch.
      const fromQueue = Math.max(0, end - Math.max(start, inFlight.length));
      this.counters.beaconed += fromQueue;
      start = end;
    }
    // What no beacon took goes back to the front of the queue.
    const left = events.slice(Math.max(start, inFlight.length));
    this.queue.unshift(...left);
    this.persistQueue();
    this.settled();
  }

  private storage(): Storage | null {
    if (!this.config.persist) return null;
    try {
      return globalThis.localStorage ?? null;
    } catch {
      return null;
    }
  }

  private persistQueue(): void {
    const storage = this.storage();
    if (!storage || !this.config.persist) return;
    try {
      if (this.queue.length === 0) storage.removeItem(this.config.persist);
      else storage.setItem(this.config.persist, JSON.stringify(this.queue.map((queued) => queued.event)));
    } catch {
      // A full or forbidden storage: the events stay in memory only.
    }
  }

  private restorePersisted(): void {
    const storage = this.storage();
    if (!storage || !this.config.persist) return;
    try {
      const saved = storage.getItem(this.config.persist);
      storage.removeItem(this.config.persist);
      if (!saved) return;
      for (const event of JSON.parse(saved) as MarqueeEvent[]) this.enqueue(event);
    } catch {
      // Unreadable: nothing to restore.
    }
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

function parseError(text: string): { code: string; message: string } {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error) return { code: body.error.code ?? "unknown", message: body.error.message ?? "" };
  } catch {
    // Not the server's error body.
  }
  return { code: "unknown", message: text.slice(0, 500) };
}

function retryAfterMs(response: Response): number | undefined {
  const value = response.headers.get("retry-after");
  if (value === null) return undefined;
  const seconds = Number(value.trim());
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}
