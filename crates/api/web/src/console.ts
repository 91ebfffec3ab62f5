// Marquee's operator console, served by the node at `/console`: behind an admin key (entered
// once, kept for the tab), charts of the node's own metrics (sampled from `/metrics` every two
// seconds, drawn with uPlot), the processor's pause and resume, a user's summary, export and
// erasure, catalogue items, and experiments with their results (each rate drawn with its 95%
// interval).
//
// Every call goes through the TypeScript SDK; everything from the server is inserted as text.

import uPlot from "uplot";
import "./console.css";

import {
  type Experiment,
  type ExperimentResults,
  MarqueeClient,
  MarqueeError,
  type ResultMetric,
} from "../../../../sdks/typescript/src/index.ts";
import { byId, el } from "./dom.ts";
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

// ---- experiments ----

const SVG = "http://www.w3.org/2000/svg";

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** A rate as text and as a dot on its 95% interval, on a 0 to `scale` axis; `percent` for the
 * shares (click- and watch-through), a plain number for positives per list (which can pass 1). */
function interval(metric: ResultMetric, scale: number, percent: boolean): HTMLElement {
  const cell = el("td", {});
  const estimate = metric.estimate;
  if (!estimate) {
    cell.append("– (fewer than 2 users)");
    return cell;
  }
  const shown = (value: number) => (percent ? `${(100 * value).toFixed(1)}%` : value.toFixed(2));
  let text = `${shown(estimate.value)} [${shown(estimate.low)}, ${shown(estimate.high)}]`;
  if (metric.vs_control) {
    const { difference, p_value: p } = metric.vs_control;
    text += `; ${difference.value >= 0 ? "+" : ""}${shown(difference.value)} vs control, p = ${p < 0.001 ? p.toExponential(1) : p.toFixed(3)}`;
  }
  const width = 160;
  const x = (value: number) => Math.max(0, Math.min(width, (value / scale) * width));
  const drawing = svg("svg", { class: "interval", width, height: 14, role: "img", "aria-label": text });
  drawing.append(
    svg("line", { class: "axis", x1: 0, x2: width, y1: 12, y2: 12 }),
    svg("line", { x1: x(estimate.low), x2: x(estimate.high), y1: 7, y2: 7 }),
    svg("circle", { cx: x(estimate.value), cy: 7, r: 3.5 }),
  );
  cell.append(drawing, el("br"), text);
  return cell;
}

function resultsTable(results: ExperimentResults): HTMLElement {
  const metrics = ["click_through", "watch_through", "positives_per_impression"] as const;
  // One axis per metric for every group, so the groups' intervals compare at a glance.
  const scale = (metric: (typeof metrics)[number]) =>
    Math.max(0.01, ...results.groups.map((group) => group[metric].estimate?.high ?? 0));
  const scales = metrics.map(scale);
  const head = el(
    "tr",
    {},
    ...["Group", "Users", "Lists shown", "Click-through", "Watch-through", "Positives per list"].map((label) =>
      el("th", { scope: "col" }, label),
    ),
  );
  const rows = results.groups.map((group) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, group.name === results.control ? `${group.name} (control)` : group.name),
      el("td", {}, String(group.users)),
      el("td", {}, String(group.impressions)),
      ...metrics.map((metric, at) => interval(group[metric], scales[at], metric !== "positives_per_impression")),
    ),
  );
  const check = results.sample_ratio;
  const ratio = check
    ? el(
        "p",
        { class: check.mismatch ? "mismatch" : "status" },
        `Sample ratio: χ² ${check.chi_square.toFixed(2)} (${check.degrees_of_freedom} df), p = ${check.p_value.toFixed(3)}` +
          (check.mismatch ? ": the split does not match the shares; distrust the comparison." : "."),
      )
    : el("p", { class: "status" }, "Sample ratio: not enough groups with users yet.");
  return el(
    "div",
    {},
    el("h3", { id: "results-title" }, `Results of ${results.experiment}`),
    el("table", { "aria-labelledby": "results-title" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    ratio,
  );
}

async function showResults(name: string): Promise<void> {
  try {
    byId("experiment-results").replaceChildren(resultsTable(await client!.experimentResults(name)));
  } catch (error) {
    say("experiments-status", describe(error));
  }
}

async function setStatus(experiment: Experiment, status: "running" | "stopped"): Promise<void> {
  try {
    await client!.updateExperiment(experiment.name, { ...experiment, status });
    await showExperiments();
  } catch (error) {
    say("experiments-status", describe(error));
  }
}

async function showExperiments(): Promise<void> {
  if (!client) return;
  let experiments: Experiment[];
  try {
    experiments = await client.experiments();
  } catch (error) {
    say("experiments-status", describe(error));
    return;
  }
  say("experiments-status", experiments.length === 0 ? "No experiment yet (POST /v1/admin/experiments)." : "");
  const rows = experiments.map((experiment) => {
    const groups = experiment.variants.map((variant) => `${variant.name} ${(100 * variant.share).toFixed(0)}%`);
    if (experiment.holdout > 0) groups.push(`holdout ${(100 * experiment.holdout).toFixed(0)}%`);
    const results = el("button", { type: "button", "data-results": experiment.name }, "Results");
    results.addEventListener("click", () => void showResults(experiment.name));
    const next = experiment.status === "running" ? "stopped" : "running";
    const toggle = el("button", { type: "button", "data-toggle": experiment.name }, next === "running" ? "Run" : "Stop");
    toggle.addEventListener("click", () => void setStatus(experiment, next));
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, experiment.name),
      el("td", {}, experiment.status),
      el("td", {}, groups.join(", ")),
      el("td", {}, results, " ", toggle),
    );
  });
  byId("experiments-table").querySelector("tbody")!.replaceChildren(...rows);
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
  await showExperiments();
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
  byId("experiments-refresh").addEventListener("click", () => void showExperiments());
  const kept = sessionStorage.getItem(KEY_STORAGE);
  if (kept !== null) void unlock(kept);
  // A node with auth off (loopback) opens without a key.
  else void unlock("");
}

start();
