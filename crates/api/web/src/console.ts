// Marquee's operator console, served by the node at `/console`: behind an admin key (entered
// once, kept for the tab), charts of the node's own metrics (sampled from `/metrics` every two
// seconds, drawn with uPlot), the processor's pause and resume, a user's summary, export and
// erasure, and catalogue items.
//
// Every call goes through the TypeScript SDK; everything from the server is inserted as text.

import uPlot from "uplot";
import "./console.css";

import { MarqueeClient, MarqueeError } from "../../../../sdks/typescript/src/index.ts";
import { byId } from "./dom.ts";
import { type Sample, counterRate, histogramQuantile, parseMetrics, sumOf } from "./metrics.ts";

const KEY_STORAGE = "marquee.adminKey";
const SAMPLE_MS = 2_000;
const POINTS = 90;

let client: MarqueeClient | null = null;

function say(id: string, text: string): void {
  byId(id).textContent = text;
}

function describe(error: unknown): string {
  return error instanceof MarqueeError ? `${error.status}: ${error.message}` : String(error);
}

// ---- charts ----

/** One chart: its series' names and, per sample, a value for each. */
interface Chart {
  plot: uPlot;
  data: number[][];
}

function chart(id: string, title: string, series: string[], unit: string): Chart {
  const host = byId(id);
  const data: number[][] = [[], ...series.map(() => [])];
  const colours = ["#0b5cad", "#a3280f", "#2e6130", "#5b2c6f", "#7a4a0f", "#0f5f5c"];
  const plot = new uPlot(
    {
      title,
      width: Math.max(240, host.clientWidth - 16),
      height: 200,
      series: [
        {},
        ...series.map((label, at) => ({ label, stroke: colours[at % colours.length], width: 2, value: (_: uPlot, v: number | null) => (v === null ? "–" : `${v.toFixed(2)} ${unit}`) })),
      ],
      axes: [{}, { label: unit }],
    },
    data as uPlot.AlignedData,
    host,
  );
  return { plot, data };
}

function push(target: Chart, time: number, values: number[]): void {
  target.data[0].push(time);
  values.forEach((value, at) => target.data[at + 1].push(value));
  for (const column of target.data) if (column.length > POINTS) column.shift();
  target.plot.setData(target.data as uPlot.AlignedData);
}

const STRATEGIES = ["personalised", "cold_start", "popular"];

function startCharts(): void {
  const ingest = chart("chart-ingest", "Events per second", ["accepted", "applied"], "events/s");
  const lag = chart("chart-lag", "Processor lag", ["all partitions"], "events");
  const freshness = chart("chart-freshness", "Freshness (202 to applied)", ["p50", "p99"], "ms");
  const latency = chart("chart-latency", "Request latency (all routes but probes)", ["p50", "p99"], "ms");
  const strategies = chart("chart-strategies", "Lists per second by strategy", STRATEGIES, "lists/s");
  let previous: { at: number; samples: Sample[] } | null = null;
  const tick = async (): Promise<void> => {
    if (!client) return;
    let samples: Sample[];
    try {
      samples = parseMetrics(await client.metrics());
    } catch (error) {
      say("charts-status", `Metrics unavailable: ${describe(error)}`);
      return;
    }
    const at = Date.now() / 1000;
    if (previous) {
      const seconds = at - previous.at;
      const rate = (name: string, labels: Record<string, string> = {}) => counterRate(previous!.samples, samples, name, labels, seconds);
      push(ingest, at, [rate("marquee_ingest_events_accepted_total"), rate("marquee_processor_events_applied_total")]);
      push(freshness, at, [0.5, 0.99].map((q) => 1000 * histogramQuantile(previous!.samples, samples, "marquee_event_freshness_seconds", q)));
      push(latency, at, [0.5, 0.99].map((q) => 1000 * histogramQuantile(previous!.samples, samples, "marquee_http_request_duration_seconds", q, (l) => !["/metrics", "/healthz", "/readyz"].includes(l.route ?? ""))));
      push(strategies, at, STRATEGIES.map((strategy) => rate("marquee_recommendations_total", { strategy })));
    }
    push(lag, at, [sumOf(samples, "marquee_processor_lag_events")]);
    const index = (name: string) => sumOf(samples, name);
    say(
      "index-state",
      `Index: ${index("marquee_index_items")} items in the graph, ${index("marquee_index_side_set_items")} in the side set, ` +
        `graph ${index("marquee_index_graph_age_seconds").toFixed(0)} s old, ${index("marquee_index_rebuilds_total")} rebuilds.`,
    );
    say("charts-status", `Sampled at ${new Date().toLocaleTimeString()}.`);
    previous = { at, samples };
  };
  void tick();
  setInterval(() => void tick(), SAMPLE_MS);
}

