// The viewer app in headless Chromium (Debian's `chromium`, driven by playwright-core) against a
// real `marquee serve`: a new viewer rates movies of one taste through the page and "For you"
// turns to that taste without a reload, although the other taste is the more popular; the
// search box suggests titles as they are typed and finds a movie despite a typo; an item
// whose title is markup shows as text; the page is served with a policy that forbids inline
// scripts; axe-core finds no WCAG 2.1 A/AA violation on the home, movie and search pages and the
// console; the console asks for an admin key, then pauses the processor and erases a user.
//
// Skipped, saying so, where Chromium is not installed, unless MARQUEE_REQUIRE_BROWSER=1 (CI
// sets it: `scripts/setup.sh` installs Chromium there).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";

import { MarqueeClient } from "../../../../sdks/typescript/dist/index.js";
import { Server, caughtUp, chromiumArgs, createKey, eventually, tempDir } from "../../../../sdks/typescript/test/helpers.mjs";

const chromium = process.env.MARQUEE_CHROMIUM ?? "/usr/bin/chromium";
const required = process.env.MARQUEE_REQUIRE_BROWSER === "1";
const skip =
  !existsSync(chromium) && !required
    ? `skipped: no Chromium at ${chromium} (install Debian's chromium, or set MARQUEE_CHROMIUM)`
    : false;


/** Two tastes: twelve comedies and twelve horror films; fans of each watched all of theirs. */
async function catalogue(url) {
  const setup = new MarqueeClient({ baseUrl: url, lingerMs: 5 });
  const films = [];
  for (let n = 0; n < 12; n++) {
    films.push({ item_id: `c${n}`, title: `Comedy ${n}`, genres: ["Comedy"], year: 1990 + n });
    films.push({ item_id: `h${n}`, title: `Horror ${n}`, genres: ["Horror"], year: 1990 + n });
  }
  films.push({ item_id: "x1", title: "<img src=x onerror=alert(1)>", genres: ["Comedy"], tags: ["<b>bold</b>"] });
  await setup.upsertItems(films);
  let at = Date.now() - 3_600_000;
  for (let fan = 0; fan < 8; fan++) {
    for (const taste of ["c", "h"]) {
      for (let n = 0; n < 12; n++) setup.track({ kind: "rating", userId: `${taste}-fan-${fan}`, itemId: `${taste}${n}`, value: 5, timestamp: at++ });
    }
  }
  // The horror fans watched more: trending leans to horror, so "For you" must move to comedy.
  for (let fan = 8; fan < 16; fan++) {
    for (let n = 0; n < 12; n++) setup.track({ kind: "rating", userId: `h-fan-${fan}`, itemId: `h${n}`, value: 5, timestamp: at++ });
  }
  await setup.close(10_000);
  await caughtUp(url);
}

