// The TypeScript SDK in headless Chromium (Debian's `chromium`, driven by playwright-core): a
// page served from another origin than the API tracks clicks (batched fetches with an
// `Authorization` header, so CORS preflights are exercised) and shows recommendations that
// follow them; a page left with events still queued hands them to `navigator.sendBeacon`.
//
// Skipped, saying so, where Chromium is not installed, unless MARQUEE_REQUIRE_BROWSER=1 (CI
// sets it: `scripts/setup.sh` installs Chromium there).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { MarqueeClient } from "../dist/index.js";
import { Server, applied, caughtUp, chromiumArgs, createKey, eventually, metric, tempDir } from "./helpers.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const chromium = process.env.MARQUEE_CHROMIUM ?? "/usr/bin/chromium";
const required = process.env.MARQUEE_REQUIRE_BROWSER === "1";
const skip =
  !existsSync(chromium) && !required
    ? `skipped: no Chromium at ${chromium} (install Debian's chromium, or set MARQUEE_CHROMIUM)`
    : false;

/** Serves the built SDK and the test page, from an origin of its own. */
function staticServer() {
  const types = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };
  const server = createServer((request, response) => {
    const path = normalize(new URL(request.url, "http://x").pathname);
    const allowed = path.startsWith("/dist/") || path === "/test/browser/page.html";
    const file = join(root, path);
    if (!allowed || !existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    response.end(readFileSync(file));
  });
  return new Promise((resolveServer) =>
    server.listen(0, "127.0.0.1", () => resolveServer({ server, origin: `http://127.0.0.1:${server.address().port}` })),
  );
}

test("a page of another origin tracks clicks, shows recommendations, and beacons its queue on leaving", { skip }, async () => {
  const { chromium: playwright } = await import("playwright-core");
  const dir = tempDir();
  const { server: pages, origin } = await staticServer();
  const admin = createKey(dir.path, "admin");
  const ingest = createKey(dir.path, "ingest");
  const read = createKey(dir.path, "read");
  const api = await Server.start(dir.path, ["--auth", "on", "--cors-origin", origin]);
  const browser = await playwright.launch({ executablePath: chromium, args: chromiumArgs });
  try {
    // A catalogue, and viewers who watched all of it, so every film has neighbours.
    const setup = new MarqueeClient({ baseUrl: api.url, apiKey: admin, lingerMs: 5 });
    const films = Array.from({ length: 10 }, (_, n) => ({ item_id: `f${n}`, title: `Film ${n}`, genres: ["Drama"] }));
    await setup.upsertItems(films);
    for (let viewer = 0; viewer < 5; viewer++) for (const film of films) setup.rate(`fan-${viewer}`, film.item_id, 4);
    await setup.close(10_000);
    await caughtUp(api.url, admin);

    const filmIds = films.map((film) => film.item_id).join(",");
    const pageUrl = (extra) =>
      `${origin}/test/browser/page.html?api=${encodeURIComponent(api.url)}&ingest=${ingest}&read=${read}&films=${filmIds}${extra}`;

    // Clicks go out in batches (cross-origin, preflighted) and the list follows them.
    const page = await browser.newPage();
    const consoleErrors = [];
    page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
    page.on("response", (response) => response.status() >= 400 && consoleErrors.push(`${response.status()} ${response.url()}`));
    await page.goto(pageUrl("&user=clicker"));
    await page.waitForSelector("body[data-ready=true]");
    await page.click("#film-f0");
    await page.click("#film-f2");
    await eventually("the clicks delivered", () => page.evaluate(() => window.marquee.events.stats().delivered === 2));
    // The page refreshes its list every 200 ms; it follows both clicks once they are applied.
    const shown = await eventually("a list that follows both clicks", async () => {
      const items = await page.$$eval("#recs li", (entries) => entries.map((entry) => entry.dataset.item));
      const strategy = await page.$eval("#recs", (list) => list.dataset.strategy);
      const follows = strategy !== "popular" && items.length > 0 && !items.includes("f0") && !items.includes("f2");
      return follows ? items : undefined;
    });
    assert.ok(shown.every((id) => filmIds.includes(id)), `${shown}`);
    assert.deepEqual(await page.evaluate(() => window.marquee.problems), []);
    await caughtUp(api.url, admin);
    assert.equal((await applied(api.url, "clicker", admin)).count, 2);
    await page.close();

    // A page whose events are still queued (a linger of an hour) when the viewer leaves: the
    // beacon delivers them, with the ingest key in its URL.
    const beaconsBefore = await metric(api.url, 'marquee_http_request_duration_seconds_count{route="/v1/events/beacon",status="2xx"}');
    const leaving = await browser.newPage();
    await leaving.goto(pageUrl("&user=leaver&linger=3600000"));
    await leaving.waitForSelector("body[data-ready=true]");
    for (const id of ["f1", "f3", "f5"]) await leaving.click(`#film-${id}`);
    assert.equal(await leaving.evaluate(() => window.marquee.events.stats().pending), 3);
    await leaving.goto("about:blank");
    await eventually("the beaconed events applied", async () => {
      await caughtUp(api.url, admin);
      return (await applied(api.url, "leaver", admin)).count === 3;
    });
    const beacons = await metric(api.url, 'marquee_http_request_duration_seconds_count{route="/v1/events/beacon",status="2xx"}');
    assert.ok(beacons > beaconsBefore, "the events came by the beacon route");
    assert.deepEqual(consoleErrors, []);
  } finally {
    await browser.close();
    await api.stop();
    pages.close();
    dir.remove();
  }
});
