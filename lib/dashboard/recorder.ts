/**
 * The dashboard's own short memory of traffic: per route, the last 15 minutes in fixed 10-second buckets
 * (requests, 5xx answers, latency histograms by side, fallbacks by trigger, the cutover split), and the last
 * error of each upstream target. A ring of buckets per route, so memory is fixed whatever the traffic: a
 * bucket is reused when its 10 seconds come round again, and at most `maxRoutes` routes are kept.
 *
 * It is fed by the gateway's `dashboard` option or by the standalone dashboardRecorder() middleware
 * (lib/dashboard/observe.ts); the dashboard page reads it. Nothing here is Prometheus: the page must not
 * depend on a scrape, and metrics() keeps counting on its own.
 */

/** Who answered a request: the new service (an upstream), the monolith (the app), or the gateway itself before either (a 401, a cache hit). */
export type Side = 'service' | 'monolith' | 'edge';

/** One finished request, as the recorder keeps it. */
export interface RequestSample {
  route: string;
  /** Time from the gateway's first look at the request to the response's end (ms). */
  durationMs: number;
  /** The status answered (0 when the response never started). */
  status: number;
  side: Side;
  /** What made fallback() hand the request to the app, when it did. */
  fallback?: string;
  /** The side a cutover chose, when the route has one. */
  cutover?: 'service' | 'monolith';
}

export interface RecorderOptions {
  /** Routes kept; past it the one seen least recently is dropped (routes removed by a reload go first). Defaults to 200. */
  maxRoutes?: number;
  /** Upstream targets whose last error is kept. Defaults to 256. */
  maxTargets?: number;
  /** The clock (ms since the epoch), for tests. Defaults to Date.now. */
  now?: () => number;
}

/** Latency percentiles of one side over a window (ms), with the requests they are computed from. */
export interface LatencyStats {
  count: number;
  errors: number;
  p50: number;
  p99: number;
}

/** A route's numbers over a window. */
export interface RouteWindowStats {
  requests: number;
  /** Answers with a 5xx status. */
  errors: number;
  /** Seconds the window actually covers (shorter while the recorder is young). */
  seconds: number;
  sides: Record<Side, LatencyStats | undefined>;
  fallbacks: Record<string, number>;
  cutover: { service: number; monolith: number };
}

/** The last failure seen on an upstream target. */
export interface TargetError {
  /** `ECONNREFUSED`, `ERR_UPSTREAM_TIMEOUT`, `HTTP 503`…: a code, never a message. */
  code: string;
  /** ms since the epoch. */
  at: number;
  route: string | undefined;
}

export const BUCKET_MS = 10_000;
/** 90 buckets of 10 s: 15 minutes. */
export const BUCKETS = 90;

// Latency histogram: geometric buckets from 0.5 ms, 25 % apart, up to about 2 minutes (the last one is open).
const HISTOGRAM_MIN_MS = 0.5;
const HISTOGRAM_RATIO = 1.25;
const HISTOGRAM_SLOTS = 56;
const LOG_RATIO = Math.log(HISTOGRAM_RATIO);
const SIDES: readonly Side[] = ['service', 'monolith', 'edge'];

interface SideBucket {
  count: number;
  errors: number;
  histogram: Uint32Array;
}

interface Bucket {
  /** Which 10 seconds the bucket holds: floor(time / BUCKET_MS). */
  epoch: number;
  requests: number;
  errors: number;
  sides: Partial<Record<Side, SideBucket>>;
  /** Bounded by its keys: 'unavailable', 'timeout', or statuses 400–599. */
  fallbacks: Map<string, number> | undefined;
  cutoverService: number;
  cutoverMonolith: number;
}

interface RouteSeries {
  buckets: Array<Bucket | undefined>;
  lastSeen: number;
}

/** The histogram slot of a duration. */
export function histogramSlot(ms: number): number {
  if (!(ms > HISTOGRAM_MIN_MS)) return 0;
  return Math.min(HISTOGRAM_SLOTS - 1, Math.ceil(Math.log(ms / HISTOGRAM_MIN_MS) / LOG_RATIO));
}

