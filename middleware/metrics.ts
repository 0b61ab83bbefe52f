/**
 * metrics(): RED metrics of the gateway through the OpenTelemetry metrics SDK, exposed in Prometheus
 * text format by metricsHandler(). Labels are bounded: route templates and names, methods, status
 * classes and upstream targets — never raw paths or consumer ids. Series names follow the
 * OpenTelemetry-to-Prometheus mapping (prometheusName()): `http.server.request.duration` in seconds is
 * `http_server_request_duration_seconds`, counters end in `_total`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { DataPointType, MeterProvider, MetricData, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { diag } from '@opentelemetry/api';
import type { Attributes, Counter, Histogram } from '@opentelemetry/api';
import { getContext, onResponseClose } from '../lib/context';
import { load } from '../lib/load';
import { defineSchema, parseOptions } from '../lib/schema';
import type { UpstreamPool } from '../lib/upstream-pool';
import { observeUpstream } from '../lib/upstream-observers';
import type { UpstreamResult } from '../lib/upstream-observers';
import type { GatewayFeatureDescriptor, Middleware } from '../lib/pipeline';
import type { ShadowControl, ShadowEvent } from './shadow';

export interface MetricsOptions {
  /** Metrics registry to record into. Defaults to the process-wide one that `metricsHandler()` serves. */
  registry?: MetricsRegistry;
  /** Label requests with the consumer id (unbounded cardinality: only for a known, small set of consumers). Defaults to false. */
  consumerLabel?: boolean;
}

/** The metrics middleware, with the registry it records into and `close()`, after which it records nothing more. */
export type MetricsMiddleware = Middleware & { close(): void; readonly registry: MetricsRegistry };

// Seconds; the OpenTelemetry semantic-convention buckets for HTTP durations.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** A meter provider with a Prometheus reader and the gateway's instruments. */
export class MetricsRegistry {
  readonly exporter: PrometheusExporter;
  readonly provider: MeterProvider;
  readonly requestDuration: Histogram;
  /** Requests in flight by method, read at collection time (cheaper than two SDK updates per request). */
  private readonly inFlight = new Map<string, number>();
  readonly upstreamDuration: Histogram;
  readonly upstreamErrors: Counter;
  readonly rateLimited: Counter;
  readonly problems: Counter;
  readonly reloads: Counter;
  readonly cacheLookups: Counter;
  readonly fallbacks: Counter;
  readonly cutover: Counter;
  readonly shadowComparisons: Counter;
  readonly shadowCandidateDuration: Histogram;
  private readonly serializer: PrometheusSerializer;
  private readonly dataPointType: typeof DataPointType;
  /** Records the upstream attempts of the requests metrics() observes (subscribed per request). */
  readonly onUpstreamResult = (result: UpstreamResult): void => this.recordUpstream(result);
  /**
   * Pools whose target health this registry reports: those of the gateways that record into it, those its
   * requests went through, and those you add. Closed pools drop out at the next scrape.
   */
  private readonly pools = new Set<UpstreamPool>();

  constructor() {
    const prometheus = load('@opentelemetry/exporter-prometheus');
    const { MeterProvider, DataPointType } = load('@opentelemetry/sdk-metrics');
    this.dataPointType = DataPointType;
    this.exporter = new prometheus.PrometheusExporter({ preventServerStart: true });
    this.serializer = new prometheus.PrometheusSerializer();
    this.provider = new MeterProvider({ readers: [this.exporter] });
    const meter = this.provider.getMeter('frontdoor');
    const advice = { explicitBucketBoundaries: DURATION_BUCKETS };
    this.requestDuration = meter.createHistogram('http.server.request.duration', { unit: 's', description: 'Duration of requests through the gateway.', advice });
    meter.createObservableUpDownCounter('http.server.active_requests', { unit: '{request}', description: 'Requests in flight.' }).addCallback((result) => {
      for (const [method, count] of this.inFlight) result.observe(count, { 'http.request.method': method });
    });
    this.upstreamDuration = meter.createHistogram('frontdoor.upstream.duration', { unit: 's', description: 'Duration of upstream attempts until response headers.', advice });
    this.upstreamErrors = meter.createCounter('frontdoor.upstream.errors', { unit: '{attempt}', description: 'Failed upstream attempts (refused, reset, timeout).' });
    this.rateLimited = meter.createCounter('frontdoor.rate_limit.rejections', { unit: '{request}', description: 'Requests rejected by rate limiting.' });
    this.problems = meter.createCounter('frontdoor.errors', { unit: '{error}', description: 'Errors answered by the gateway, by code.' });
    this.reloads = meter.createCounter('frontdoor.config.reloads', { unit: '{reload}', description: 'Configuration reloads, by outcome (applied, failed).' });
    this.cacheLookups = meter.createCounter('frontdoor.cache.lookups', { unit: '{request}', description: 'Requests through cache(), by outcome (HIT, MISS, BYPASS).' });
    this.fallbacks = meter.createCounter('frontdoor.fallbacks', { unit: '{request}', description: 'Requests fallback() handed to the app, by trigger (unavailable, timeout, or the upstream status).' });
    this.cutover = meter.createCounter('frontdoor.cutover.requests', { unit: '{request}', description: 'Requests of cutover routes, by side (service, monolith).' });
    this.shadowComparisons = meter.createCounter('frontdoor.shadow.comparisons', { unit: '{request}', description: 'Shadowed requests by outcome (match, mismatch, candidate_error, skipped, not_shadowed) and reason.' });
    this.shadowCandidateDuration = meter.createHistogram('frontdoor.shadow.candidate.duration', { unit: 's', description: 'Time of the candidate copies, from sending to the answer or failure.', advice });
  }

