// Reading the node's `/metrics` (Prometheus' text format) in the console: samples, counter
// rates between two scrapes, and histogram quantiles as Prometheus' `histogram_quantile`
// computes them (linear within the bucket) over the buckets' increase between two scrapes.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const match = LINE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key] = value.replace(/\\(.)/g, "$1");
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function matches(sample: Sample, name: string, labels: Record<string, string>): boolean {
  return sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value);
}

/** The sum of every series of `name` carrying `labels`. */
export function sumOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((sample) => matches(sample, name, labels)).reduce((sum, sample) => sum + sample.value, 0);
}

/** Per second between two scrapes `seconds` apart; a counter that went back (a restart) counts from 0. */
export function counterRate(
  before: Sample[],
  after: Sample[],
  name: string,
  labels: Record<string, string>,
  seconds: number,
): number {
  const now = sumOf(after, name, labels);
  const then = sumOf(before, name, labels);
  const increase = now >= then ? now - then : now;
  return seconds > 0 ? increase / seconds : 0;
}

/**
 * The `q` quantile of histogram `name` over what it observed between two scrapes, across the
 * series `keep` takes; 0 when nothing was observed.
 */
export function histogramQuantile(
  before: Sample[],
  after: Sample[],
  name: string,
  q: number,
  keep: (labels: Record<string, string>) => boolean = () => true,
): number {
  const buckets = new Map<number, number>();
  const add = (samples: Sample[], sign: number) => {
    for (const sample of samples) {
      if (sample.name !== `${name}_bucket` || !keep(sample.labels)) continue;
      const bound = sample.labels.le === "+Inf" ? Infinity : Number(sample.labels.le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + sign * sample.value);
    }
  };
  add(after, 1);
  add(before, -1);
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? 0;
  if (total <= 0) return 0;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const count = buckets.get(bound) ?? 0;
    if (count >= rank) {
      if (bound === Infinity) return lower;
      return lower + ((bound - lower) * (rank - below)) / Math.max(count - below, 1e-9);
    }
    lower = bound;
    below = count;
  }
  return lower;
}