/** The upper bound of a slot (ms); the lower bound is the previous slot's. */
function slotBound(slot: number): number {
  return HISTOGRAM_MIN_MS * HISTOGRAM_RATIO ** slot;
}

/** The `q` quantile (0–1) of a histogram, interpolated within its slot: within 25 % of the true value. */
export function quantile(histogram: Uint32Array, count: number, q: number): number {
  if (count === 0) return 0;
  const rank = q * count;
  let seen = 0;
  for (let slot = 0; slot < histogram.length; slot++) {
    const inSlot = histogram[slot];
    if (inSlot === 0) continue;
    if (seen + inSlot >= rank) {
      const lower = slot === 0 ? 0 : slotBound(slot - 1);
      const upper = slotBound(slot);
      return lower + (upper - lower) * Math.max(0, Math.min(1, (rank - seen) / inSlot));
    }
    seen += inSlot;
  }
  return slotBound(histogram.length - 1);
}

/** Keeps the last 15 minutes of every route's traffic, in fixed memory. */
export class DashboardRecorder {
  private readonly routes = new Map<string, RouteSeries>();
  private readonly targets = new Map<string, TargetError>();
  private readonly maxRoutes: number;
  private readonly maxTargets: number;
  private readonly now: () => number;
  /** When recording began: windows never claim more time than this covers. */
  readonly startedAt: number;
  private feeds = 0;

  constructor(options: RecorderOptions = {}) {
    this.maxRoutes = options.maxRoutes ?? 200;
    this.maxTargets = options.maxTargets ?? 256;
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
  }

  /** True once a gateway (or a standalone dashboardRecorder()) feeds this recorder. */
  get fed(): boolean {
    return this.feeds > 0;
  }

  /** Called by what feeds the recorder; returns what undoes it (a closed gateway stops feeding). */
  attach(): () => void {
    this.feeds++;
    let attached = true;
    return () => {
      if (attached) this.feeds--;
      attached = false;
    };
  }

  /** Records one finished request. */
  record(sample: RequestSample): void {
    const now = this.now();
    const bucket = this.bucketFor(this.seriesOf(sample.route, now), now);
    const error = sample.status >= 500;
    bucket.requests++;
    if (error) bucket.errors++;
    let side = bucket.sides[sample.side];
    if (!side) {
      side = { count: 0, errors: 0, histogram: new Uint32Array(HISTOGRAM_SLOTS) };
      bucket.sides[sample.side] = side;
    }
    side.count++;
    if (error) side.errors++;
    side.histogram[histogramSlot(sample.durationMs)]++;
    if (sample.fallback !== undefined) {
      bucket.fallbacks ??= new Map();
      bucket.fallbacks.set(sample.fallback, (bucket.fallbacks.get(sample.fallback) ?? 0) + 1);
    }
    if (sample.cutover === 'service') bucket.cutoverService++;
    else if (sample.cutover === 'monolith') bucket.cutoverMonolith++;
  }

  /** Notes a failed upstream attempt (a connection error, a timeout, a 5xx answer). */
  upstreamFailed(target: string, code: string, route: string | undefined): void {
    // Re-inserted, so the map's order is by last failure and the oldest is dropped first.
    this.targets.delete(target);
    if (this.targets.size >= this.maxTargets) this.targets.delete(this.targets.keys().next().value as string);
    this.targets.set(target, { code, at: this.now(), route });
  }

  /** The last failure of a target, if one was seen. */
  lastError(target: string): TargetError | undefined {
    return this.targets.get(target);
  }

