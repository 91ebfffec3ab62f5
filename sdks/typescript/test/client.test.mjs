// The TypeScript SDK in Node.js against a real `marquee serve` started by each test: batching
// by size and linger, idempotent retries across a server restart (nothing lost, nothing applied
// twice), back-off on 429 as `Retry-After` says, validation errors surfaced and not retried,
// flush on close, the drop-oldest queue bound, and the typed queries.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ClosedError, MarqueeClient, MarqueeError, UndeliveredError, uuidv7 } from "../dist/index.js";
import {
  Server,
  applied,
  caughtUp,
  createKey,
  eventRequests,
  eventually,
  freePort,
  metric,
  sleep,
  tempDir,
  writeConfig,
} from "./helpers.mjs";

async function withServer(extra, body, setup) {
  const dir = tempDir();
  try {
    const context = setup ? setup(dir.path) : {};
    const server = await Server.start(dir.path, typeof extra === "function" ? extra(dir.path) : extra);
    try {
      await body(server, context);
    } finally {
      await server.stop();
    }
  } finally {
    dir.remove();
  }
}

test("uuidv7 ids are valid, distinct and ordered by time", () => {
  const first = uuidv7(1_700_000_000_000);
  const second = uuidv7(1_700_000_000_001);
  assert.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(first < second);
  assert.equal(first.slice(0, 13), "018bcfe5-6800");
});

test("settings are checked by name", () => {
  assert.throws(() => new MarqueeClient({ baseUrl: "not a url" }), /^TypeError: baseUrl:/);
  assert.throws(() => new MarqueeClient({ baseUrl: "ftp://x" }), /baseUrl:/);
  assert.throws(() => new MarqueeClient({ baseUrl: "http://x", batchSize: 0 }), /^RangeError: batchSize:/);
  assert.throws(
    () => new MarqueeClient({ baseUrl: "http://x", batchSize: 10, queueCapacity: 5 }),
    /^RangeError: queueCapacity:/,
  );
});

test("events go in full batches, or together after the linger", async () => {
  await withServer([], async (server) => {
    const before = await eventRequests(server.url);
    const client = new MarqueeClient({ baseUrl: server.url, batchSize: 100, lingerMs: 3_600_000 });
    for (let n = 0; n < 500; n++) client.view(`u${n % 7}`, `m${n}`);
    await eventually("five full batches", () => client.stats().delivered === 500);
    assert.equal((await eventRequests(server.url)) - before, 5);

    const lingering = new MarqueeClient({ baseUrl: server.url, batchSize: 100, lingerMs: 300 });
    for (const item of ["a", "b", "c"]) lingering.click("linger-user", item);
    await eventually("the lingering batch", () => lingering.stats().delivered === 3);
    assert.equal((await eventRequests(server.url)) - before, 6);
    await caughtUp(server.url);
    const { ids, count } = await applied(server.url, "linger-user");
    assert.deepEqual([ids.size, count], [3, 3]);
    await client.close(5_000);
    await lingering.close(5_000);
  });
});

test("a server restart mid-stream loses nothing and applies nothing twice", async () => {
  const dir = tempDir();
  const port = await freePort();
  let server = await Server.start(dir.path, [], port);
  try {
    const problems = [];
    const client = new MarqueeClient({
      baseUrl: server.url,
      batchSize: 50,
      lingerMs: 20,
      backoffInitialMs: 50,
      backoffMaxMs: 500,
      onError: (problem) => problems.push(problem),
    });
    const users = Array.from({ length: 20 }, (_, n) => `viewer-${n}`);
    const tracked = [];
    // 3,000 events at about 3,000/s; SIGKILL a third of the way in, a restart a second later.
    for (let n = 0; n < 3_000; n++) {
      tracked.push(client.rate(users[n % users.length], `m${n % 211}`, 1 + (n % 9) / 2));
      if (n % 30 === 29) await sleep(10);
      if (n === 1_000) {
        await server.kill();
        await sleep(1_000);
        server = new Server(dir.path, port);
      }
    }
    await server.ready();
    await client.flush(60_000);
    const stats = client.stats();
    assert.equal(stats.delivered, 3_000, JSON.stringify(stats));
    assert.deepEqual([stats.rejected, stats.dropped], [0, 0]);
    assert.ok(stats.retries >= 1, `the restart was not felt: ${JSON.stringify(stats)}`);
    assert.ok(problems.every((problem) => problem.type === "retrying"), JSON.stringify(problems));

    await caughtUp(server.url);
    for (const user of users) {
      const expected = new Set(tracked.filter((event) => event.user_id === user).map((event) => event.event_id));
      const { ids, count } = await applied(server.url, user);
      assert.deepEqual(ids, expected, `${user}: applied ids differ from the tracked ones`);
      assert.equal(count, expected.size, `${user}: an event counted twice`);
    }
    await client.close(5_000);
  } finally {
    await server.stop();
    dir.remove();
  }
});

