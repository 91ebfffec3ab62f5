var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// ../../../sdks/typescript/src/index.ts
function fromList(from) {
  return from === void 0 ? {} : { recommendationId: from.recommendationId, position: from.position };
}
var MarqueeError = class extends Error {
  constructor(status2, code, message, retryAfterMs2) {
    super(message);
    this.status = status2;
    this.code = code;
    this.retryAfterMs = retryAfterMs2;
    this.name = "MarqueeError";
  }
};
var UndeliveredError = class extends Error {
  constructor(pending) {
    super(`${pending} events were still undelivered at the deadline`);
    this.pending = pending;
    this.name = "UndeliveredError";
  }
};
var ClosedError = class extends Error {
  constructor() {
    super("the client is closed; the event was not queued");
    this.name = "ClosedError";
  }
};
function uuidv7(now = Date.now()) {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let ms = now;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = bytes[6] & 15 | 112;
  bytes[8] = bytes[8] & 63 | 128;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
var BEACON_BYTES = 6e4;
var sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
var MarqueeClient = class {
  constructor(config) {
    this.config = config;
    __publicField(this, "base");
    __publicField(this, "options");
    __publicField(this, "fetch");
    __publicField(this, "queue", []);
    __publicField(this, "inFlight", null);
    __publicField(this, "nextSeq", 0);
    __publicField(this, "sending", false);
    __publicField(this, "flushRequested", false);
    __publicField(this, "closeDeadline", null);
    __publicField(this, "lingerTimer", null);
    __publicField(this, "settledWaiters", []);
    __publicField(this, "counters", { delivered: 0, rejected: 0, dropped: 0, retries: 0, beaconed: 0 });
    __publicField(this, "removeListeners");
    let url;
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
      queueCapacity: config.queueCapacity ?? 1e4,
      requestTimeoutMs: config.requestTimeoutMs ?? 1e4,
      backoffInitialMs: config.backoffInitialMs ?? 200,
      backoffMaxMs: config.backoffMaxMs ?? 3e4
    };
    const { batchSize, queueCapacity, backoffInitialMs, backoffMaxMs } = this.options;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1e4) {
      throw new RangeError(`batchSize: must be a whole number from 1 to 10000, got ${batchSize}`);
    }
    if (!Number.isInteger(queueCapacity) || queueCapacity < batchSize) {
      throw new RangeError(`queueCapacity: must be a whole number \u2265 batchSize, got ${queueCapacity}`);
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
  track(input) {
    if (this.closeDeadline !== null) {
      throw new ClosedError();
    }
    const event = {
      event_id: input.eventId ?? uuidv7(),
      user_id: input.userId,
      kind: input.kind,
      timestamp: input.timestamp ?? Date.now()
    };
    if (input.itemId !== void 0) event.item_id = input.itemId;
    if (input.value !== void 0) event.value = input.value;
    if (input.recommendationId !== void 0) event.recommendation_id = input.recommendationId;
    if (input.position !== void 0) event.position = input.position;
    if (input.positions !== void 0) event.positions = input.positions;
    if (input.context !== void 0 && Object.keys(input.context).length > 0) {
      event.context = input.context;
    }
    this.enqueue(event);
    return event;
  }
  view(userId, itemId, from) {
    return this.track({ userId, itemId, kind: "view", ...fromList(from) });
  }
  /** A click; `from` names the list and position it was on, for attribution. */
  click(userId, itemId, from) {
    return this.track({ userId, itemId, kind: "click", ...fromList(from) });
  }
  /** A watch of `fraction` (0 to 1) of the item. */
  watch(userId, itemId, fraction, from) {
    return this.track({ userId, itemId, kind: "watch", value: fraction, ...fromList(from) });
  }
  /** A rating of `stars`, 0.5 to 5 in half steps. */
  rate(userId, itemId, stars, from) {
    return this.track({ userId, itemId, kind: "rating", value: stars, ...fromList(from) });
  }
  like(userId, itemId, from) {
    return this.track({ userId, itemId, kind: "like", ...fromList(from) });
  }
  /**
   * The list `recommendationId` was shown, its items at `positions` (from 0) on screen. Send
   * one when a list appears; pass `{recommendationId, position}` to what follows.
   */
  impression(userId, recommendationId, positions) {
    return this.track({ userId, kind: "impression", recommendationId, positions });
  }
  dislike(userId, itemId) {
    return this.track({ userId, itemId, kind: "dislike" });
  }
  addToWatchlist(userId, itemId) {
    return this.track({ userId, itemId, kind: "add_to_watchlist" });
  }
  skip(userId, itemId) {
    return this.track({ userId, itemId, kind: "skip" });
  }
  stats() {
    return {
      pending: this.queue.length + (this.inFlight?.length ?? 0),
      ...this.counters
    };
  }
  /**
   * Sends what is queued now and resolves once every event tracked before the call is
   * acknowledged or refused; rejects with `UndeliveredError` at the deadline.
   */
  async flush(timeoutMs = 1e4) {
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
  async close(timeoutMs = 1e4) {
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
  async recommendations(userId, options = {}) {
    const query = new URLSearchParams();
    if (options.count !== void 0) query.set("count", String(options.count));
    if (options.genre !== void 0) query.set("genre", options.genre);
    if (options.exclude?.length) query.set("exclude", options.exclude.join(","));
    if (options.excludeSeen !== void 0) query.set("exclude_seen", String(options.excludeSeen));
    if (options.filter !== void 0) query.set("filter", options.filter);
    if (options.region !== void 0) query.set("region", options.region);
    if (options.device !== void 0) query.set("device", options.device);
    if (options.maturity !== void 0) query.set("maturity", options.maturity);
    if (options.pageToken !== void 0) query.set("page_token", options.pageToken);
    if (options.maxPerGenre !== void 0) query.set("max_per_genre", String(options.maxPerGenre));
    return this.request("GET", ["v1", "users", userId, "recommendations"], query);
  }
  /** `DELETE /v1/items/{itemId}` (an `admin` key): the item leaves every list and search; its events stay. */
  async deleteItem(itemId) {
    await this.request("DELETE", ["v1", "items", itemId], void 0, void 0, void 0, "text");
  }
  /** `GET /v1/items/{itemId}/similar`: items most like this one. */
  async similar(itemId, options = {}) {
    const query = new URLSearchParams();
    if (options.count !== void 0) query.set("count", String(options.count));
    const answer = await this.request("GET", ["v1", "items", itemId, "similar"], query);
    return answer.items;
  }
  /** `GET /v1/trending`: the most popular items now. */
  async trending(options = {}) {
    const query = new URLSearchParams();
    if (options.count !== void 0) query.set("count", String(options.count));
    if (options.genre !== void 0) query.set("genre", options.genre);
    const answer = await this.request("GET", ["v1", "trending"], query);
    return answer.items;
  }
  /** `GET /v1/search`: catalogue items matching `text` (typos forgiven, the last word as a prefix), with facets. */
  async search(text, options = {}) {
    const query = new URLSearchParams({ q: text });
    if (options.count !== void 0) query.set("count", String(options.count));
    if (options.genre !== void 0) query.set("genre", options.genre);
    if (options.yearFrom !== void 0) query.set("year_from", String(options.yearFrom));
    if (options.yearTo !== void 0) query.set("year_to", String(options.yearTo));
    if (options.userId !== void 0) query.set("user_id", options.userId);
    return this.request("GET", ["v1", "search"], query);
  }
  /** `GET /v1/search/suggest`: titles for a query being typed (1 to 20; default 8). */
  async suggest(text, options = {}) {
    const query = new URLSearchParams({ q: text });
    if (options.count !== void 0) query.set("count", String(options.count));
    const answer = await this.request("GET", ["v1", "search", "suggest"], query);
    return answer.suggestions;
  }
  /** `GET /v1/items/{itemId}`. */
  async item(itemId) {
    return this.request("GET", ["v1", "items", itemId]);
  }
  /** `GET /v1/users/{userId}`: what the model knows of the user (404 when it knows nothing). */
  async user(userId) {
    return this.request("GET", ["v1", "users", userId]);
  }
  /**
   * `GET /v1/users/{userId}/export`: everything stored about the user (a `users` key). The node
   * runs an export as a job: when it answers 202 (asked to with `respondAsync`, or the export
   * outlasted most of its request timeout), the client follows the job to its end.
   */
  async exportUser(userId, options = {}) {
    return this.requestJob("GET", ["v1", "users", userId, "export"], options, (result) => ({
      ...result,
      user_id: userId
    }));
  }
  /**
   * `DELETE /v1/users/{userId}`: erases the user; answers once durable (a `users` key). A job
   * like {@link exportUser}'s, followed to its end.
   */
  async eraseUser(userId, options = {}) {
    return this.requestJob("DELETE", ["v1", "users", userId], options, (result) => ({
      user_id: userId,
      erased: result
    }));
  }
  /** `GET /v1/admin/processor`: paused, failing, lag and offsets per partition (an `admin` key). */
  async processor() {
    return this.request("GET", ["v1", "admin", "processor"]);
  }
  /** `POST /v1/admin/processor`: pauses or resumes the processor (an `admin` key). */
  async setProcessorPaused(paused) {
    return this.request("POST", ["v1", "admin", "processor"], void 0, JSON.stringify({ paused }), "application/json");
  }
  /** `GET /metrics`: every metric, in Prometheus' text format (open). */
  async metrics() {
    return this.request("GET", ["metrics"], void 0, void 0, void 0, "text");
  }
  /** `GET /v1/admin/experiments`: every experiment, by name (an `admin` key). */
  async experiments() {
    const answer = await this.request("GET", ["v1", "admin", "experiments"]);
    return answer.experiments;
  }
  /** `POST /v1/admin/experiments`: creates an experiment (an `admin` key). */
  async createExperiment(definition) {
    return this.request("POST", ["v1", "admin", "experiments"], void 0, JSON.stringify(definition), "application/json");
  }
  /** `PUT /v1/admin/experiments/{name}`: replaces an experiment's definition (an `admin` key). */
  async updateExperiment(name, definition) {
    return this.request("PUT", ["v1", "admin", "experiments", name], void 0, JSON.stringify(definition), "application/json");
  }
  /** `GET /v1/admin/experiments/{name}/results`: per group, rates with intervals (an `admin` key). */
  async experimentResults(name) {
    return this.request("GET", ["v1", "admin", "experiments", name, "results"]);
  }
  /** `POST /v1/items`: creates or replaces catalogue items (an `admin` key). */
  async upsertItems(items) {
    return this.request("POST", ["v1", "items"], void 0, JSON.stringify(items), "application/json");
  }
  // ---- internals ----
  url(segments, query) {
    const path = segments.map(encodeURIComponent).join("/");
    const search = query && [...query.keys()].length > 0 ? `?${query}` : "";
    return `${this.base}${path}${search}`;
  }
  headers(contentType) {
    const headers = {};
    if (contentType) headers["content-type"] = contentType;
    if (this.config.apiKey) headers.authorization = `Bearer ${this.config.apiKey}`;
    return headers;
  }
  async request(method, segments, query, body, contentType, answer = "json") {
    const response = await this.fetchWithTimeout(this.url(segments, query), {
      method,
      headers: this.headers(contentType),
      body
    });
    const text = await response.text();
    if (!response.ok) {
      const error = parseError(text);
      throw new MarqueeError(response.status, error.code, error.message, retryAfterMs(response));
    }
    return answer === "text" ? text : JSON.parse(text);
  }
  /**
   * A request whose operation the node may run as a job: the answer, or for a 202 the job
   * polled (every 200 ms, doubling to 2 s) until it ends, then `finish` of its result (the
   * answer a waiting request gets) or its error thrown as the request's would be.
   */
  async requestJob(method, segments, options, finish) {
    const headers = this.headers();
    if (options.respondAsync) headers.prefer = "respond-async";
    const response = await this.fetchWithTimeout(this.url(segments), { method, headers });
    const text = await response.text();
    if (!response.ok) {
      const error = parseError(text);
      throw new MarqueeError(response.status, error.code, error.message, retryAfterMs(response));
    }
    if (response.status !== 202) return JSON.parse(text);
    let job = JSON.parse(text);
    for (let wait = 200; job.status === "running"; wait = Math.min(wait * 2, 2e3)) {
      await sleep(wait);
      job = await this.request("GET", job.url.split("/").filter((segment) => segment !== ""));
    }
    if (job.status === "failed") {
      const error = job.error ?? { status: 500, code: "internal", message: "the job failed" };
      throw new MarqueeError(error.status, error.code, error.message);
    }
    return finish(job.result);
  }
  async fetchWithTimeout(url, init) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.options.requestTimeoutMs);
    try {
      return await this.fetch(url, { ...init, signal: abort.signal });
    } finally {
      clearTimeout(timer);
    }
  }
  enqueue(event) {
    if (this.queue.length >= this.options.queueCapacity) {
      this.queue.shift();
      this.counters.dropped += 1;
      this.report({ type: "dropped", count: 1 });
    }
    this.queue.push({ seq: this.nextSeq++, at: Date.now(), event });
    this.schedule();
  }
  lowestUnsettled() {
    return this.inFlight?.[0]?.seq ?? this.queue[0]?.seq ?? this.nextSeq;
  }
  settledOrTimeout(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.settledWaiters.push(done);
    });
  }
  settled() {
    const waiters = this.settledWaiters;
    this.settledWaiters = [];
    for (const waiter of waiters) waiter();
  }
  report(error) {
    try {
      this.config.onError?.(error);
    } catch {
    }
  }
  /** Starts sending when a batch is due, or sets the linger timer for when it will be. */
  schedule() {
    if (this.sending || this.queue.length === 0) return;
    const due = this.queue[0].at + this.options.lingerMs;
    if (this.queue.length >= this.options.batchSize || this.flushRequested || this.closeDeadline !== null || Date.now() >= due) {
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
  async pump() {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const due = this.queue[0].at + this.options.lingerMs;
        const ready = this.queue.length >= this.options.batchSize || this.flushRequested || this.closeDeadline !== null || Date.now() >= due;
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
  pastCloseDeadline() {
    return this.closeDeadline !== null && Date.now() >= this.closeDeadline;
  }
  abandon(count) {
    if (count === 0) return;
    this.counters.dropped += count;
    this.report({ type: "undelivered", count });
  }
  async deliver(batch) {
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
            events: batch.length
          });
          return;
        case "retry": {
          const delayMs = outcome.retryAfterMs !== void 0 ? outcome.retryAfterMs + Math.random() * outcome.retryAfterMs * 0.1 : this.backoff(attempt);
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
  backoff(attempt) {
    const full = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffInitialMs * 2 ** Math.min(attempt - 1, 20)
    );
    return full / 2 + Math.random() * (full / 2);
  }
  refused(batch, rejected) {
    this.counters.rejected += rejected.length;
    for (const rejection of rejected) {
      const queued = batch[rejection.index];
      if (!queued) continue;
      this.report({
        type: "rejected",
        event: queued.event,
        field: rejection.field,
        message: rejection.error
      });
    }
  }
  async post(body) {
    let response;
    let text;
    try {
      response = await this.fetchWithTimeout(this.url(["v1", "events"]), {
        method: "POST",
        headers: this.headers("application/x-ndjson"),
        body,
        // Lets the request outlive the page when it fits (browsers cap keepalive bodies).
        keepalive: body.length < BEACON_BYTES
      });
      text = await response.text();
    } catch (error2) {
      return { kind: "retry", cause: `network: ${describe(error2)}` };
    }
    const status2 = response.status;
    if (status2 === 200 || status2 === 202 || status2 === 422) {
      try {
        const result = JSON.parse(text);
        if (status2 === 422) return { kind: "all_rejected", rejected: result.rejected ?? [] };
        return { kind: "delivered", accepted: result.accepted ?? 0, rejected: result.rejected ?? [] };
      } catch {
        if (status2 !== 422) return { kind: "delivered", accepted: 0, rejected: [] };
      }
    }
    const error = parseError(text);
    if (status2 === 408 || status2 === 429 || status2 >= 500) {
      return {
        kind: "retry",
        retryAfterMs: retryAfterMs(response),
        cause: `${status2} ${error.code}: ${error.message}`
      };
    }
    return { kind: "refused", status: status2, code: error.code, message: error.message };
  }
  // ---- browsers: beacon on hide, persistence ----
  listenForPageHide() {
    const enabled = (this.config.beaconOnHide ?? true) && typeof window !== "undefined" && typeof document !== "undefined" && typeof navigator !== "undefined" && typeof navigator.sendBeacon === "function";
    if (!enabled) return () => {
    };
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
  beaconEverything() {
    if (typeof navigator === "undefined" || typeof navigator.sendBeacon !== "function") return;
    const inFlight = this.inFlight ?? [];
    const queued = this.queue.splice(0);
    const events = [...inFlight, ...queued];
    const url = this.config.apiKey ? `${this.url(["v1", "events", "beacon"])}?key=${encodeURIComponent(this.config.apiKey)}` : this.url(["v1", "events", "beacon"]);
    let start2 = 0;
    while (start2 < events.length) {
      let end = start2;
      let bytes = 0;
      const lines = [];
      while (end < events.length) {
        const line = `${JSON.stringify(events[end].event)}
`;
        if (lines.length > 0 && bytes + line.length > BEACON_BYTES) break;
        lines.push(line);
        bytes += line.length;
        end += 1;
      }
      if (!navigator.sendBeacon(url, lines.join(""))) break;
      const fromQueue = Math.max(0, end - Math.max(start2, inFlight.length));
      this.counters.beaconed += fromQueue;
      start2 = end;
    }
    const left = events.slice(Math.max(start2, inFlight.length));
    this.queue.unshift(...left);
    this.persistQueue();
    this.settled();
  }
  storage() {
    if (!this.config.persist) return null;
    try {
      return globalThis.localStorage ?? null;
    } catch {
      return null;
    }
  }
  persistQueue() {
    const storage = this.storage();
    if (!storage || !this.config.persist) return;
    try {
      if (this.queue.length === 0) storage.removeItem(this.config.persist);
      else storage.setItem(this.config.persist, JSON.stringify(this.queue.map((queued) => queued.event)));
    } catch {
    }
  }
  restorePersisted() {
    const storage = this.storage();
    if (!storage || !this.config.persist) return;
    try {
      const saved = storage.getItem(this.config.persist);
      storage.removeItem(this.config.persist);
      if (!saved) return;
      for (const event of JSON.parse(saved)) this.enqueue(event);
    } catch {
    }
  }
};
function describe(error) {
  if (error instanceof Error) {
    const cause = error.cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
function parseError(text) {
  try {
    const body = JSON.parse(text);
    if (body.error) return { code: body.error.code ?? "unknown", message: body.error.message ?? "" };
  } catch {
  }
  return { code: "unknown", message: text.slice(0, 500) };
}
function retryAfterMs(response) {
  const value = response.headers.get("retry-after");
  if (value === null) return void 0;
  const seconds = Number(value.trim());
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1e3 : void 0;
}

// src/dom.ts
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value !== void 0) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === void 0) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}
function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

// src/app.ts
var KEY_STORAGE = "marquee.apiKey";
var VIEWER_STORAGE = "marquee.viewer";
var ROW_LENGTH = 12;
var client = newClient(sessionStorage.getItem(KEY_STORAGE) ?? void 0);
var viewer = localStorage.getItem(VIEWER_STORAGE) ?? "u1";
function newClient(apiKey) {
  return new MarqueeClient({ baseUrl: location.origin, apiKey, lingerMs: 0 });
}
function tokenUser(key) {
  const user = key?.startsWith("mqv1.") ? key.split(".")[1] : void 0;
  if (!user) return void 0;
  try {
    const bytes = Uint8Array.from(atob(user.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  } catch {
    return void 0;
  }
}
function status(text) {
  byId("status").textContent = text;
}
function hue(genres) {
  const first = genres?.[0] ?? "";
  let hash = 0;
  for (const char of first) hash = hash * 31 + char.charCodeAt(0) >>> 0;
  return `hue-${hash % 8}`;
}
function card(movie2, position, list) {
  const title = movie2.title ?? movie2.item_id;
  const genres = movie2.genres?.join(", ") ?? "";
  const open = el(
    "a",
    {
      class: `card ${hue(movie2.genres)}`,
      href: `#/movie/${encodeURIComponent(movie2.item_id)}`,
      "data-item": movie2.item_id,
      // A card of a recommended list names it: its click is attributed to the list.
      "data-list": list,
      "data-position": list === void 0 ? void 0 : String(position)
    },
    el("span", { class: "title" }, title),
    el("span", { class: "year" }, movie2.year !== void 0 ? String(movie2.year) : ""),
    el("span", { class: "genres" }, genres)
  );
  return el("li", {}, open);
}
function row(title, movies, id, list) {
  const heading = el("h2", { id: id ? `${id}-title` : void 0 }, title);
  const cards = movies.length > 0 ? el(
    "ul",
    { class: "row", "aria-labelledby": id ? `${id}-title` : void 0 },
    ...movies.map((movie2, position) => card(movie2, position, list))
  ) : el("p", { class: "empty" }, "Nothing yet.");
  return el("section", { class: "shelf", id, "data-list": list }, heading, cards);
}
function forYouRow(mine) {
  return row("For you", mine.items, "for-you", mine.recommendation_id);
}
function impressions() {
  for (const shelf of document.querySelectorAll("#view section[data-list]")) {
    const list = shelf.dataset.list;
    if (!list || shelf.dataset.impressed) continue;
    shelf.dataset.impressed = "1";
    const positions = [...shelf.querySelectorAll(".card")].map((_, at) => at);
    if (positions.length > 0) client.impression(viewer, list, positions);
  }
}
function attributeClick(event) {
  const target = event.target instanceof Element ? event.target.closest("a.card[data-list]") : null;
  const { item, list, position } = target?.dataset ?? {};
  if (item && list && position !== void 0) {
    client.click(viewer, item, { recommendationId: list, position: Number(position) });
  }
}
async function forYou() {
  return client.recommendations(viewer, { count: ROW_LENGTH });
}
var generation = 0;
function show(ticket, ...sections) {
  if (ticket !== generation) return;
  byId("view").replaceChildren(...sections);
  impressions();
}
async function home() {
  const ticket = ++generation;
  const [mine, trending, summary] = await Promise.all([
    forYou(),
    client.trending({ count: ROW_LENGTH }),
    client.user(viewer).catch(() => null)
  ]);
  const shelves = [forYouRow(mine)];
  const last = summary?.recent.find((entry) => entry.weight > 0);
  if (last) {
    const [details, similar] = await Promise.all([
      client.item(last.item_id).catch(() => null),
      client.similar(last.item_id, { count: ROW_LENGTH })
    ]);
    shelves.push(row(`Because you watched ${details?.title ?? last.item_id}`, similar, "because"));
  }
  shelves.push(row("Trending", trending, "trending"));
  const genre = mine.items[0]?.genres?.[0];
  if (genre) shelves.push(row(`Trending in ${genre}`, await client.trending({ count: ROW_LENGTH, genre }), "trending-genre"));
  show(ticket, ...shelves);
}
async function movie(itemId) {
  const ticket = ++generation;
  const [details, similar, mine] = await Promise.all([
    client.item(itemId),
    client.similar(itemId, { count: ROW_LENGTH }),
    forYou()
  ]);
  const title = details.title ?? details.item_id;
  const facts = [details.year !== void 0 ? String(details.year) : "", (details.genres ?? []).join(", ")].filter(Boolean).join(" \xB7 ");
  const stars = el("select", { id: "stars", "aria-label": "Your rating, in stars" });
  for (let half = 10; half >= 1; half--) {
    const value = (half / 2).toFixed(1);
    stars.append(el("option", { value }, `${value} \u2605`));
  }
  const progress = el("progress", { id: "watched", max: "100", value: "0", "aria-label": "Watched" });
  const actions = el(
    "div",
    { class: "actions", role: "group", "aria-label": "Actions" },
    stars,
    button("Rate", "rate", () => act("rating", itemId, Number(stars.value))),
    button("Like", "like", () => act("like", itemId)),
    button("Dislike", "dislike", () => act("dislike", itemId)),
    button("Add to watchlist", "watchlist", () => act("add_to_watchlist", itemId)),
    button("Watch", "watch", () => watch(itemId, progress)),
    progress
  );
  const tags = details.tags?.length ? el("p", { class: "tags" }, `Tags: ${details.tags.join(", ")}`) : null;
  show(
    ticket,
    el(
      "article",
      { class: `movie ${hue(details.genres)}`, "aria-labelledby": "movie-title" },
      el("h2", { id: "movie-title" }, title),
      el("p", { class: "facts" }, facts),
      tags,
      actions
    ),
    forYouRow(mine),
    row("Similar movies", similar, "similar")
  );
}
function button(label, name, onClick) {
  const node = el("button", { type: "button", "data-action": name }, label);
  node.addEventListener("click", onClick);
  return node;
}
async function act(kind, itemId, value) {
  const before = (await forYou()).items.map((movie2) => movie2.item_id).join(",");
  client.track({ kind, userId: viewer, itemId, value });
  try {
    await client.flush(5e3);
  } catch (error) {
    status(`The event was not delivered: ${String(error)}`);
    return;
  }
  const acknowledged = performance.now();
  const deadline = acknowledged + 3e3;
  let after = await forYou();
  while (after.items.map((movie2) => movie2.item_id).join(",") === before && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    after = await forYou();
  }
  const took = Math.round(performance.now() - acknowledged);
  const changed = after.items.map((movie2) => movie2.item_id).join(",") !== before;
  const section = document.getElementById("for-you");
  if (section) {
    section.replaceWith(forYouRow(after));
    impressions();
  }
  status(
    changed ? `"For you" changed ${took} ms after the ${kind.replace(/_/g, " ")} was acknowledged.` : `The ${kind.replace(/_/g, " ")} was acknowledged; "For you" kept its order.`
  );
}
function watch(itemId, progress) {
  let watched = 0;
  const timer = setInterval(() => {
    if (!progress.isConnected) {
      clearInterval(timer);
      if (watched > 0) void act("watch", itemId, watched / 100);
      return;
    }
    watched = Math.min(100, watched + 5);
    progress.value = watched;
    if (watched >= 100) {
      clearInterval(timer);
      void act("watch", itemId, 1);
    }
  }, 200);
}
async function results(text) {
  const ticket = ++generation;
  const found = await client.search(text, { count: 24, userId: viewer });
  const heading = found.items.length > 0 ? `Results for \u201C${text}\u201D` : `Nothing matches \u201C${text}\u201D`;
  const shelf = row(heading, found.items, "results");
  const notes = [`${found.total} ${found.total === 1 ? "match" : "matches"}`];
  if (!found.all_words) notes.push("no movie has every word: these have some");
  if (found.personalised) notes.push(`equally good matches in ${viewer}'s taste order`);
  const facets = found.facets.genres.slice(0, 8).map((facet) => `${facet.value} ${facet.count}`).join(" \xB7 ");
  const decades = found.facets.decades.map((facet) => `${facet.value}s ${facet.count}`).join(" \xB7 ");
  show(
    ticket,
    shelf,
    el("p", { class: "notes", id: "results-notes" }, notes.join("; ") + "."),
    el("p", { class: "notes" }, facets ? `Genres: ${facets}` : ""),
    el("p", { class: "notes" }, decades ? `Decades: ${decades}` : "")
  );
}
var suggesting = 0;
async function suggest(text) {
  const ticket = ++suggesting;
  const list = byId("suggestions");
  if (!/[\p{L}\p{N}]/u.test(text)) {
    list.replaceChildren();
    return;
  }
  const suggestions = await client.suggest(text).catch(() => []);
  if (ticket !== suggesting) return;
  list.replaceChildren(...suggestions.map((s) => el("option", { value: s.title ?? s.item_id })));
}
function setViewer(id) {
  viewer = id.trim() || viewer;
  localStorage.setItem(VIEWER_STORAGE, viewer);
  byId("viewer").value = viewer;
  byId("viewer-name").textContent = viewer;
  void route();
}
async function route() {
  const match = /^#\/movie\/(.+)$/.exec(location.hash);
  const search = /^#\/search\/(.+)$/.exec(location.hash);
  try {
    if (match) await movie(decodeURIComponent(match[1]));
    else if (search) await results(decodeURIComponent(search[1]));
    else await home();
  } catch (error) {
    if (error instanceof MarqueeError && (error.status === 401 || error.status === 403)) {
      byId("key-form").hidden = false;
      status(`This node asks for a viewer token (or an API key with the read and ingest scopes): ${error.message}`);
      return;
    }
    status(error instanceof Error ? error.message : String(error));
  }
}
function arrowKeys(event) {
  const current = event.target instanceof HTMLElement ? event.target.closest(".card") : null;
  if (!current || !["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(event.key)) return;
  const rows = [...document.querySelectorAll("#view .row")];
  const row2 = current.closest(".row");
  if (!row2) return;
  const cards = (list) => [...list.querySelectorAll(".card")];
  const at = cards(row2).indexOf(current);
  let next;
  if (event.key === "ArrowLeft") next = cards(row2)[at - 1];
  else if (event.key === "ArrowRight") next = cards(row2)[at + 1];
  else {
    const other = rows[rows.indexOf(row2) + (event.key === "ArrowUp" ? -1 : 1)];
    if (other) {
      const candidates = cards(other);
      next = candidates[Math.min(at, candidates.length - 1)];
    }
  }
  if (next) {
    event.preventDefault();
    next.focus();
    next.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
}
function start() {
  byId("view").addEventListener("keydown", arrowKeys);
  byId("view").addEventListener("click", attributeClick);
  byId("viewer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setViewer(byId("viewer").value);
  });
  byId("new-viewer").addEventListener("click", () => {
    setViewer(`viewer-${Math.random().toString(36).slice(2, 8)}`);
    location.hash = "";
  });
  byId("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = byId("search").value.trim();
    if (text) location.hash = `#/search/${encodeURIComponent(text)}`;
  });
  let typing;
  byId("search").addEventListener("input", (event) => {
    const text = event.target.value;
    clearTimeout(typing);
    typing = setTimeout(() => void suggest(text), 120);
  });
  byId("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byId("key").value.trim();
    sessionStorage.setItem(KEY_STORAGE, key);
    client = newClient(key || void 0);
    byId("key-form").hidden = true;
    const user = tokenUser(key);
    if (user) setViewer(user);
    else void route();
  });
  window.addEventListener("hashchange", () => void route());
  setViewer(tokenUser(sessionStorage.getItem(KEY_STORAGE) ?? void 0) ?? viewer);
}
start();
