/**
 * The dashboard's texts, tones and sparklines, formatted once, here: the server renders the page with them and
 * sends them again in `state.json` (its `view` member), where the page's script only copies them into place. One
 * formatter, so the first render and every refresh always agree.
 *
 * Keys name the element they fill (`data-f="routes.0.rps"`), tones its `data-tone` (`ok`, `warn`, `bad`).
 */
import { createHash } from 'node:crypto';
import type { DashboardState, RouteState, SideState, TargetState } from './state';

export type Tone = 'ok' | 'warn' | 'bad' | 'none';

export interface DashboardView {
  /** The page's shape: routes, stages and targets. When it changes (a reload), the page loads afresh. */
  shape: string;
  texts: Record<string, string>;
  tones: Record<string, Tone>;
  /** Sparkline polylines per route index: requests and 5xx answers. */
  sparks: Array<{ requests: string; errors: string; label: string }>;
}

export const SPARK_WIDTH = 180;
export const SPARK_HEIGHT = 32;
const DASH = '–';
const HEALTH_TEXT: Record<TargetState['health'], string> = { healthy: 'healthy', ejected: 'ejected', trial: 'in trial', down: 'down (health check)' };

export function formatRate(value: number): string {
  if (value === 0) return '0';
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function formatRatio(value: number | null): string {
  return value === null ? DASH : `${(value * 100).toFixed(value > 0 && value < 0.001 ? 2 : 1)} %`;
}

export function formatMs(value: number): string {
  if (value < 10) return `${value.toFixed(1)} ms`;
  if (value < 1000) return `${Math.round(value)} ms`;
  return `${(value / 1000).toFixed(2)} s`;
}

export function formatPercent(value: number): string {
  return `${Number(value.toFixed(2))} %`;
}

function latencyText(side: SideState | null): string {
  return side ? `${formatMs(side.p50Ms)} / ${formatMs(side.p99Ms)}` : DASH;
}

/** `12 s ago`, `4 min ago`. */
export function ago(iso: string, now: number): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function errorTone(route: RouteState): Tone {
  if (route.errorRatio === null) return 'none';
  return route.errorRatio >= 0.05 ? 'bad' : route.errorRatio >= 0.01 ? 'warn' : 'ok';
}

function matchTone(ratio: number | null): Tone {
  if (ratio === null) return 'none';
  return ratio < 0.95 ? 'bad' : ratio < 0.99 ? 'warn' : 'ok';
}

function healthTone(target: TargetState): Tone {
  return target.health === 'healthy' ? 'ok' : target.health === 'trial' ? 'warn' : 'bad';
}

/** The points of a sparkline: `values` from left to right, scaled to `max` (0 keeps the line at the bottom). */
export function sparkPoints(values: readonly number[], max: number): string {
  const step = values.length > 1 ? SPARK_WIDTH / (values.length - 1) : 0;
  return values.map((value, i) => `${round1(i * step)},${round1(SPARK_HEIGHT - 1 - (max > 0 ? (value / max) * (SPARK_HEIGHT - 2) : 0))}`).join(' ');
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

function fallbacksText(route: RouteState): string {
  if (!route.fallbacks) return DASH;
  const triggers = Object.entries(route.fallbacks.byTrigger).sort((a, b) => b[1] - a[1]);
  return triggers.length === 0 ? '0' : triggers.map(([trigger, count]) => `${trigger} ${count}`).join(' · ');
}

function shadowText(route: RouteState): string {
  const shadow = route.shadow;
  if (!shadow) return DASH;
  return shadow.matchRatio === null ? 'no comparison yet' : `${formatRatio(shadow.matchRatio)} of ${shadow.compared}`;
}

function diffLines(route: RouteState, now: number): string {
  const shadow = route.shadow;
  if (!shadow || shadow.samples.length === 0) return 'No mismatch so far.';
  return shadow.samples
    .map((sample) => {
      const head = `${ago(sample.time, now)}  ${sample.method} ${sample.path}  ${sample.primary} vs ${sample.candidate ?? sample.error ?? '?'}`;
      const lines = sample.differences.map((difference) => `    ${difference.path}: ${difference.primary ?? '(absent)'} → ${difference.candidate ?? '(absent)'}`);
      if (sample.more > 0) lines.push(`    … ${sample.more} more`);
      return [head, ...lines].join('\n');
    })
    .join('\n');
}

/** Formats every text, tone and sparkline of the page. */
export function buildView(state: DashboardState, now = Date.parse(state.generatedAt)): DashboardView {
  const texts: Record<string, string> = {};
  const tones: Record<string, Tone> = {};
  const moved = state.stages.service;
  texts.summary = `${state.routes.length} route${state.routes.length === 1 ? '' : 's'}, ${moved} moved to services`;
  texts.updated = `${state.generatedAt.slice(11, 19)} UTC`;
  for (const stage of ['monolith', 'shadow', 'cutover', 'service'] as const) texts[`stages.${stage}`] = String(state.stages[stage]);
  const sparks: DashboardView['sparks'] = [];
  state.routes.forEach((route, i) => {
    const key = `routes.${i}`;
    texts[`${key}.percent`] = route.cutover ? formatPercent(route.cutover.percent) : '';
    texts[`${key}.split`] = route.cutover && route.cutover.service + route.cutover.monolith > 0 ? `service ${route.cutover.service} · monolith ${route.cutover.monolith}` : '';
    texts[`${key}.rps`] = formatRate(route.rps);
    texts[`${key}.errors`] = formatRatio(route.errorRatio);
    tones[`${key}.errors`] = errorTone(route);
    texts[`${key}.service`] = latencyText(route.latency.service);
    texts[`${key}.monolith`] = latencyText(route.latency.monolith);
    texts[`${key}.shadow`] = shadowText(route);
    tones[`${key}.shadow`] = matchTone(route.shadow?.matchRatio ?? null);
    texts[`${key}.fallbacks`] = fallbacksText(route);
    if (route.shadow) {
      const s = route.shadow;
      texts[`${key}.tally`] = `match ${s.match} · mismatch ${s.mismatch} · candidate errors ${s.candidateError} · skipped ${s.skipped} · of ${s.requests} requests since ${s.since.slice(0, 19).replace('T', ' ')} UTC`;
      texts[`${key}.fields`] = s.fields.length ? s.fields.map((field) => `${field.path} (${field.count})`).join(', ') : DASH;
      texts[`${key}.diffs`] = diffLines(route, now);
    }
    const max = Math.max(1, ...route.series.requests);
    const total = route.series.requests.reduce((sum, count) => sum + count, 0);
    const errors = route.series.errors.reduce((sum, count) => sum + count, 0);
    sparks.push({ requests: sparkPoints(route.series.requests, max), errors: sparkPoints(route.series.errors, max), label: `${total} requests, ${errors} 5xx in the last 15 minutes` });
  });
  state.upstreams.forEach((upstream, u) => {
    upstream.targets.forEach((target, t) => {
      const key = `upstreams.${u}.${t}`;
      texts[`${key}.health`] = HEALTH_TEXT[target.health] + (target.health === 'ejected' && target.retryInSeconds !== null ? `, trial in ${target.retryInSeconds} s` : '');
      tones[`${key}.health`] = healthTone(target);
      texts[`${key}.inFlight`] = target.inFlight === null ? DASH : String(target.inFlight);
      texts[`${key}.lastError`] = target.lastError ? `${target.lastError.code}, ${ago(target.lastError.at, now)}${target.lastError.route ? ` (${target.lastError.route})` : ''}` : DASH;
    });
  });
  texts.changes = state.changes.length ? state.changes.map((change) => `${change.at.slice(0, 19).replace('T', ' ')} UTC  ${change.route}: ${formatPercent(change.from)} → ${formatPercent(change.to)}  by ${change.by}`).join('\n') : 'No change yet.';
  return { shape: shapeOf(state), texts, tones, sparks };
}

/** What the page's structure depends on: a change means the page must be rendered afresh. */
export function shapeOf(state: DashboardState): string {
  const routes = state.routes.map((route) => `${route.name}|${route.stage}|${route.shadow ? 's' : ''}|${route.cutover ? 'c' : ''}|${route.fallbacks ? 'f' : ''}`);
  const upstreams = state.upstreams.map((upstream) => `${upstream.id}@${upstream.routes.join('+')}`);
  const text = [routes.join(','), upstreams.join(','), state.allowChanges, state.recording].join('#');
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}