test("a rate-limited client waits as Retry-After says and delivers everything", async () => {
  await withServer(
    (dataDir) => ["--auth", "on", "--config", writeConfig(dataDir, "[limits]\nrate_burst_seconds = 1\n")],
    async (server, { admin, ingest }) => {
      const problems = [];
      // One event per request, for a key allowed 2 requests/s: 429s are certain.
      const client = new MarqueeClient({
        baseUrl: server.url,
        apiKey: ingest,
        batchSize: 1,
        lingerMs: 0,
        backoffInitialMs: 10,
        backoffMaxMs: 20,
        onError: (problem) => problems.push(problem),
      });
      for (let n = 0; n < 10; n++) client.like("limited", `m${n}`);
      await client.flush(60_000);
      assert.equal(client.stats().delivered, 10);
      const waits = problems.filter((problem) => problem.type === "retrying");
      assert.ok(waits.length > 0, "no 429 was met");
      for (const wait of waits) {
        assert.match(wait.cause, /^429 rate_limited/);
        // The server says `Retry-After: 1`; the backoff alone would wait ≤ 20 ms.
        assert.ok(wait.delayMs >= 1_000, `waited only ${wait.delayMs} ms`);
      }
      // Every 429 the server sent is one the client reported and waited out.
      const limited = await metric(server.url, 'marquee_http_requests_rejected_total{reason="rate_limit"}');
      assert.equal(limited, waits.length);
      assert.equal(client.stats().retries, waits.length);
      await caughtUp(server.url, admin);
      const { ids, count } = await applied(server.url, "limited", admin);
      assert.deepEqual([ids.size, count], [10, 10]);
      await client.close(5_000);
    },
    (dataDir) => ({ admin: createKey(dataDir, "admin"), ingest: createKey(dataDir, "ingest", 2) }),
  );
});

test("refused events reach onError with the server's message and are not retried", async () => {
  await withServer(
    ["--auth", "on"],
    async (server, { admin, ingest }) => {
      const problems = [];
      const client = new MarqueeClient({ baseUrl: server.url, apiKey: ingest, onError: (p) => problems.push(p) });
      client.rate("careful", "m1", 7); // stars out of range
      client.view("careful", "m2");
      await client.flush(10_000);
      const stats = client.stats();
      assert.deepEqual([stats.delivered, stats.rejected, stats.retries], [1, 1, 0]);
      assert.equal(problems.length, 1);
      assert.equal(problems[0].type, "rejected");
      assert.equal(problems[0].event.item_id, "m1");
      assert.equal(problems[0].field, "value");
      assert.match(problems[0].message, /^value:/);

      // An unknown key: the batch is refused once, with the reason.
      const refused = [];
      const unknown = new MarqueeClient({ baseUrl: server.url, apiKey: "mq_00000000_0000", onError: (p) => refused.push(p) });
      unknown.view("careful", "m3");
      await unknown.flush(10_000);
      assert.equal(refused.length, 1);
      assert.equal(refused[0].type, "batch_refused");
      assert.equal(refused[0].status, 401);
      assert.match(refused[0].message, /^authorization:/);
      assert.equal(unknown.stats().retries, 0);

      // A query with a key that may not read: the server's 403 as a typed error.
      await assert.rejects(client.recommendations("careful"), (error) => {
        assert.ok(error instanceof MarqueeError);
        assert.equal(error.status, 403);
        assert.match(error.message, /needs read/);
        return true;
      });
      await caughtUp(server.url, admin);
      assert.equal((await applied(server.url, "careful", admin)).ids.size, 1);
    },
    (dataDir) => ({ admin: createKey(dataDir, "admin"), ingest: createKey(dataDir, "ingest") }),
  );
});