  /** The registry in Prometheus text exposition format, with the target health gauge. */
  async exposition(): Promise<string> {
    const { resourceMetrics, errors } = await this.exporter.collect();
    if (errors.length) diag.error('frontdoor metrics: collection errors', ...errors);
    const text = this.serializer.serialize(this.withPrometheusNames(resourceMetrics));
    // With no data yet the serializer ends on a comment without a newline; the gauge must start on its own line.
    return (text === '' || text.endsWith('\n') ? text : `${text}\n`) + healthGauge(this.pools);
  }

  /**
   * The collected metrics with Prometheus names and units (the exporter only sanitises names and adds `_total`).
   * Renamed here rather than by SDK views so that other readers of `provider` keep the OpenTelemetry names.
   */
  private withPrometheusNames(resourceMetrics: ResourceMetrics): ResourceMetrics {
    const { GAUGE, SUM } = this.dataPointType;
    const rename = (metric: MetricData): MetricData => {
      const kind = metric.dataPointType === GAUGE || (metric.dataPointType === SUM && !metric.isMonotonic) ? 'gauge' : 'other';
      const unit = prometheusUnit(metric.descriptor.unit, kind);
      // The serializer adds `_total` to counters itself, after the unit as the mapping wants.
      return { ...metric, descriptor: { ...metric.descriptor, name: prometheusName(metric.descriptor.name, unit), unit } };
    };
    return { ...resourceMetrics, scopeMetrics: resourceMetrics.scopeMetrics.map((scope) => ({ ...scope, metrics: scope.metrics.map(rename) })) };
  }

  /** Reports these pools' target health (gateway() adds its routes' pools; add `proxy(…).pool` for proxy() alone). */
  addPools(pools: Iterable<UpstreamPool>): void {
    for (const pool of pools) if (!pool.isClosed) this.pools.add(pool);
  }

  /** Stops reporting these pools. */
  removePools(pools: Iterable<UpstreamPool>): void {
    for (const pool of pools) this.pools.delete(pool);
  }

  /** Counts a request as in flight (`method` already normalised). */
  requestStarted(method: string): void {
    this.inFlight.set(method, (this.inFlight.get(method) ?? 0) + 1);
  }

  /** Ends what requestStarted() began. */
  requestEnded(method: string): void {
    this.inFlight.set(method, (this.inFlight.get(method) ?? 1) - 1);
  }

  private recordUpstream(result: UpstreamResult): void {
    if (!this.pools.has(result.pool) && !result.pool.isClosed) this.pools.add(result.pool);
    const route = getContext(result.req).route ?? 'other';
    const attributes: Attributes = { 'frontdoor.upstream': result.target, 'http.route': route };
    if (result.status !== undefined) attributes['http.response.status_class'] = statusClass(result.status);
    if (result.errorType !== undefined) {
      attributes['error.type'] = result.errorType;
      this.upstreamErrors.add(1, { 'frontdoor.upstream': result.target, 'http.route': route, 'error.type': result.errorType });
    }
    this.upstreamDuration.record(result.durationMs / 1000, attributes);
  }
}

let defaultRegistry: MetricsRegistry | undefined;

/** The process-wide registry used by metrics() and metricsHandler() unless one is passed. */
export function defaultMetricsRegistry(): MetricsRegistry {
  defaultRegistry ??= new MetricsRegistry();
  return defaultRegistry;
}

/** The options of metrics(); the registry defaults to the process-wide one when metrics() is called. */
export const metricsSchema = defineSchema((z) =>
  z.strictObject(
    {
      registry: z.custom<MetricsRegistry>((value) => value instanceof MetricsRegistry, { error: 'must be a MetricsRegistry, e.g. new MetricsRegistry().' }).optional(),
      consumerLabel: z.boolean({ error: 'must be true or false' }).default(false),
    },
    { error: 'must be an object of metrics() options, e.g. { registry: new MetricsRegistry() }.' },
  ),
);

