// Marquee's viewer app, served by the node at `/`: choose a viewer, see their rows ("For you",
// "Because you watched …", "Trending", "Trending in …"), open a movie, act on it (rate, like,
// dislike, add to the watchlist, watch) and watch "For you" change, with the time from the
// event's acknowledgement to the changed list; search the catalogue, with titles suggested as
// the viewer types (a `<datalist>`: the browser's own, accessible list) and results in the
// viewer's taste order.
//
// The "For you" rows are recommended lists: each is impressed once when shown, and a click on
// one of its cards names the list and the position (experiments count clicks per list shown).
//
// Every call goes through the TypeScript SDK. Ids, titles and tags come from clients: they
// are only ever inserted as text (`textContent`), never as HTML. The node's
// Content-Security-Policy forbids inline scripts and styles; the page needs neither.

import {
  MarqueeClient,
  MarqueeError,
  type Recommendation,
  type Recommendations,
  type SearchItem,
} from "../../../../sdks/typescript/src/index.ts";
import { byId, el } from "./dom.ts";

/** The sessionStorage key of an API key, when the node has auth on. */
const KEY_STORAGE = "marquee.apiKey";
const VIEWER_STORAGE = "marquee.viewer";
const ROW_LENGTH = 12;

let client = newClient(sessionStorage.getItem(KEY_STORAGE) ?? undefined);
let viewer = localStorage.getItem(VIEWER_STORAGE) ?? "u1";

function newClient(apiKey?: string): MarqueeClient {
  return new MarqueeClient({ baseUrl: location.origin, apiKey, lingerMs: 0 });
}