test("close delivers the queue and then refuses events", async () => {
  await withServer([], async (server) => {
    const client = new MarqueeClient({ baseUrl: server.url, lingerMs: 3_600_000 });
    for (let n = 0; n < 50; n++) client.watch("closing", `m${n}`, 0.5);
    assert.equal(client.stats().delivered, 0);
    await client.close(10_000);
    assert.equal(client.stats().delivered, 50);
    assert.throws(() => client.view("closing", "late"), ClosedError);
    await caughtUp(server.url);
    const { ids, count } = await applied(server.url, "closing");
    assert.deepEqual([ids.size, count], [50, 50]);
  });
});

test("with no server the queue stays bounded by dropping the oldest", async () => {
  const url = `http://127.0.0.1:${await freePort()}`; // nothing listens here
  const problems = [];
  const client = new MarqueeClient({
    baseUrl: url,
    batchSize: 5,
    queueCapacity: 10,
    backoffInitialMs: 20,
    backoffMaxMs: 50,
    onError: (problem) => problems.push(problem),
  });
  for (let n = 0; n < 25; n++) client.view("offline", `m${n}`);
  const stats = client.stats();
  assert.ok(stats.pending <= 15, JSON.stringify(stats));
  assert.equal(stats.dropped + stats.pending, 25);
  const reportedDrops = problems.filter((p) => p.type === "dropped").reduce((sum, p) => sum + p.count, 0);
  assert.equal(reportedDrops, stats.dropped);
  await eventually("a retry against the absent server", () => client.stats().retries > 0);
  await assert.rejects(client.close(200), (error) => {
    assert.ok(error instanceof UndeliveredError);
    assert.equal(error.pending, stats.pending);
    return true;
  });
  assert.equal(client.stats().pending, 0);
  await assert.rejects(client.trending(), TypeError); // fetch's network failure
});