test("a viewer rates comedies in the page and For you turns to comedy without a reload", { skip }, async () => {
  const { chromium: playwright } = await import("playwright-core");
  const dir = tempDir();
  const api = await Server.start(dir.path);
  const browser = await playwright.launch({ executablePath: chromium, args: chromiumArgs });
  try {
    const policy = (await fetch(`${api.url}/`)).headers.get("content-security-policy");
    assert.match(policy, /script-src 'self'/);
    assert.doesNotMatch(policy, /unsafe-inline/);
    await catalogue(api.url);
    const created = await fetch(`${api.url}/v1/admin/experiments`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "page", status: "running", variants: [{ name: "a", share: 1 }] }),
    });
    assert.equal(created.status, 201);

    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(String(error)));
    page.on("dialog", (dialog) => {
      problems.push(`a dialog opened: ${dialog.message()}`);
      void dialog.dismiss();
    });
    await page.goto(`${api.url}/`);
    await page.click("#new-viewer");
    const viewer = await page.textContent("#viewer-name");
    assert.match(viewer, /^viewer-/);

    // Rate five comedies, each from its own movie page, as a viewer would.
    for (const id of ["c0", "c3", "c5", "c7", "c9"]) {
      await page.goto(`${api.url}/#/movie/${id}`);
      await page.waitForSelector("#movie-title");
      await page.selectOption("#stars", "5.0");
      await page.click("button[data-action=rate]");
      await page.waitForFunction(() => /acknowledged/.test(document.getElementById("status")?.textContent ?? ""));
    }
    // The page reported the time from the acknowledgement to the changed list.
    const said = await page.textContent("#status");
    assert.match(said, /For you" changed \d+ ms after the rating was acknowledged|kept its order/);

    // Home, without a reload: "For you" is mostly comedy, and none of what was rated.
    await page.click(".who a");
    const shown = await eventually("For you on the home page", async () => {
      const ids = await page.$$eval("#for-you [data-item]", (cards) => cards.map((card) => card.dataset.item));
      return ids.length >= 5 ? ids : undefined;
    });
    // Every comedy not rated yet comes before any horror film (which only fills the row).
    const unrated = ["c1", "c2", "c4", "c6", "c8", "c10", "c11"];
    const firstHorror = shown.findIndex((id) => id.startsWith("h"));
    const comedies = shown.slice(0, firstHorror === -1 ? shown.length : firstHorror);
    assert.ok(unrated.every((id) => comedies.includes(id)), `For you: ${shown}`);
    assert.ok(!shown.some((id) => ["c0", "c3", "c5", "c7", "c9"].includes(id)), `seen items listed: ${shown}`);
    assert.match(await page.textContent("#because-title"), /^Because you watched Comedy /);

    // The keyboard moves along a row and between rows.
    const focused = () => page.evaluate(() => document.activeElement?.closest("section")?.id + ":" + document.activeElement?.dataset.item);
    await page.focus("#for-you .card");
    await page.keyboard.press("ArrowRight");
    assert.equal(await focused(), `for-you:${shown[1]}`);
    await page.keyboard.press("ArrowDown");
    assert.match(await focused(), /^because:/);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#movie-title");

    // Every "For you" row shown was impressed; a click on its second card is attributed to it.
    await page.locator("#for-you .card").nth(1).click();
    const results = await eventually("the click attributed to its list", async () => {
      const answer = await (await fetch(`${api.url}/v1/admin/experiments/page/results`)).json();
      return answer.groups[0].clicked >= 1 ? answer.groups[0] : undefined;
    });
    assert.ok(results.impressions >= 3, `lists shown: ${results.impressions}`);
    assert.equal(results.click_positions[1], 1);

    // Watching fills the bar, then sends the fraction watched.
    await page.goto(`${api.url}/#/movie/c2`);
    await page.waitForSelector("#movie-title");
    await page.click("button[data-action=watch]");
    await page.waitForFunction(() => /watch was acknowledged/.test(document.getElementById("status")?.textContent ?? ""), null, { timeout: 15_000 });
    assert.equal(await page.$eval("#watched", (bar) => bar.value), 100);

    // Search: titles suggested while typing, then results, a typo forgiven.
    await page.fill("#search", "comedy 1");
    await page.waitForFunction(() =>
      [...document.querySelectorAll("#suggestions option")].some((option) => option.value === "Comedy 1"),
    );
    await page.fill("#search", "horor 3");
    await page.press("#search", "Enter");
    await page.waitForSelector("#results-title");
    const found = await page.$$eval("#results [data-item]", (cards) => cards.map((card) => card.dataset.item));
    assert.equal(found[0], "h3", `results: ${found}`);
    assert.match(await page.textContent("#results-notes"), /^\d+ match/);

    // Markup in a title or a tag shows as text and runs nothing.
    await page.goto(`${api.url}/#/movie/x1`);
    await page.waitForSelector("#movie-title");
    assert.equal(await page.textContent("#movie-title"), "<img src=x onerror=alert(1)>");
    assert.equal(await page.locator("main img, main b").count(), 0);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await api.stop();
    dir.remove();
  }
});