/**
 * Records request metrics. Mount it first: `app.use(metrics())`, and expose them with
 * `app.get('/metrics', metricsHandler())`.
 */
export function metrics(options: MetricsOptions = {}, optionPrefix = ''): MetricsMiddleware {
  const config = parseOptions(metricsSchema(), options, optionPrefix);
  const registry = config.registry ?? defaultMetricsRegistry();
  const { consumerLabel } = config;
  let closed = false;

  const middleware = function metricsMiddleware(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
    if (closed) return next();
    const context = getContext(req, res);
    // Counted once, by whichever metrics() comes first (an app-wide one and the gateway's, say).
    if (context.observed?.metrics) return next();
    (context.observed ??= {}).metrics = true;
    observeUpstream(context, registry.onUpstreamResult);
    const method = normaliseMethod(req.method);
    registry.requestStarted(method);
    onResponseClose(context, res, function recordRequest() {
      registry.requestEnded(method);
      const route = context.route ?? (req as { route?: { path?: string } }).route?.path ?? 'other';
      const attributes: Attributes = {
        'http.route': typeof route === 'string' ? route : 'other',
        'http.request.method': method,
        'http.response.status_class': res.writableFinished ? statusClass(res.statusCode) : 'aborted',
      };
      if (consumerLabel) attributes['frontdoor.consumer'] = (req as { user?: { id?: string } }).user?.id ?? 'none';
      registry.requestDuration.record((performance.now() - context.startedAt) / 1000, attributes);
      const routeLabel = attributes['http.route'] as string;
      if (context.cache) registry.cacheLookups.add(1, { 'http.route': routeLabel, 'frontdoor.cache.outcome': context.cache });
      if (context.fallback) registry.fallbacks.add(1, { 'http.route': routeLabel, 'frontdoor.fallback.trigger': context.fallback });
      if (context.cutover) registry.cutover.add(1, { 'http.route': routeLabel, 'frontdoor.cutover.side': context.cutover });
      if (context.errorCode) {
        registry.problems.add(1, { 'http.route': attributes['http.route'] as string, 'frontdoor.error.code': context.errorCode });
        if (context.errorCode === 'ERR_RATE_LIMITED') registry.rateLimited.add(1, { 'http.route': attributes['http.route'] as string });
      }
    });
    next();
  } as MetricsMiddleware;
  middleware.close = () => {
    closed = true;
  };
  Object.defineProperty(middleware, 'registry', { value: registry, enumerable: true });
  return middleware;
}

