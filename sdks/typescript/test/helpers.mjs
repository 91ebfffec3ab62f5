// Helpers of the SDK tests: a real `marquee serve` child process on a free loopback port.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../..");

/** The `marquee` binary: `MARQUEE_BIN`, else the debug build of the repository. */
export const marqueeBin =
  process.env.MARQUEE_BIN ??
  join(process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, "target"), "debug", "marquee");

/**
 * Chromium's flags for the browser tests: headless as root, and none of its background
 * connections (this machine's network refuses them, many at a time).
 */
export const chromiumArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** How long a test waits for something that should take well under a second. */
export const DEADLINE_MS = 60_000;

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "marquee-sdk-"));
  return { path: dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Creates a key with `marquee keys create` and returns it. */
export function createKey(dataDir, scope, rate) {
  const args = ["keys", "create", "--scope", scope, "--data-dir", dataDir];
  if (rate !== undefined) args.push("--rate", String(rate));
  return execFileSync(marqueeBin, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
}

export function writeConfig(dir, text) {
  const path = join(dir, "marquee.toml");
  writeFileSync(path, text);
  return path;
}

/** A `marquee serve` child process. */
export class Server {
  constructor(dataDir, port, extra = []) {
    this.dataDir = dataDir;
    this.port = port;
    this.extra = extra;
    this.url = `http://127.0.0.1:${port}`;
    this.child = spawn(
      marqueeBin,
      ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, ...extra],
      // Auth off unless `extra` turns it on (a flag wins over its variable).
      {
        env: { ...process.env, MARQUEE_LOG: "warn", MARQUEE_AUTH: "off" },
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    this.exited = new Promise((resolveExit) => this.child.once("exit", resolveExit));
  }

  static async start(dataDir, extra = [], port) {
    const server = new Server(dataDir, port ?? (await freePort()), extra);
    await server.ready();
    return server;
  }

  async ready() {
    const started = Date.now();
    for (;;) {
      try {
        const response = await fetch(`${this.url}/readyz`);
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      if (this.child.exitCode !== null) throw new Error("marquee serve exited during start-up");
      if (Date.now() - started > DEADLINE_MS) throw new Error("marquee serve not ready in time");
      await sleep(25);
    }
  }

  /** SIGKILL: no shutdown code runs. */
  async kill() {
    this.child.kill("SIGKILL");
    await this.exited;
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      await this.exited;
    }
  }
}

export const sleep = (ms) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

/** Polls `check` until it returns a value other than undefined/false, or throws at the deadline. */
export async function eventually(what, check) {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false && value !== null) return value;
    if (Date.now() - started > DEADLINE_MS) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function getJson(url, key) {
  const response = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return response.json();
}

/** Waits until the processor has applied everything appended so far. */
export async function caughtUp(url, adminKey) {
  await eventually("the processor to catch up", async () => {
    const status = await getJson(`${url}/v1/admin/processor`, adminKey);
    return status.lag_events === 0;
  });
}

/** The ids of the events applied for `user`, and its event count, from the export. */
export async function applied(url, user, adminKey) {
  const exported = await getJson(`${url}/v1/users/${encodeURIComponent(user)}/export`, adminKey);
  const ids = new Set((exported.applied_events ?? []).map((event) => event.event_id));
  return { ids, count: exported.state?.event_count ?? 0 };
}

/** One sample of the server's metrics, e.g. `name{label="x"}`; 0 when absent. */
export async function metric(url, series) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

export const eventRequests = (url) =>
  metric(url, 'marquee_http_request_duration_seconds_count{route="/v1/events",status="2xx"}');
