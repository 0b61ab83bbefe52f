/**
 * What the dashboard shows, as plain JSON (`state.json`): every route of the gateway's current table with its
 * migration stage, rates, error ratio, latency of service and monolith, shadow comparison and fallbacks, and
 * every upstream target with its health. Built on demand from the gateway's read-only API (`gw.routes()`,
 * `gw.control()`, `gw.shadowReport()`) and the dashboard's recorder.
 *
 * What is never in it: secrets (target URLs lose their user and password), full error messages (codes only),
 * full consumer identities (masked), and values of shadow differences past a short preview (after the
 * shadow's own `redact`).
 */
import type { RouteInfo, RouteStage } from '../../middleware/gateway';
import type { ShadowReport, ShadowSample } from '../shadow/report';
import { BUCKETS, BUCKET_MS } from './recorder';
import type { DashboardRecorder, LatencyStats, RouteWindowStats } from './recorder';

export type Stage = RouteStage;
export const STAGES: readonly Stage[] = ['monolith', 'shadow', 'cutover', 'service'];

/** A target's health as the page shows it: gets traffic, ejected (cooling down), ejected with its one trial request under way, or failing its active check. */
export type TargetHealth = 'healthy' | 'ejected' | 'trial' | 'down';

/**
 * A target as gw.routes() describes it, with the fields the dashboard reads when the gateway gives them
 * (`trial`, `retryInMs`, `inFlight`: see docs/dashboard.md; without them a trial shows as ejected, in-flight as unknown).
 */
export type DescribedTarget = RouteInfo['targets'][number] & { trial?: boolean; retryInMs?: number; inFlight?: number };

/** What dashboard() needs of a gateway: its read-only description and its runtime controls (a Gateway has them all). */
export interface DashboardGateway {
  routes(): RouteInfo[];
  control<T = unknown>(route: string, option: string): T | undefined;
  shadowReport(): ShadowReport[];
  setCutover(route: string, percent: number): void;
}

/** Windows of the numbers, in seconds. */
export const RATE_WINDOW_S = 60;
export const STATS_WINDOW_S = 300;
/** Shadow samples and fields listed per route. */
const SAMPLES_SHOWN = 5;
const FIELDS_SHOWN = 5;
const DIFFERENCES_SHOWN = 5;
/** A difference's value is shown up to this many characters. */
const VALUE_PREVIEW = 60;