test("typed queries and catalogue upserts", async () => {
  await withServer([], async (server) => {
    const client = new MarqueeClient({ baseUrl: server.url, lingerMs: 5 });
    const items = Array.from({ length: 12 }, (_, n) => ({
      item_id: `f${n}`,
      title: `Film f${n}`,
      genres: [n % 2 === 0 ? "Drama" : "Comedy"],
      year: 1999,
    }));
    const upserted = await client.upsertItems(items);
    assert.deepEqual([upserted.upserted, upserted.rejected.length], [12, 0]);
    const details = await client.item("f3");
    assert.deepEqual({ ...details, tags: undefined, event_count: undefined, in_catalogue: undefined }, {
      ...items[3],
      tags: undefined,
      event_count: undefined,
      in_catalogue: undefined,
      hidden: false,
      available: true,
    });
    assert.equal(details.in_catalogue, true);

    for (let viewer = 0; viewer < 6; viewer++) {
      for (const item of items) client.rate(`fan-${viewer}`, item.item_id, 4);
    }
    const newcomer = "new viewer/ü";
    client.rate(newcomer, "f0", 5);
    await client.flush(10_000);
    await caughtUp(server.url);

    const created = await fetch(`${server.url}/v1/admin/experiments`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "e1", status: "running", variants: [{ name: "a", share: 1 }] }),
    });
    assert.equal(created.status, 201);
    const picks = await eventually("recommendations for the newcomer", async () => {
      const answer = await client.recommendations(newcomer, { count: 5 });
      return answer.items.length > 0 ? answer : undefined;
    });
    assert.equal(picks.user_id, newcomer);
    assert.ok(picks.items.length <= 5);
    assert.deepEqual(picks.experiments, { e1: "a" });

    // The list shown, then a click on its second item: both name the list.
    client.impression(newcomer, picks.recommendation_id, picks.items.map((_, at) => at));
    client.click(newcomer, picks.items[1].item_id, { recommendationId: picks.recommendation_id, position: 1 });
    await client.flush(10_000);
    await caughtUp(server.url);
    const results = await (await fetch(`${server.url}/v1/admin/experiments/e1/results`)).json();
    const [group] = results.groups;
    assert.deepEqual([group.impressions, group.clicked, group.click_positions[1]], [1, 1, 1]);
    assert.ok(picks.items.every((pick) => pick.item_id !== "f0"), "seen items are left out");

    const comedies = await client.recommendations(newcomer, { genre: "comedy", exclude: ["f1", "f3"] });
    assert.ok(comedies.items.length > 0);
    for (const pick of comedies.items) {
      assert.deepEqual(pick.genres, ["Comedy"]);
      assert.ok(pick.item_id !== "f1" && pick.item_id !== "f3");
    }
    const similar = await client.similar("f0", { count: 3 });
    assert.ok(similar.length > 0 && similar.length <= 3);
    assert.ok(similar.every((item) => item.item_id !== "f0"));
    const trending = await client.trending({ count: 4, genre: "Drama" });
    assert.equal(trending.length, 4);
    assert.ok(trending.every((item) => item.genres[0] === "Drama"));
    // A filter, then the next page of the same ranking; a deleted item leaves the lists.
    const dramas = 'genres HAS "Drama"';
    const first = await client.recommendations("nobody-yet", { count: 2, filter: dramas });
    assert.equal(first.items.length, 2);
    assert.ok(first.items.every((item) => item.genres[0] === "Drama"));
    const second = await client.recommendations("nobody-yet", { count: 2, filter: dramas, pageToken: first.next_page_token });
    assert.equal(second.items.length, 2);
    for (const item of second.items) {
      assert.equal(item.genres[0], "Drama");
      assert.ok(first.items.every((shown) => shown.item_id !== item.item_id));
    }
    await client.deleteItem(second.items[0].item_id);
    const after = await client.trending({ count: 20 });
    assert.ok(after.every((item) => item.item_id !== second.items[0].item_id));
    await assert.rejects(client.deleteItem("no-such-item"), (error) => error.status === 404);

    // An export and an erasure: waited for, or as a job the client follows.
    const exported = await client.exportUser(newcomer);
    assert.equal(exported.user_id, newcomer);
    assert.deepEqual(exported.events.map((entry) => entry.event.item_id), ["f0", undefined, picks.items[1].item_id]);
    const viaJob = await client.exportUser(newcomer, { respondAsync: true });
    assert.deepEqual(viaJob.events, exported.events);
    assert.equal(viaJob.user_id, newcomer);
    const erased = await client.eraseUser(newcomer, { respondAsync: true });
    assert.equal(erased.user_id, newcomer);
    assert.equal(erased.erased.log_events, 3);
    await assert.rejects(client.exportUser(newcomer, { respondAsync: true }), (error) => error.status === 404);

    const found = await client.search("filmm f7", { genre: "comedy", yearFrom: 1990 });
    assert.equal(found.items[0].item_id, "f7");
    assert.ok(found.items.every((item) => item.genres[0] === "Comedy"));
    assert.deepEqual(found.facets.decades, [{ value: 1990, count: found.total }]);
    assert.equal(found.personalised, false);
    const suggestions = await client.suggest("film f1", { count: 3 });
    assert.equal(suggestions.length, 3);
    assert.ok(suggestions.every((s) => s.title.startsWith("Film f1")));
    await assert.rejects(client.search(" "), (error) => {
      assert.ok(error instanceof MarqueeError);
      assert.deepEqual([error.status, error.code], [400, "invalid_parameter"]);
      assert.match(error.message, /^q:/);
      return true;
    });

    await assert.rejects(client.recommendations(newcomer, { count: 1000 }), (error) => {
      assert.ok(error instanceof MarqueeError);
      assert.deepEqual([error.status, error.code], [400, "invalid_parameter"]);
      assert.match(error.message, /^count:/);
      return true;
    });
    await client.close(5_000);
  });
});