/** Serves the registry in Prometheus text exposition format: `app.get('/metrics', metricsHandler())`. */
export function metricsHandler(registry: MetricsRegistry = defaultMetricsRegistry()): (req: IncomingMessage, res: ServerResponse) => void {
  return function metricsEndpoint(req, res) {
    registry.exposition().then(
      (text) => {
        res.statusCode = 200;
        res.setHeader('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
        res.end(text);
      },
      (err: unknown) => {
        res.statusCode = 500;
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        res.end(`# failed to collect metrics: ${(err as Error)?.message ?? err}\n`);
      },
    );
  };
}

/** The health gauge, named as an OpenTelemetry gauge `frontdoor.upstream.healthy` without unit would be (0 or 1 is a state, not a ratio). */
const HEALTHY = prometheusName('frontdoor.upstream.healthy', '');

/**
 * Target health, read from the live pools at scrape time. Kept outside the OpenTelemetry SDK on purpose:
 * the SDK keeps exporting every series an observable gauge ever reported, so a closed gateway's targets
 * would stay on /metrics with their last value for the life of the process.
 */
function healthGauge(pools: Set<UpstreamPool>): string {
  // One series per target: when several pools share a target, it counts as healthy only if every pool sends it traffic.
  const health = new Map<string, number>();
  for (const pool of pools) {
    if (pool.isClosed) {
      pools.delete(pool);
      continue;
    }
    for (const target of pool.targets) {
      const healthy = target.state === 'healthy' && !target.activeDown ? 1 : 0;
      health.set(target.href, Math.min(health.get(target.href) ?? 1, healthy));
    }
  }
  let lines = `# HELP ${HEALTHY} 1 when a target receives traffic, 0 when ejected or failing its health check.\n# TYPE ${HEALTHY} gauge\n`;
  for (const [href, healthy] of health) lines += `${HEALTHY}{frontdoor_upstream="${escapeLabel(href)}",otel_scope_name="frontdoor"} ${healthy}\n`;
  return lines;
}

/**
 * UCUM units (the OpenTelemetry unit syntax) as the words Prometheus names use. A unit not listed keeps its
 * sanitised spelling; annotations such as `{request}` are dropped (a count is unitless in Prometheus).
 */
const UNIT_WORDS: Record<string, string> = {
  s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds', min: 'minutes', h: 'hours', d: 'days',
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', GiBy: 'gibibytes', KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes',
  '%': 'percent', Hz: 'hertz', m: 'meters', g: 'grams', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', Cel: 'celsius',
};
/** The denominators of `x/y` units, singular: `By/s` is `bytes_per_second`. */
const PER_UNIT_WORDS: Record<string, string> = { s: 'second', min: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

/**
 * The Prometheus unit of an OpenTelemetry unit, by the specification's "Prometheus and OpenMetrics compatibility":
 * words for abbreviations (`s` → `seconds`, `By` → `bytes`), `{…}` annotations dropped, `x/y` as `x_per_y`, and
 * `1` as `ratio` on gauges only (as the Collector's translator does: a counter or histogram of unit 1 is a count).
 * '' when nothing remains.
 */
export function prometheusUnit(unit: string, kind: 'gauge' | 'other'): string {
  const plain = unit.replace(/\{[^}]*\}/g, '').trim();
  if (plain === '1') return kind === 'gauge' ? 'ratio' : '';
  const [numerator = '', denominator = ''] = plain.split('/', 2);
  const words = [numerator && numerator !== '1' ? (UNIT_WORDS[numerator] ?? numerator) : '', denominator ? `per_${PER_UNIT_WORDS[denominator] ?? UNIT_WORDS[denominator] ?? denominator}` : ''];
  return sanitiseName(words.filter(Boolean).join('_'));
}

/**
 * The Prometheus name of an OpenTelemetry instrument: invalid characters as `_`, and the Prometheus unit as a
 * suffix unless the name already ends with it. The type suffixes (`_total`, `_bucket`…) come after, from the serializer.
 */
export function prometheusName(name: string, prometheusUnitSuffix: string): string {
  const base = sanitiseName(name);
  return !prometheusUnitSuffix || base.endsWith(`_${prometheusUnitSuffix}`) ? base : `${base}_${prometheusUnitSuffix}`;
}

/** What the mapping (and the exporter) does to names: characters outside [a-zA-Z0-9_] become `_`, runs of `_` one. */
function sanitiseName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_').replace(/_{2,}/g, '_');
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/** Unknown methods are one label, `_OTHER`, as the semantic conventions say: a client cannot add label values. */
function normaliseMethod(method: string | undefined): string {
  return method && METHODS.has(method) ? method : '_OTHER';
}

function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** Prometheus-style label values of shadow outcomes. */
const OUTCOME_LABELS: Record<ShadowEvent['outcome'], string> = { match: 'match', mismatch: 'mismatch', candidateError: 'candidate_error', skipped: 'skipped', notShadowed: 'not_shadowed' };

/** The gateway option `metrics`: metrics() options or `true`; the registry reports the gateway's pools. */
export const metricsFeature: GatewayFeatureDescriptor = {
  option: 'metrics',
  phase: 'observe',
  schemas: defineSchema((z) => ({ option: z.union([z.boolean(), metricsSchema()]) })),
  upgrade: { apply: false, reason: 'An upgrade has no HTTP response whose end could be observed; upgrades are not traced, counted or logged yet.' },
  build(value) {
    if (!value) return {};
    const middleware = metrics(value === true ? {} : (value as MetricsOptions), 'metrics.');
    let watched: UpstreamPool[] = [];
    return {
      handler: middleware,
      watchPools(pools) {
        watched = pools;
        middleware.registry.addPools(pools);
      },
      reloaded(outcome) {
        middleware.registry.reloads.add(1, { outcome });
      },
      watchRoutes(routes) {
        const registry = middleware.registry;
        const stops = [...new Set(routes.flatMap((route) => (route.controls.has('shadow') ? [route.controls.get('shadow') as ShadowControl] : [])))].map((control) =>
          control.observe((event) => {
            const outcome = OUTCOME_LABELS[event.outcome];
            registry.shadowComparisons.add(1, { 'http.route': event.route, 'frontdoor.shadow.outcome': outcome, ...(event.reason ? { 'frontdoor.shadow.reason': event.reason } : {}) });
            if (event.candidateMs !== undefined) registry.shadowCandidateDuration.record(event.candidateMs / 1000, { 'http.route': event.route, 'frontdoor.shadow.outcome': outcome });
          }),
        );
        return () => stops.forEach((stop) => stop());
      },
      close() {
        middleware.registry.removePools(watched);
        middleware.close();
      },
    };
  },
};