export interface SideState {
  requests: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ShadowState {
  /** ISO time the tallies started. */
  since: string;
  candidate: string[];
  requests: number;
  compared: number;
  match: number;
  mismatch: number;
  candidateError: number;
  skipped: number;
  /** match / (match + mismatch + candidate errors), or null before the first comparison. */
  matchRatio: number | null;
  /** The fields that differ most often. */
  fields: Array<{ path: string; count: number }>;
  /** The latest mismatches and candidate errors, newest first, values cut to a preview. */
  samples: Array<{ time: string; method: string; path: string; outcome: ShadowSample['outcome']; primary: number; candidate?: number; error?: string; differences: Array<{ path: string; kind: string; primary?: string; candidate?: string }>; more: number }>;
}

export interface RouteState {
  name: string;
  path: string;
  methods: string[] | null;
  hosts: string[] | null;
  stage: Stage;
  final: string;
  /** The route options that run, in pipeline order (as gw.routes() lists them). */
  features: string[];
  /** The share sent to the service, and how the last 5 minutes were actually split. */
  cutover: { percent: number; service: number; monolith: number } | null;
  /** Requests per second over the last minute. */
  rps: number;
  /** Requests and 5xx answers over the last 5 minutes; errorRatio is null without requests. */
  requests: number;
  errors: number;
  errorRatio: number | null;
  /** Latency of the service and of the monolith over the last 5 minutes, where each answered. */
  latency: { service: SideState | null; monolith: SideState | null };
  /** Requests fallback() handed to the monolith over the last 5 minutes, by trigger. */
  fallbacks: { total: number; byTrigger: Record<string, number> } | null;
  shadow: ShadowState | null;
  /** Requests and 5xx answers per 10 s over the last 15 minutes, oldest first. */
  series: { requests: number[]; errors: number[] };
  /** The upstream groups (ids in `upstreams`) the route sends to. */
  upstreams: string[];
}

export interface TargetState {
  url: string;
  health: TargetHealth;
  /** An ejected target: seconds until its trial request, when the gateway says. */
  retryInSeconds: number | null;
  /** Requests in flight to the target, when the gateway says (null otherwise). */
  inFlight: number | null;
  lastError: { code: string; at: string; route: string | null } | null;
}

export interface UpstreamState {
  /** The targets' URLs joined: routes that share a pool share an entry. */
  id: string;
  routes: string[];
  targets: TargetState[];
}

export interface ChangeState {
  at: string;
  route: string;
  from: number;
  to: number;
  /** Who made it, masked. */
  by: string;
}

export interface DashboardState {
  generatedAt: string;
  windows: { rateSeconds: number; statsSeconds: number; seriesSeconds: number; bucketSeconds: number };
  /** False when nothing feeds the recorder: the per-request numbers stay empty (see docs/dashboard.md). */
  recording: boolean;
  allowChanges: boolean;
  stages: Record<Stage, number>;
  routes: RouteState[];
  upstreams: UpstreamState[];
  changes: ChangeState[];
}

/** Strips user and password from a URL: a target written `http://user:pass@host` must not show them. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.href.replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//');
  }
}

/** An identity as the page shows it: its first two characters, never all of it. */
export function maskIdentity(id: string | undefined): string {
  if (!id) return 'unknown';
  const chars = [...id];
  return chars.length <= 3 ? '•••' : `${chars.slice(0, 2).join('')}•••`;
}

/** A value of a shadow difference as a short preview. */
function preview(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  const chars = [...text];
  return chars.length > VALUE_PREVIEW ? `${chars.slice(0, VALUE_PREVIEW - 1).join('')}…` : text;
}

function sideState(stats: LatencyStats | undefined): SideState | null {
  return stats ? { requests: stats.count, errors: stats.errors, p50Ms: round(stats.p50), p99Ms: round(stats.p99) } : null;
}

function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/**
 * Latency by side. The gateway's own answers (`edge`: refusals, cache hits) belong to neither, except on routes
 * whose final handler is the app (they are the monolith's) or an aggregate or gRPC call (the service's, which
 * reach upstreams without the proxy).
 */
function latencyOf(route: RouteInfo, stats: RouteWindowStats | undefined): RouteState['latency'] {
  if (!stats) return { service: null, monolith: null };
  const { service, monolith, edge } = stats.sides;
  if (route.final === 'app') return { service: sideState(service), monolith: sideState(merge(monolith, edge)) };
  if (route.final !== 'upstream') return { service: sideState(merge(service, edge)), monolith: sideState(monolith) };
  return { service: sideState(service), monolith: sideState(monolith) };
}

/** Two sides' stats as one: counts add up, percentiles are those of the larger (an approximation for the rare mix). */
function merge(a: LatencyStats | undefined, b: LatencyStats | undefined): LatencyStats | undefined {
  if (!a || !b) return a ?? b;
  const larger = a.count >= b.count ? a : b;
  return { count: a.count + b.count, errors: a.errors + b.errors, p50: larger.p50, p99: larger.p99 };
}

function shadowState(report: ShadowReport): ShadowState {
  const { match, mismatch, candidateError, skipped } = report.outcomes;
  const compared = match + mismatch + candidateError;
  return {
    since: report.since,
    candidate: report.candidate.map(displayUrl),
    requests: report.requests,
    compared,
    match,
    mismatch,
    candidateError,
    skipped,
    matchRatio: compared === 0 ? null : round(match / compared, 4),
    fields: report.fields.slice(0, FIELDS_SHOWN),
    samples: report.samples
      .slice(-SAMPLES_SHOWN)
      .reverse()
      .map((sample) => ({
        time: sample.time,
        method: sample.method,
        path: sample.path,
        outcome: sample.outcome,
        primary: sample.status.primary,
        ...(sample.status.candidate !== undefined ? { candidate: sample.status.candidate } : {}),
        ...(sample.error !== undefined ? { error: sample.error } : {}),
        differences: (sample.differences ?? []).slice(0, DIFFERENCES_SHOWN).map((difference) => ({
          path: difference.path,
          kind: difference.kind,
          ...(difference.primary !== undefined ? { primary: preview(difference.primary) } : {}),
          ...(difference.candidate !== undefined ? { candidate: preview(difference.candidate) } : {}),
        })),
        more: Math.max(0, (sample.differences?.length ?? 0) - DIFFERENCES_SHOWN) + (sample.moreDifferences ?? 0),
      })),
  };
}

/** Reads a route's cutover percentage through the gateway's control. */
function cutoverPercent(gateway: DashboardGateway, route: string): number | undefined {
  const control = gateway.control<{ percent: number }>(route, 'cutover');
  return typeof control?.percent === 'number' ? control.percent : undefined;
}

/** Builds the state the page and `state.json` show. */
export function buildState(gateway: DashboardGateway, recorder: DashboardRecorder, options: { allowChanges: boolean; changes: readonly ChangeState[]; now?: number }): DashboardState {
  const now = options.now ?? Date.now();
  const described = gateway.routes();
  const reports = new Map(gateway.shadowReport().map((report) => [report.route, report]));
  const upstreams = new Map<string, UpstreamState>();
  const stages: Record<Stage, number> = { monolith: 0, shadow: 0, cutover: 0, service: 0 };
  const routes: RouteState[] = [];
  // Routes that share a name (one per method set) are one row: they share their controls, reports and numbers.
  const byName = new Map<string, RouteInfo[]>();
  for (const route of described) byName.set(route.name, [...(byName.get(route.name) ?? []), route]);
  // Along the migration path: monolith first, service last; by name within a stage.
  const ordered = [...byName].sort(([a, [x]], [b, [y]]) => STAGES.indexOf(x.stage) - STAGES.indexOf(y.stage) || (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, group] of ordered) {
    const route = group[0];
    const stats = recorder.window(name, STATS_WINDOW_S);
    const rate = recorder.window(name, RATE_WINDOW_S);
    const percent = group.some((member) => member.features.includes('cutover')) ? (route.cutover ?? cutoverPercent(gateway, name)) : undefined;
    const report = reports.get(name);
    const groups: string[] = [];
    // A route's targets are one entry; routes sending to the same targets (a named upstream) share it.
    for (const member of group) {
      if (member.targets.length === 0) continue;
      const id = member.targets.map((target) => displayUrl(target.url)).join(' ');
      if (!groups.includes(id)) groups.push(id);
      let entry = upstreams.get(id);
      if (!entry) {
        entry = { id, routes: [], targets: member.targets.map((target) => targetState(target, recorder)) };
        upstreams.set(id, entry);
      }
      if (!entry.routes.includes(name)) entry.routes.push(name);
    }
    const fallbackTotal = stats ? Object.values(stats.fallbacks).reduce((sum, count) => sum + count, 0) : 0;
    const listed = group.some((member) => !member.methods) ? null : [...new Set(group.flatMap((member) => member.methods ?? []))];
    // GET includes HEAD: said once.
    const methods = listed && listed.includes('GET') ? listed.filter((method) => method !== 'HEAD') : listed;
    stages[route.stage]++;
    routes.push({
      name,
      path: route.path,
      methods,
      hosts: route.hosts ?? null,
      stage: route.stage,
      final: route.final,
      features: route.features,
      cutover: percent === undefined ? null : { percent, service: stats?.cutover.service ?? 0, monolith: stats?.cutover.monolith ?? 0 },
      rps: rate ? round(rate.requests / rate.seconds, 3) : 0,
      requests: stats?.requests ?? 0,
      errors: stats?.errors ?? 0,
      errorRatio: stats && stats.requests > 0 ? round(stats.errors / stats.requests, 4) : null,
      latency: latencyOf(route, stats),
      fallbacks: group.some((member) => member.features.includes('fallback')) || fallbackTotal > 0 ? { total: fallbackTotal, byTrigger: stats?.fallbacks ?? {} } : null,
      shadow: report ? shadowState(report) : null,
      series: recorder.series(name),
      upstreams: groups,
    });
  }
  return {
    generatedAt: new Date(now).toISOString(),
    windows: { rateSeconds: RATE_WINDOW_S, statsSeconds: STATS_WINDOW_S, seriesSeconds: (BUCKETS * BUCKET_MS) / 1000, bucketSeconds: BUCKET_MS / 1000 },
    recording: recorder.fed,
    allowChanges: options.allowChanges,
    stages,
    routes,
    upstreams: [...upstreams.values()],
    changes: [...options.changes],
  };
}

function targetState(target: DescribedTarget, recorder: DashboardRecorder): TargetState {
  const error = recorder.lastError(target.url);
  const health: TargetHealth = target.activeDown ? 'down' : target.state === 'healthy' ? 'healthy' : target.trial ? 'trial' : 'ejected';
  return {
    url: displayUrl(target.url),
    health,
    retryInSeconds: health === 'ejected' && target.retryInMs !== undefined ? Math.ceil(target.retryInMs / 1000) : null,
    inFlight: target.inFlight ?? null,
    lastError: error ? { code: error.code, at: new Date(error.at).toISOString(), route: error.route ?? null } : null,
  };
}