test("axe-core finds no WCAG 2.1 A or AA violation on the home page, a movie page, search results and the console", { skip }, async () => {
  const { chromium: playwright } = await import("playwright-core");
  const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
  const dir = tempDir();
  const api = await Server.start(dir.path);
  const browser = await playwright.launch({ executablePath: chromium, args: chromiumArgs });
  try {
    await catalogue(api.url);
    // axe is injected as a script of the test's own: the page's policy forbids that, so this
    // context alone bypasses it.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    const audit = async (what) => {
      await page.addScriptTag({ content: axeSource });
      const result = await page.evaluate(() =>
        window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
      );
      const violations = result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
      assert.deepEqual(violations, [], `${what}: ${violations.join("; ")}`);
    };
    await page.goto(`${api.url}/`);
    await page.fill("#viewer", "c-fan-0");
    await page.click("#viewer-form button[type=submit]");
    await page.waitForSelector("#because-title");
    await audit("home");
    await page.goto(`${api.url}/#/movie/c1`);
    await page.waitForSelector("#movie-title");
    await audit("movie page");
    await page.goto(`${api.url}/#/search/comedy`);
    await page.waitForSelector("#results-title");
    await audit("search results");
    // The console of a node with auth off opens without a key; audited with an experiment's
    // results shown.
    const created = await fetch(`${api.url}/v1/admin/experiments`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "ab", status: "running", variants: [{ name: "a", share: 0.5 }, { name: "b", share: 0.5 }] }),
    });
    assert.equal(created.status, 201);
    await page.goto(`${api.url}/console`);
    await page.waitForSelector("#chart-ingest canvas");
    await page.click("#experiments-table button[data-results=ab]");
    await page.waitForSelector("#results-title");
    await audit("console");
    await context.close();
  } finally {
    await browser.close();
    await api.stop();
    dir.remove();
  }
});