/** The user a viewer token (`mqv1.{user}.{expires}.{tag}`) is for: the page is then theirs. */
function tokenUser(key: string | undefined): string | undefined {
  const user = key?.startsWith("mqv1.") ? key.split(".")[1] : undefined;
  if (!user) return undefined;
  try {
    const bytes = Uint8Array.from(atob(user.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  } catch {
    return undefined;
  }
}

/** Says something to the viewer (and to screen readers, through the live region). */
function status(text: string): void {
  byId("status").textContent = text;
}

// ---- cards and rows ----

/** One of eight card colours, from the first genre: the same genre, the same colour. */
function hue(genres: string[] | undefined): string {
  const first = genres?.[0] ?? "";
  let hash = 0;
  for (const char of first) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return `hue-${hash % 8}`;
}

function card(movie: Recommendation | SearchItem, position: number, list?: string): HTMLLIElement {
  const title = movie.title ?? movie.item_id;
  const genres = movie.genres?.join(", ") ?? "";
  const open = el(
    "a",
    {
      class: `card ${hue(movie.genres)}`,
      href: `#/movie/${encodeURIComponent(movie.item_id)}`,
      "data-item": movie.item_id,
      // A card of a recommended list names it: its click is attributed to the list.
      "data-list": list,
      "data-position": list === undefined ? undefined : String(position),
    },
    el("span", { class: "title" }, title),
    el("span", { class: "year" }, movie.year !== undefined ? String(movie.year) : ""),
    el("span", { class: "genres" }, genres),
  );
  return el("li", {}, open);
}

/** A row of cards; `list`, a recommendation id, marks a recommended list (impressions, clicks). */
function row(title: string, movies: Array<Recommendation | SearchItem>, id?: string, list?: string): HTMLElement {
  const heading = el("h2", { id: id ? `${id}-title` : undefined }, title);
  const cards =
    movies.length > 0
      ? el(
          "ul",
          { class: "row", "aria-labelledby": id ? `${id}-title` : undefined },
          ...movies.map((movie, position) => card(movie, position, list)),
        )
      : el("p", { class: "empty" }, "Nothing yet.");
  return el("section", { class: "shelf", id, "data-list": list }, heading, cards);
}

/** The "For you" row of a recommendation answer. */
function forYouRow(mine: Recommendations): HTMLElement {
  return row("For you", mine.items, "for-you", mine.recommendation_id);
}

/** Sends the impression of every recommended row on the page (once each: an id is per list). */
function impressions(): void {
  for (const shelf of document.querySelectorAll<HTMLElement>("#view section[data-list]")) {
    const list = shelf.dataset.list;
    if (!list || shelf.dataset.impressed) continue;
    shelf.dataset.impressed = "1";
    const positions = [...shelf.querySelectorAll<HTMLElement>(".card")].map((_, at) => at);
    if (positions.length > 0) client.impression(viewer, list, positions);
  }
}

/** A click on a card of a recommended list: the click event names the list and position. */
function attributeClick(event: MouseEvent): void {
  const target = event.target instanceof Element ? event.target.closest<HTMLElement>("a.card[data-list]") : null;
  const { item, list, position } = target?.dataset ?? {};
  if (item && list && position !== undefined) {
    client.click(viewer, item, { recommendationId: list, position: Number(position) });
  }
}

// ---- pages ----

async function forYou(): Promise<Recommendations> {
  return client.recommendations(viewer, { count: ROW_LENGTH });
}

/** Counts renders: a page whose data arrives after a later navigation is not shown. */
let generation = 0;

/** Shows `sections` unless another render started since the one of `ticket`. */
function show(ticket: number, ...sections: HTMLElement[]): void {
  if (ticket !== generation) return;
  byId("view").replaceChildren(...sections);
  impressions();
}

async function home(): Promise<void> {
  const ticket = ++generation;
  const [mine, trending, summary] = await Promise.all([
    forYou(),
    client.trending({ count: ROW_LENGTH }),
    client.user(viewer).catch(() => null),
  ]);
  const shelves: HTMLElement[] = [forYouRow(mine)];
  const last = summary?.recent.find((entry) => entry.weight > 0);
  if (last) {
    const [details, similar] = await Promise.all([
      client.item(last.item_id).catch(() => null),
      client.similar(last.item_id, { count: ROW_LENGTH }),
    ]);
    shelves.push(row(`Because you watched ${details?.title ?? last.item_id}`, similar, "because"));
  }
  shelves.push(row("Trending", trending, "trending"));
  const genre = mine.items[0]?.genres?.[0];
  if (genre) shelves.push(row(`Trending in ${genre}`, await client.trending({ count: ROW_LENGTH, genre }), "trending-genre"));
  show(ticket, ...shelves);
}

async function movie(itemId: string): Promise<void> {
  const ticket = ++generation;
  const [details, similar, mine] = await Promise.all([
    client.item(itemId),
    client.similar(itemId, { count: ROW_LENGTH }),
    forYou(),
  ]);
  const title = details.title ?? details.item_id;
  const facts = [details.year !== undefined ? String(details.year) : "", (details.genres ?? []).join(", ")]
    .filter(Boolean)
    .join(" · ");
  const stars = el("select", { id: "stars", "aria-label": "Your rating, in stars" });
  for (let half = 10; half >= 1; half--) {
    const value = (half / 2).toFixed(1);
    stars.append(el("option", { value }, `${value} ★`));
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
    progress,
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
      actions,
    ),
    forYouRow(mine),
    row("Similar movies", similar, "similar"),
  );
}

function button(label: string, name: string, onClick: () => void): HTMLButtonElement {
  const node = el("button", { type: "button", "data-action": name }, label);
  node.addEventListener("click", onClick);
  return node;
}

// ---- actions, and the list that follows them ----

type Kind = "rating" | "like" | "dislike" | "add_to_watchlist" | "watch";

/** Sends one event, waits for its acknowledgement, then for "For you" to change. */
async function act(kind: Kind, itemId: string, value?: number): Promise<void> {
  const before = (await forYou()).items.map((movie) => movie.item_id).join(",");
  client.track({ kind, userId: viewer, itemId, value });
  try {
    await client.flush(5_000);
  } catch (error) {
    status(`The event was not delivered: ${String(error)}`);
    return;
  }
  const acknowledged = performance.now();
  const deadline = acknowledged + 3_000;
  let after = await forYou();
  while (after.items.map((movie) => movie.item_id).join(",") === before && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    after = await forYou();
  }
  const took = Math.round(performance.now() - acknowledged);
  const changed = after.items.map((movie) => movie.item_id).join(",") !== before;
  const section = document.getElementById("for-you");
  if (section) {
    section.replaceWith(forYouRow(after));
    impressions();
  }
  status(
    changed
      ? `"For you" changed ${took} ms after the ${kind.replace(/_/g, " ")} was acknowledged.`
      : `The ${kind.replace(/_/g, " ")} was acknowledged; "For you" kept its order.`,
  );
}

/**
 * Plays the movie: the bar fills over four seconds and the fraction watched goes out at the end,
 * or when the viewer leaves the page before it (what they watched by then).
 */
function watch(itemId: string, progress: HTMLProgressElement): void {
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
      void act("watch", itemId, 1.0);
    }
  }, 200);
}

