// The console's reading of `/metrics`: Prometheus' text format parsed, counter rates across a
// restart, and histogram quantiles as Prometheus' histogram_quantile computes them.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

import { build } from "esbuild";

async function load() {
  const dir = mkdtempSync(join(tmpdir(), "marquee-web-"));
  const outfile = join(dir, "metrics.mjs");
  await build({ entryPoints: [new URL("../src/metrics.ts", import.meta.url).pathname], format: "esm", outfile, logLevel: "silent" });
  const module = await import(pathToFileURL(outfile).href);
  rmSync(dir, { recursive: true, force: true });
  return module;
}

const scrape = (bucket005, bucket01, bucketInf, accepted) => `# HELP h a histogram
# TYPE h histogram
h_bucket{route="/v1/x",le="0.05"} ${bucket005}
h_bucket{route="/v1/x",le="0.1"} ${bucket01}
h_bucket{route="/v1/x",le="+Inf"} ${bucketInf}
h_bucket{route="/healthz",le="0.05"} 1000
h_bucket{route="/healthz",le="0.1"} 1000
h_bucket{route="/healthz",le="+Inf"} 1000
accepted_total{kind="a \\"quoted\\" one"} ${accepted}
`;

test("samples, rates and quantiles from two scrapes", async () => {
  const { parseMetrics, counterRate, histogramQuantile, sumOf } = await load();
  const before = parseMetrics(scrape(10, 10, 10, 100));
  const after = parseMetrics(scrape(60, 110, 110, 300));
  assert.equal(sumOf(after, "accepted_total", { kind: 'a "quoted" one' }), 300);
  assert.equal(counterRate(before, after, "accepted_total", {}, 2), 100);
  // A counter that went back (a restart) counts from zero.
  assert.equal(counterRate(after, before, "accepted_total", {}, 2), 50);
  const route = (labels) => labels.route !== "/healthz";
  // 100 observations: 50 up to 0.05 s, 50 in (0.05, 0.1]; the median is the first bucket's top.
  assert.equal(histogramQuantile(before, after, "h", 0.5, route), 0.05);
  // The 99th is 49/50 of the way through the second bucket.
  assert.ok(Math.abs(histogramQuantile(before, after, "h", 0.99, route) - (0.05 + 0.05 * (49 / 50))) < 1e-12);
  // Nothing observed between the scrapes: 0.
  assert.equal(histogramQuantile(after, after, "h", 0.99, route), 0);
});