  /** A route's numbers over the last `seconds` (at most 15 minutes), or undefined when it had no traffic in them. */
  window(route: string, seconds: number): RouteWindowStats | undefined {
    const series = this.routes.get(route);
    const now = this.now();
    const current = Math.floor(now / BUCKET_MS);
    const span = Math.min(BUCKETS, Math.ceil(seconds / (BUCKET_MS / 1000)));
    // The window is the current (partial) bucket and the span - 1 before it, but never before recording began.
    const covered = Math.max(1, Math.min(now - this.startedAt, (span - 1) * BUCKET_MS + (now - current * BUCKET_MS)));
    const stats: RouteWindowStats = { requests: 0, errors: 0, seconds: covered / 1000, sides: { service: undefined, monolith: undefined, edge: undefined }, fallbacks: {}, cutover: { service: 0, monolith: 0 } };
    if (!series) return undefined;
    const merged: Partial<Record<Side, SideBucket>> = {};
    for (let epoch = current - span + 1; epoch <= current; epoch++) {
      const bucket = series.buckets[slotOf(epoch)];
      if (!bucket || bucket.epoch !== epoch) continue;
      stats.requests += bucket.requests;
      stats.errors += bucket.errors;
      stats.cutover.service += bucket.cutoverService;
      stats.cutover.monolith += bucket.cutoverMonolith;
      for (const [trigger, count] of bucket.fallbacks ?? []) stats.fallbacks[trigger] = (stats.fallbacks[trigger] ?? 0) + count;
      for (const name of SIDES) {
        const side = bucket.sides[name];
        if (!side) continue;
        const into = (merged[name] ??= { count: 0, errors: 0, histogram: new Uint32Array(HISTOGRAM_SLOTS) });
        into.count += side.count;
        into.errors += side.errors;
        for (let i = 0; i < HISTOGRAM_SLOTS; i++) into.histogram[i] += side.histogram[i];
      }
    }
    if (stats.requests === 0) return undefined;
    for (const name of SIDES) {
      const side = merged[name];
      if (side) stats.sides[name] = { count: side.count, errors: side.errors, p50: quantile(side.histogram, side.count, 0.5), p99: quantile(side.histogram, side.count, 0.99) };
    }
    return stats;
  }

  /**
   * Requests and 5xx answers per 10-second bucket over the last 15 minutes, oldest first (the last bucket is the
   * current, partial one): the sparkline.
   */
  series(route: string): { requests: number[]; errors: number[] } {
    const requests = new Array<number>(BUCKETS).fill(0);
    const errors = new Array<number>(BUCKETS).fill(0);
    const series = this.routes.get(route);
    if (!series) return { requests, errors };
    const current = Math.floor(this.now() / BUCKET_MS);
    for (let i = 0; i < BUCKETS; i++) {
      const epoch = current - BUCKETS + 1 + i;
      const bucket = series.buckets[slotOf(epoch)];
      if (!bucket || bucket.epoch !== epoch) continue;
      requests[i] = bucket.requests;
      errors[i] = bucket.errors;
    }
    return { requests, errors };
  }

  /** Route names with recorded traffic. */
  routeNames(): string[] {
    return [...this.routes.keys()];
  }

  private seriesOf(route: string, now: number): RouteSeries {
    let series = this.routes.get(route);
    if (!series) {
      if (this.routes.size >= this.maxRoutes) this.dropStalest();
      series = { buckets: new Array(BUCKETS), lastSeen: now };
      this.routes.set(route, series);
    }
    series.lastSeen = now;
    return series;
  }

  private bucketFor(series: RouteSeries, now: number): Bucket {
    const epoch = Math.floor(now / BUCKET_MS);
    const slot = slotOf(epoch);
    let bucket = series.buckets[slot];
    if (!bucket || bucket.epoch !== epoch) {
      // The slot held the same 10 seconds of 15 minutes ago: start it afresh.
      bucket = { epoch, requests: 0, errors: 0, sides: {}, fallbacks: undefined, cutoverService: 0, cutoverMonolith: 0 };
      series.buckets[slot] = bucket;
    }
    return bucket;
  }

  private dropStalest(): void {
    let stalest: string | undefined;
    let oldest = Infinity;
    for (const [name, series] of this.routes) {
      if (series.lastSeen < oldest) {
        oldest = series.lastSeen;
        stalest = name;
      }
    }
    if (stalest !== undefined) this.routes.delete(stalest);
  }
}

function slotOf(epoch: number): number {
  return ((epoch % BUCKETS) + BUCKETS) % BUCKETS;
}

let defaultRecorder: DashboardRecorder | undefined;

/** The process-wide recorder that the gateway option `dashboard: true` feeds and dashboard() reads unless given another. */
export function defaultDashboardRecorder(): DashboardRecorder {
  defaultRecorder ??= new DashboardRecorder();
  return defaultRecorder;
}