// ---- search ----

async function results(text: string): Promise<void> {
  const ticket = ++generation;
  const found = await client.search(text, { count: 24, userId: viewer });
  const heading = found.items.length > 0 ? `Results for “${text}”` : `Nothing matches “${text}”`;
  const shelf = row(heading, found.items, "results");
  const notes: string[] = [`${found.total} ${found.total === 1 ? "match" : "matches"}`];
  if (!found.all_words) notes.push("no movie has every word: these have some");
  if (found.personalised) notes.push(`equally good matches in ${viewer}'s taste order`);
  const facets = found.facets.genres
    .slice(0, 8)
    .map((facet) => `${facet.value} ${facet.count}`)
    .join(" · ");
  const decades = found.facets.decades.map((facet) => `${facet.value}s ${facet.count}`).join(" · ");
  show(
    ticket,
    shelf,
    el("p", { class: "notes", id: "results-notes" }, notes.join("; ") + "."),
    el("p", { class: "notes" }, facets ? `Genres: ${facets}` : ""),
    el("p", { class: "notes" }, decades ? `Decades: ${decades}` : ""),
  );
}

/** Suggestions for what is typed, at most one request in flight; a late answer is dropped. */
let suggesting = 0;
async function suggest(text: string): Promise<void> {
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

// ---- viewer, key, routing ----

function setViewer(id: string): void {
  viewer = id.trim() || viewer;
  localStorage.setItem(VIEWER_STORAGE, viewer);
  byId<HTMLInputElement>("viewer").value = viewer;
  byId("viewer-name").textContent = viewer;
  void route();
}

async function route(): Promise<void> {
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

/**
 * Arrow keys move between cards: left and right along a row, up and down to the nearest card of
 * the row above or below (Tab still walks through every card and action).
 */
function arrowKeys(event: KeyboardEvent): void {
  const current = event.target instanceof HTMLElement ? event.target.closest<HTMLElement>(".card") : null;
  if (!current || !["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(event.key)) return;
  const rows = [...document.querySelectorAll<HTMLElement>("#view .row")];
  const row = current.closest<HTMLElement>(".row");
  if (!row) return;
  const cards = (list: HTMLElement) => [...list.querySelectorAll<HTMLElement>(".card")];
  const at = cards(row).indexOf(current);
  let next: HTMLElement | undefined;
  if (event.key === "ArrowLeft") next = cards(row)[at - 1];
  else if (event.key === "ArrowRight") next = cards(row)[at + 1];
  else {
    const other = rows[rows.indexOf(row) + (event.key === "ArrowUp" ? -1 : 1)];
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

function start(): void {
  byId("view").addEventListener("keydown", arrowKeys);
  byId("view").addEventListener("click", attributeClick);
  byId<HTMLFormElement>("viewer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setViewer(byId<HTMLInputElement>("viewer").value);
  });
  byId("new-viewer").addEventListener("click", () => {
    setViewer(`viewer-${Math.random().toString(36).slice(2, 8)}`);
    location.hash = "";
  });
  byId<HTMLFormElement>("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = byId<HTMLInputElement>("search").value.trim();
    if (text) location.hash = `#/search/${encodeURIComponent(text)}`;
  });
  let typing: ReturnType<typeof setTimeout> | undefined;
  byId<HTMLInputElement>("search").addEventListener("input", (event) => {
    const text = (event.target as HTMLInputElement).value;
    clearTimeout(typing);
    typing = setTimeout(() => void suggest(text), 120);
  });
  byId<HTMLFormElement>("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byId<HTMLInputElement>("key").value.trim();
    sessionStorage.setItem(KEY_STORAGE, key);
    client = newClient(key || undefined);
    byId("key-form").hidden = true;
    // A viewer token is one viewer's: the page shows that viewer.
    const user = tokenUser(key);
    if (user) setViewer(user);
    else void route();
  });
  window.addEventListener("hashchange", () => void route());
  setViewer(tokenUser(sessionStorage.getItem(KEY_STORAGE) ?? undefined) ?? viewer);
}

start();