// ---- processor ----

async function showProcessor(): Promise<void> {
  if (!client) return;
  const status = await client.processor();
  say(
    "processor-state",
    `${status.paused ? "Paused" : "Running"}${status.failing ? ", failing (retrying)" : ""}; ${status.lag_events} events to apply; ` +
      `committed ${status.committed_offsets.join(", ")} of ${status.log_end_offsets.join(", ")} per partition.`,
  );
  const toggle = byId<HTMLButtonElement>("processor-toggle");
  toggle.textContent = status.paused ? "Resume the processor" : "Pause the processor";
  toggle.dataset.paused = String(status.paused);
}

// ---- users ----

function userId(): string {
  return byId<HTMLInputElement>("user-id").value.trim();
}

function show(id: string, value: unknown): void {
  byId(id).textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function wireUsers(): void {
  byId("user-summary").addEventListener("click", async () => {
    try {
      show("user-output", await client!.user(userId()));
    } catch (error) {
      show("user-output", describe(error));
    }
  });
  byId("user-export").addEventListener("click", async () => {
    try {
      show("user-output", await client!.exportUser(userId()));
    } catch (error) {
      show("user-output", describe(error));
    }
  });
  const erase = byId<HTMLButtonElement>("user-erase");
  const confirmErase = byId<HTMLButtonElement>("user-erase-confirm");
  erase.addEventListener("click", () => {
    if (!userId()) return show("user-output", "user_id: enter one first");
    confirmErase.hidden = false;
    confirmErase.textContent = `Erase ${userId()} for good`;
    confirmErase.focus();
  });
  confirmErase.addEventListener("click", async () => {
    confirmErase.hidden = true;
    try {
      show("user-output", await client!.eraseUser(userId()));
    } catch (error) {
      show("user-output", describe(error));
    }
  });
}

// ---- catalogue ----

function field(id: string): string {
  return byId<HTMLInputElement>(id).value.trim();
}

function list(text: string): string[] | undefined {
  const values = text.split(",").map((value) => value.trim()).filter(Boolean);
  return values.length > 0 ? values : undefined;
}

function wireCatalogue(): void {
  byId("item-view").addEventListener("click", async () => {
    try {
      show("item-output", await client!.item(field("item-id")));
    } catch (error) {
      show("item-output", describe(error));
    }
  });
  byId<HTMLFormElement>("item-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const year = field("item-year");
    try {
      const answer = await client!.upsertItems([
        {
          item_id: field("item-id"),
          title: field("item-title") || undefined,
          genres: list(field("item-genres")),
          tags: list(field("item-tags")),
          year: year ? Number(year) : undefined,
        },
      ]);
      show("item-output", answer);
    } catch (error) {
      show("item-output", describe(error));
    }
  });
}

// ---- the key ----

async function unlock(key: string): Promise<void> {
  const candidate = new MarqueeClient({ baseUrl: location.origin, apiKey: key || undefined });
  try {
    await candidate.processor();
  } catch (error) {
    say("key-status", `This key does not open the console: ${describe(error)}`);
    byId("panels").hidden = true;
    return;
  }
  client = candidate;
  sessionStorage.setItem(KEY_STORAGE, key);
  say("key-status", "");
  byId("key-form").hidden = true;
  byId("panels").hidden = false;
  await showProcessor();
  startCharts();
}

function start(): void {
  byId<HTMLFormElement>("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void unlock(byId<HTMLInputElement>("key").value.trim());
  });
  byId("processor-toggle").addEventListener("click", async () => {
    const paused = byId("processor-toggle").dataset.paused === "true";
    try {
      await client!.setProcessorPaused(!paused);
      await showProcessor();
    } catch (error) {
      say("processor-state", describe(error));
    }
  });
  wireUsers();
  wireCatalogue();
  const kept = sessionStorage.getItem(KEY_STORAGE);
  if (kept !== null) void unlock(kept);
  // A node with auth off (loopback) opens without a key.
  else void unlock("");
}

start();