test("the console asks for an admin key, then erases a user whose export is then empty", { skip }, async () => {
  const { chromium: playwright } = await import("playwright-core");
  const dir = tempDir();
  const admin = createKey(dir.path, "admin");
  const read = createKey(dir.path, "read");
  const api = await Server.start(dir.path, ["--auth", "on"]);
  const browser = await playwright.launch({ executablePath: chromium, args: chromiumArgs });
  try {
    const setup = new MarqueeClient({ baseUrl: api.url, apiKey: admin, lingerMs: 5 });
    await setup.upsertItems([{ item_id: "m1", title: "One" }, { item_id: "m2", title: "Two" }]);
    setup.rate("leaving", "m1", 5);
    setup.rate("leaving", "m2", 4);
    // An experiment with lists shown and clicked, for the console's results.
    await setup.createExperiment({
      name: "ab",
      status: "running",
      variants: [{ name: "a", share: 0.5 }, { name: "b", share: 0.5 }],
    });
    for (let viewer = 0; viewer < 20; viewer++) {
      const list = await setup.recommendations(`viewer-${viewer}`, { count: 2 });
      setup.impression(`viewer-${viewer}`, list.recommendation_id, [0, 1]);
      if (viewer % 3 === 0 && list.items.length > 0) {
        setup.click(`viewer-${viewer}`, list.items[0].item_id, { recommendationId: list.recommendation_id, position: 0 });
      }
    }
    await setup.close(10_000);
    await caughtUp(api.url, admin);

    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(String(error)));
    page.on("console", (message) => message.type() === "error" && !/401|403|404/.test(message.text()) && problems.push(message.text()));
    await page.goto(`${api.url}/console`);
    // Without a key: the form, and nothing else.
    await page.waitForFunction(() => /does not open/.test(document.getElementById("key-status")?.textContent ?? ""));
    assert.equal(await page.isVisible("#key-form"), true);
    assert.equal(await page.isVisible("#panels"), false);
    // A read key does not open it either.
    await page.fill("#key", read);
    await page.click("#key-form button");
    await page.waitForFunction(() => /403/.test(document.getElementById("key-status")?.textContent ?? ""));
    assert.equal(await page.isVisible("#panels"), false);
    // The admin key opens it: the processor's state, and the charts drawn from /metrics.
    await page.fill("#key", admin);
    await page.click("#key-form button");
    await page.waitForSelector("#panels", { state: "visible" });
    await page.waitForFunction(() => /Running/.test(document.getElementById("processor-state")?.textContent ?? ""));
    await page.waitForSelector("#chart-ingest canvas");
    await page.waitForFunction(() => /items in the graph/.test(document.getElementById("index-state")?.textContent ?? ""));

    // Erasure asks for a confirmation, then the export finds nothing.
    await page.fill("#user-id", "leaving");
    await page.click("#user-export");
    await page.waitForFunction(() => /"leaving"/.test(document.getElementById("user-output")?.textContent ?? ""));
    await page.click("#user-erase");
    assert.equal(await page.textContent("#user-erase-confirm"), "Erase leaving for good");
    await page.click("#user-erase-confirm");
    await page.waitForFunction(() => /"erased"/.test(document.getElementById("user-output")?.textContent ?? ""));
    await page.click("#user-export");
    await page.waitForFunction(() => /404: user_id: nothing stored/.test(document.getElementById("user-output")?.textContent ?? ""));
    assert.equal((await fetch(`${api.url}/v1/users/leaving/export`, { headers: { authorization: `Bearer ${admin}` } })).status, 404);

    // Experiments: the list, then the results, each rate drawn on its interval.
    await page.waitForSelector("#experiments-table button[data-results=ab]");
    assert.equal(await page.textContent("#experiments-table tbody td"), "running");
    await page.click("#experiments-table button[data-results=ab]");
    await page.waitForSelector("#results-title");
    const groups = await page.$$eval("#experiment-results tbody th", (cells) => cells.map((cell) => cell.textContent));
    assert.deepEqual(groups, ["a (control)", "b"]);
    const drawn = await page.$$eval("#experiment-results svg.interval", (svgs) => svgs.map((svg) => svg.getAttribute("aria-label")));
    assert.ok(drawn.length >= 3, `intervals drawn: ${drawn}`);
    assert.match(drawn[0], /^\d+\.\d% \[/);
    assert.match(await page.textContent("#experiment-results"), /Sample ratio: χ²/);
    // Stopping it from the console.
    await page.click("#experiments-table button[data-toggle=ab]");
    await page.waitForFunction(() => document.querySelector("#experiments-table tbody td")?.textContent === "stopped");

    // The viewer app on a node with auth on takes a viewer token, and is then that viewer's.
    const minted = await (
      await fetch(`${api.url}/v1/admin/tokens`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${admin}` },
        body: JSON.stringify({ user_id: "viewer-3", ttl_secs: 600 }),
      })
    ).json();
    const viewerPage = await browser.newPage();
    viewerPage.on("pageerror", (error) => problems.push(String(error)));
    await viewerPage.goto(`${api.url}/`);
    await viewerPage.waitForSelector("#key-form", { state: "visible" });
    await viewerPage.fill("#key", minted.token);
    await viewerPage.click("#key-form button");
    await viewerPage.waitForSelector("#for-you-title");
    assert.equal(await viewerPage.textContent("#viewer-name"), "viewer-3");
    await viewerPage.close();

    // Pause and resume.
    await page.click("#processor-toggle");
    await page.waitForFunction(() => /^Paused/.test(document.getElementById("processor-state")?.textContent ?? ""));
    await page.click("#processor-toggle");
    await page.waitForFunction(() => /^Running/.test(document.getElementById("processor-state")?.textContent ?? ""));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await api.stop();
    dir.remove();
  }
});
