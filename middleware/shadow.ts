/**
 * shadow(): compare before you switch. Each chosen request is copied to a candidate service (the new
 * implementation) while the primary — the monolith's own handler, or the route's upstream — answers the client.
 * Once the primary's answer has ended, the candidate's is compared with it (status, selected headers, body:
 * JSON field by field, anything else by bytes), and the outcome is tallied in a report: match, mismatch,
 * candidate error, skipped. With a `secondary` (a second instance of the old code), fields that differ between
 * primary and secondary are learned as noise and left out, as Twitter's Diffy does.
 *
 * The client only ever gets the primary's answer, and never waits for the candidate: the copy has its own pool,
 * timeout and concurrency cap, and whatever it does ends up in the report, never in the response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { stripIdentityHeaders } from '../lib/auth-headers';
import { captureAnswer } from '../lib/cache/capture';
import { getContext, REQUEST_ID_HEADER } from '../lib/context';
import type { RequestContext } from '../lib/context';
import { compileRules, PathSyntaxError } from '../lib/diff';
import type { Difference, DiffRules } from '../lib/diff';
import type { Duration } from '../lib/duration';
import type { ByteSize } from '../lib/byte-size';
import { ConfigError, GatewayError } from '../lib/errors';
import { forwardHeaders } from '../lib/forwarding-headers';
import { parsePath } from '../lib/json-paths';
import type { JsonPath } from '../lib/json-paths';
import type { Logger } from '../lib/log';
import { normaliseTarget } from '../lib/path';
import type { FeatureDescriptor, Middleware, Next } from '../lib/pipeline';
import { withoutQueryParameters } from '../lib/query';
import { fingerprint } from '../lib/scope';
import { byteSize, defineSchema, duration, parseOptions } from '../lib/schema';
import type { Z } from '../lib/schema';
import { compareAnswers, prepareAnswer } from '../lib/shadow/compare';
import type { CompareConfig, RawAnswer } from '../lib/shadow/compare';
import { ShadowStore } from '../lib/shadow/report';
import type { ShadowDifference, ShadowReport, SkipReason, StoreOptions } from '../lib/shadow/report';
import { teeRequestBody } from '../lib/shadow/tee';
import { UpstreamPool, upstreamShape } from '../lib/upstream-pool';
import type { UpstreamOptions } from '../lib/upstream-pool';
import { CancelledError, sendBuffered } from '../lib/upstream-request';
import type { BufferedRequest } from '../lib/upstream-request';

export type { ShadowDifference, ShadowReport, ShadowSample, SkipReason, NotShadowedReason, ShadowOutcome } from '../lib/shadow/report';

/** Where copies go: a URL, or targets with balancing and health, plus this endpoint's own time limits. */
export interface ShadowEndpoint extends UpstreamOptions {
  /** Time for the whole answer. Defaults to the shadow's `timeout`. */
  timeout?: Duration;
  /** Time to open a connection. Defaults to `'1s'`. */
  connectTimeout?: Duration;
}

/** What is compared, and how. */
export interface ShadowCompareOptions {
  /** Response headers compared (Content-Type by media type only). Defaults to `['content-type']`. */
  headers?: string[];
  /** Body fields never compared, as dot paths with `[*]`: `['updatedAt', 'items[*].id']`. Defaults to none. */
  ignore?: string[];
  /** Arrays compared without regard to order: `true` for all, or their paths: `['items']`. Defaults to false. */
  unordered?: boolean | string[];
  /** Absolute tolerance for numbers: one for all, or by path: `{ total: 0.01 }`. Defaults to 0 (exact). */
  tolerance?: number | Record<string, number>;
}

export interface ShadowOptions {
  /** The new implementation: `'http://orders-v2:4001'`, or `{ targets: [...], timeout: '2s' }`. Required. */
  candidate: string | ShadowEndpoint;
  /**
   * A second instance of the old implementation, called with the same copy. Fields that differ between the
   * primary and it are noise (timestamps, generated ids) and are left out of the candidate's differences.
   * Defaults to none.
   */
  secondary?: string | ShadowEndpoint;
  /** Share of the eligible requests copied, 0–100. Defaults to 100. */
  percent?: number;
  /**
   * Copy unsafe methods (POST, PUT, PATCH, DELETE…) too: only when the candidate is side-effect free (a dry-run
   * mode, its own database). Defaults to false: GET, HEAD and OPTIONS only.
   */
  unsafe?: boolean;
  /** Time the candidate (and secondary) has for a whole answer. Defaults to `'5s'`. */
  timeout?: Duration;
  /** Copies in flight at once; past it a copy is skipped (and counted). Defaults to 32. */
  maxConcurrent?: number;
  /** Largest request body copied; a larger one is never buffered, and its copy is skipped. Defaults to `'64kb'`. */
  maxRequestBody?: ByteSize;
  /** Largest answer compared (the primary's is kept aside only up to it). Defaults to `'1mb'`. */
  maxResponseBody?: ByteSize;
  /** What is compared, and how. */
  compare?: ShadowCompareOptions;
  /** Body fields whose values samples and log lines never show: `['customer.email', 'items[*].card']`. Defaults to none. */
  redact?: string[];
  /** Mismatches and candidate errors kept as samples in the report. Defaults to 20. */
  samples?: number;
  /**
   * Where outcome lines go: a pino logger (`logger.warn(fields, message)`), or a Logger such as `console`
   * (`logger.warn(message, fields)`). Mismatches and candidate errors at warn; matches and skips at debug when
   * the logger has it. Defaults to none (the report only).
   */
  logger?: Logger | PinoLike;
}

/** The part of a pino logger shadow() uses. */
export interface PinoLike {
  child(...args: never[]): unknown;
  warn(fields: object, message: string): void;
  debug?(fields: object, message: string): void;
}

/** One outcome, as `observe()` listeners get it (for metrics). */
export interface ShadowEvent {
  route: string;
  outcome: 'match' | 'mismatch' | 'candidateError' | 'skipped' | 'notShadowed';
  /** Why it was skipped or not shadowed; the candidate's error code. */
  reason?: string;
  /** Time from sending the copy to the candidate's answer or failure (ms), when it was sent. */
  candidateMs?: number;
}

/** What the gateway exposes for a route with `shadow` (its `control`), and the standalone middleware carries. */
export interface ShadowControl {
  /** The tallies, the fields that differ, learned noise and samples. */
  report(): ShadowReport;
  /** Starts the tallies, samples and learned noise afresh. */
  reset(): void;
  /** Calls `listener` with every outcome; returns what unsubscribes it. */
  observe(listener: (event: ShadowEvent) => void): () => void;
}

/** The standalone middleware: the shadow's handler with its report and lifecycle. */
export interface ShadowMiddleware extends ShadowControl {
  (req: IncomingMessage, res: ServerResponse, next: Next): void;
  /** Closes the candidate's and secondary's pools. */
  close(): Promise<void>;
}

const DEFAULTS = { timeout: 5_000, connectTimeout: 1_000 };
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Differences kept per comparison (a sample shows fewer). */
const DIFFERENCE_LIMIT = 50;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function endpointShape(z: Z) {
  return z.union([
    z.string({ error: "must be a URL such as 'http://orders-v2:4001'" }),
    z.strictObject({ ...upstreamShape(z), timeout: duration(z).optional(), connectTimeout: duration(z).optional() }),
  ]);
}

/** shadow()'s options. */
export const shadowSchema = defineSchema((z) => {
  const count = (min: number) => z.number({ error: `must be an integer of at least ${min}` }).int({ error: `must be an integer of at least ${min}` }).min(min, { error: `must be an integer of at least ${min}` });
  const paths = z.array(z.string({ error: "must be a dot path like 'items[*].id'" }), { error: "must be a list of dot paths like ['updatedAt', 'items[*].id']" });
  const tolerance = z.number({ error: 'must be a non-negative number' }).min(0, { error: 'must be a non-negative number' });
  return z.strictObject(
    {
      candidate: endpointShape(z),
      secondary: endpointShape(z).optional(),
      percent: z.number({ error: 'must be a number from 0 to 100' }).min(0, { error: 'must be a number from 0 to 100' }).max(100, { error: 'must be a number from 0 to 100' }).default(100),
      unsafe: z.boolean({ error: 'must be true or false' }).default(false),
      timeout: duration(z).default(DEFAULTS.timeout),
      maxConcurrent: count(1).default(32),
      maxRequestBody: byteSize(z).default(64 * 1024),
      maxResponseBody: byteSize(z).default(1024 * 1024),
      compare: z
        .strictObject({
          headers: z.array(z.string().regex(HEADER_NAME, { error: 'must be a header name' }), { error: "must be a list of header names like ['content-type']" }).default(['content-type']),
          ignore: paths.default([]),
          unordered: z.union([z.boolean(), paths], { error: "must be true, false, or a list of array paths like ['items']" }).default(false),
          tolerance: z.union([tolerance, z.record(z.string(), tolerance)], { error: "must be a number, or an object of path → number like { total: 0.01 }" }).default(0),
        })
        .default({ headers: ['content-type'], ignore: [], unordered: false, tolerance: 0 }),
      redact: paths.default([]),
      samples: count(0).default(20),
      logger: z.custom<Logger | PinoLike>((value) => !!value && typeof value === 'object' && typeof (value as Logger).warn === 'function', { error: 'must be a logger with a warn() method (pino, console, …)' }).optional(),
    },
    { error: "must be an object like { candidate: 'http://orders-v2:4001' }." },
  );
});

type ShadowConfig = ReturnType<typeof shadowSchema>['_output'];
type ResolvedEndpoint = Exclude<ShadowConfig['candidate'], string>;

interface Endpoint {
  pool: UpstreamPool;
  timeout: number;
  connectTimeout: number;
}

type CopyResult = { ok: true; answer: RawAnswer; ms: number } | { ok: false; code: string; ms: number };

/** How endpoints get their pool: made here (standalone), or shared through the gateway (kept across reloads). */
type PoolSource = (role: 'candidate' | 'secondary', options: UpstreamOptions, optionPrefix: string) => UpstreamPool;

/**
 * One shadow: its endpoints, rules, report and the copies in flight. Wraps any final handler.
 */
class Shadow implements ShadowControl {
  readonly store: ShadowStore;
  private readonly candidate: Endpoint;
  private readonly secondary: Endpoint | undefined;
  private readonly compareConfig: CompareConfig;
  private readonly listeners = new Set<(event: ShadowEvent) => void>();
  private inFlight = 0;

  constructor(
    private readonly config: ShadowConfig,
    private readonly route: string,
    optionPrefix: string,
    pools: PoolSource,
    private readonly xForwarded: boolean,
    stores: (options: StoreOptions) => ShadowStore = (options) => new ShadowStore(options),
  ) {
    this.candidate = endpoint(config.candidate, 'candidate', config.timeout, optionPrefix, pools);
    this.secondary = config.secondary === undefined ? undefined : endpoint(config.secondary, 'secondary', config.timeout, optionPrefix, pools);
    let rules: DiffRules;
    let redact: JsonPath[];
    try {
      rules = compileRules({ ignore: config.compare.ignore, unordered: config.compare.unordered, tolerance: config.compare.tolerance });
    } catch (err) {
      const [where, ...rest] = (err as Error).message.split(' ');
      throw new ConfigError(`"${optionPrefix}compare.${where}" has an invalid path ${rest.join(' ')}. Paths look like 'updatedAt' or 'items[*].id'.`);
    }
    try {
      redact = config.redact.map((text) => {
        try {
          return parsePath(text);
        } catch (err) {
          throw new PathSyntaxError(`${JSON.stringify(text)}: ${(err as Error).message}`);
        }
      });
    } catch (err) {
      throw new ConfigError(`"${optionPrefix}redact" has an invalid path ${(err as PathSyntaxError).message}. Paths look like 'customer.email' or 'items[*].card'.`);
    }
    this.compareConfig = { headers: config.compare.headers.map((name) => name.toLowerCase()), rules, limit: DIFFERENCE_LIMIT, maxBytes: config.maxResponseBody };
    this.store = stores({
      route,
      candidate: this.candidate.pool.targets.map((target) => target.href),
      secondary: this.secondary?.pool.targets.map((target) => target.href) ?? [],
      samples: config.samples,
      redact,
    });
  }

  report(): ShadowReport {
    return this.store.report();
  }

  reset(): void {
    this.store.reset();
  }

  observe(listener: (event: ShadowEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** `final` wrapped: it answers the client; a copy goes to the candidate when the request is chosen. */
  wrap(final: Middleware): Middleware {
    const start = (req: IncomingMessage, res: ServerResponse) => this.start(req, res);
    const log = (message: string, fields: Record<string, unknown>) => this.log('warn', message, fields);
    const route = this.route;
    return function shadowMiddleware(req, res, next) {
      try {
        start(req, res);
      } catch (err) {
        // Whatever went wrong with the copy, the client is served as if there were no shadow.
        log('frontdoor shadow: the copy could not be made', { route, error: (err as Error)?.message });
      }
      final(req, res, next);
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.candidate.pool.close(), this.secondary?.pool.close()]);
  }

  /** Decides whether the request is copied; if so, watches the primary's answer and sends the copy. */
  private start(req: IncomingMessage, res: ServerResponse): void {
    const { config, store } = this;
    const context = getContext(req, res);
    store.seen();
    const method = (req.method ?? 'GET').toUpperCase();
    if (!config.unsafe && !SAFE_METHODS.has(method)) return this.notShadowed('method');
    if (config.percent < 100 && Math.random() * 100 >= config.percent) return this.notShadowed('sampling');
    if (this.inFlight >= config.maxConcurrent) return this.skipped('concurrency', req);
    const path = targetPath(req, context);
    if (path === undefined) return this.skipped('requestUnavailable', req);

    this.inFlight += 1;
    const rewritten = context.plan?.body !== undefined || req.readableEnded;
    const tee = teeRequestBody(req, config.maxRequestBody);
    const abort = new AbortController();
    const primary = new Promise<RawAnswer | SkipReason>((resolve) => {
      let status = 0;
      let headers = {};
      captureAnswer(req, res, config.maxResponseBody, {
        head(code, given) {
          status = code;
          headers = { ...given };
          return true;
        },
        done(body) {
          resolve(body ? { status, headers, body } : res.writableEnded ? 'primaryTooLarge' : 'primaryIncomplete');
        },
      });
    });
    const copies = tee.result.then(async (body): Promise<{ candidate: CopyResult; secondary?: CopyResult } | SkipReason> => {
      if (!body.ok) return body.reason;
      const request = (role: 'candidate' | 'secondary'): BufferedRequest => ({ method, path, headers: this.requestHeaders(req, context, role, rewritten), body: body.body });
      const [candidate, secondary] = await Promise.all([this.send(this.candidate, request('candidate'), req, abort.signal), this.secondary ? this.send(this.secondary, request('secondary'), req, abort.signal) : undefined]);
      return { candidate, secondary };
    });

    void primary
      .then(async (answer) => {
        if (typeof answer === 'string') {
          abort.abort();
          tee.cancel();
          await copies;
          return this.skipped(answer, req);
        }
        // The primary answered; a body it never read may never arrive: stop waiting for it after the timeout.
        const giveUp = setTimeout(() => tee.cancel(), this.candidate.timeout || DEFAULTS.timeout);
        giveUp.unref();
        const result = await copies;
        clearTimeout(giveUp);
        if (typeof result === 'string') return this.skipped(result, req);
        await this.compare(req, context, method, answer, result.candidate, result.secondary);
      })
      .catch((err: unknown) => this.log('warn', 'frontdoor shadow: the comparison failed', { route: this.route, requestId: context.requestId, error: (err as Error)?.message }))
      .finally(() => {
        this.inFlight -= 1;
      });
  }

  private async compare(req: IncomingMessage, context: RequestContext, method: string, primaryAnswer: RawAnswer, candidate: CopyResult, secondary: CopyResult | undefined): Promise<void> {
    const { store } = this;
    const base = { requestId: context.requestId, method, path: pathOnly(req, context) };
    if (!candidate.ok) {
      const sample = store.candidateError({ ...base, status: { primary: primaryAnswer.status }, error: candidate.code });
      this.emit({ outcome: 'candidateError', reason: candidate.code, candidateMs: candidate.ms });
      return this.log('warn', 'frontdoor shadow: the candidate failed', { route: this.route, outcome: 'candidate_error', ...lineOf(sample) });
    }
    const config = this.compareConfig;
    const [primary, other, second] = await Promise.all([prepareAnswer(primaryAnswer, config), prepareAnswer(candidate.answer, config), secondary?.ok ? prepareAnswer(secondary.answer, config) : undefined]);
    if (!primary) return this.skipped('primaryTooLarge', req);
    if (!other) {
      store.candidateError({ ...base, status: { primary: primary.status, candidate: candidate.answer.status }, error: 'ERR_UPSTREAM_BAD_RESPONSE' });
      return this.emit({ outcome: 'candidateError', reason: 'ERR_UPSTREAM_BAD_RESPONSE', candidateMs: candidate.ms });
    }
    const withBody = method !== 'HEAD';
    if (secondary && !secondary.ok) store.secondaryFailed();
    // Noise is learned only from a secondary that answered alike: a failing secondary says nothing about fields.
    if (second && second.status === primary.status) store.noise.learn(compareAnswers(primary, second, config, withBody));
    const differences: Difference[] = compareAnswers(primary, other, config, withBody, (field) => {
      if (!store.noise.isNoise(field)) return false;
      store.ignoredAsNoise();
      return true;
    });
    if (differences.length === 0) {
      store.match();
      this.emit({ outcome: 'match', candidateMs: candidate.ms });
      return this.log('debug', 'frontdoor shadow: the candidate answered alike', { route: this.route, outcome: 'match', ...base });
    }
    const sample = store.mismatch({ ...base, status: { primary: primary.status, candidate: other.status } }, differences);
    this.emit({ outcome: 'mismatch', candidateMs: candidate.ms });
    this.log('warn', 'frontdoor shadow: the candidate answered differently', { route: this.route, outcome: 'mismatch', ...lineOf(sample) });
  }

  /** Sends one copy; never rejects. */
  private async send(endpoint: Endpoint, request: BufferedRequest, req: IncomingMessage, signal: AbortSignal): Promise<CopyResult> {
    const startedAt = performance.now();
    try {
      const answer = await sendBuffered(endpoint.pool, request, { timeout: endpoint.timeout, connectTimeout: endpoint.connectTimeout, retries: 0, maxBytes: this.config.maxResponseBody, signal, req, attributes: { 'frontdoor.shadow': request.headers['x-frontdoor-shadow'] } });
      return { ok: true, answer, ms: performance.now() - startedAt };
    } catch (err) {
      const code = err instanceof GatewayError ? err.code : err instanceof CancelledError ? err.code : 'ERR_INTERNAL';
      return { ok: false, code, ms: performance.now() - startedAt };
    }
  }

  /**
   * The copy's headers, as proxy() builds the primary's: the client's without hop-by-hop and forged identity
   * headers, the plan's changes (identity from authenticate, headers()), the request id; and a marker.
   */
  private requestHeaders(req: IncomingMessage, context: RequestContext, role: 'candidate' | 'secondary', rewritten: boolean): Record<string, string> {
    const headers = forwardHeaders(req, { websocket: false, xForwarded: this.xForwarded });
    stripIdentityHeaders(headers);
    const plan = context.plan;
    if (plan?.removeHeaders) for (const name of plan.removeHeaders) delete headers[name];
    if (plan?.setHeaders) Object.assign(headers, plan.setHeaders);
    delete headers.host;
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    // A body a parser read (and decoded) or a feature rewrote is sent as the bytes at hand.
    if (rewritten) delete headers['content-encoding'];
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(name === 'cookie' ? '; ' : ', ') : String(value);
    out[REQUEST_ID_HEADER] = context.requestId;
    out['x-frontdoor-shadow'] = role;
    return out;
  }

  private notShadowed(reason: 'method' | 'sampling'): void {
    this.store.notChosen(reason);
    this.emit({ outcome: 'notShadowed', reason });
  }

  private skipped(reason: SkipReason, req: IncomingMessage): void {
    this.store.skip(reason);
    this.emit({ outcome: 'skipped', reason });
    this.log('debug', 'frontdoor shadow: the copy was skipped', { route: this.route, outcome: 'skipped', reason, requestId: getContext(req).requestId });
  }

  private emit(event: Omit<ShadowEvent, 'route'>): void {
    if (this.listeners.size === 0) return;
    const full = { route: this.route, ...event };
    for (const listener of this.listeners) {
      try {
        listener(full);
      } catch {
        // A listener's failure is its own: the shadow goes on.
      }
    }
  }

  /** One structured line: pino takes (fields, message), a plain Logger (message, fields). */
  private log(level: 'warn' | 'debug', message: string, fields: Record<string, unknown>): void {
    const logger = this.config.logger as (Logger & Partial<PinoLike>) | undefined;
    if (!logger) return;
    try {
      const pino = typeof logger.child === 'function';
      const write = level === 'warn' ? logger.warn : (logger as { debug?: (...args: unknown[]) => void }).debug;
      if (typeof write !== 'function') return;
      if (pino) write.call(logger, fields, message);
      else write.call(logger, message, fields);
    } catch {
      // A logger that throws does not reach the client.
    }
  }
}

function endpoint(value: string | ResolvedEndpoint, role: 'candidate' | 'secondary', timeout: number, optionPrefix: string, pools: PoolSource): Endpoint {
  const options = typeof value === 'string' ? { target: value } : value;
  const { timeout: own, connectTimeout, ...poolOptions } = options;
  return { pool: pools(role, poolOptions, `${optionPrefix}${role}.`), timeout: own ?? timeout, connectTimeout: connectTimeout ?? DEFAULTS.connectTimeout };
}

/** The path and query the copy is sent to: the one the route matched and forwards (the plan's), or the request's own. */
function targetPath(req: IncomingMessage, context: RequestContext): string | undefined {
  let url = context.plan?.url;
  if (url === undefined) {
    const target = normaliseTarget((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/');
    if (!target.ok) return undefined;
    url = target.path + target.search;
  }
  // A query parameter the route keeps from the upstream (an API key) is kept from the candidate too.
  return context.plan?.removeQuery?.size ? withoutQueryParameters(url, context.plan.removeQuery) : url;
}

function pathOnly(req: IncomingMessage, context: RequestContext): string {
  const url = context.plan?.url ?? (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** A sample as a log line shows it: the first differences only. */
function lineOf(sample: { requestId: string; method: string; path: string; status: object; differences?: ShadowDifference[]; error?: string }): Record<string, unknown> {
  const { requestId, method, path, status, differences, error } = sample;
  return { requestId, method, path, status, ...(differences ? { differences: differences.slice(0, 5) } : {}), ...(error ? { error } : {}) };
}

function resolve(options: ShadowOptions, optionPrefix: string): ShadowConfig {
  if (!options || typeof options !== 'object') throw new ConfigError(`"${optionPrefix}candidate" is missing. Example: shadow({ candidate: 'http://orders-v2:4001' }).`);
  return parseOptions(shadowSchema(), options, optionPrefix);
}

/**
 * Copies requests to a candidate and compares its answers with the primary's. Without `primary`, the primary is
 * whatever handles the request after it (the app's own handlers, `next()`); with one, it is that handler.
 *
 * @example
 * const orders = shadow({ candidate: 'http://orders-v2:4001', compare: { ignore: ['updatedAt'] } });
 * app.use('/api/orders', orders);             // the monolith's handlers below keep answering
 * app.get('/admin/shadow', shadowReportHandler(orders));
 */
export function shadow(options: ShadowOptions, primary?: Middleware, optionPrefix = ''): ShadowMiddleware {
  const config = resolve(options, optionPrefix);
  const own: UpstreamPool[] = [];
  const engine = new Shadow(config, 'shadow', optionPrefix, (_role, poolOptions, prefix) => {
    const pool = new UpstreamPool(poolOptions, prefix);
    own.push(pool);
    return pool;
  }, true);
  const handler = engine.wrap(primary ?? ((_req, _res, next) => next()));
  const middleware = function shadowMiddleware(req: IncomingMessage, res: ServerResponse, next: Next) {
    handler(req, res, next);
  } as ShadowMiddleware;
  middleware.report = () => engine.report();
  middleware.reset = () => engine.reset();
  middleware.observe = (listener) => engine.observe(listener);
  middleware.close = () => engine.close();
  return middleware;
}

/**
 * An admin handler serving shadow reports as JSON: of a standalone shadow(), or of a gateway (every shadowed
 * route, or `?route=name`). Mount it where only operators reach it.
 *
 * @example
 * app.get('/admin/shadow', adminOnly, shadowReportHandler(gw));
 */
export function shadowReportHandler(source: ShadowControl | { shadowReport(route?: string): ShadowReport | ShadowReport[] | undefined }): Middleware {
  const usable = typeof (source as ShadowControl)?.report === 'function' || typeof (source as { shadowReport?: unknown })?.shadowReport === 'function';
  if (!usable) throw new ConfigError('shadowReportHandler() needs a gateway (gw) or a shadow() middleware to read the reports from.');
  return function shadowReportMiddleware(req, res) {
    const route = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('route') ?? undefined;
    const report = typeof (source as ShadowControl).report === 'function' ? (source as ShadowControl).report() : (source as { shadowReport(route?: string): ShadowReport | ShadowReport[] | undefined }).shadowReport(route);
    const status = report === undefined ? 404 : 200;
    const body = JSON.stringify(report ?? { title: 'No shadow report', detail: `No shadowed route is called ${JSON.stringify(route)}.` });
    res.writeHead(status, { 'content-type': status === 200 ? 'application/json' : 'application/problem+json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
}

/**
 * The route option `shadow`: wraps whatever answers the route (its upstream, or the app's own handler when it has
 * none) and copies requests to a candidate. Registered last of the wrappers, so it sees the answer the client gets,
 * whichever of cutover, fallback, upstream or app gave it. Its control is the route's shadow report.
 */
export const shadowFeature: FeatureDescriptor = {
  option: 'shadow',
  phase: 'final',
  wraps: { needsUpstream: false },
  schemas: defineSchema(() => ({ option: shadowSchema() })),
  upgrade: { apply: false, reason: 'A WebSocket connection is a stream of messages, not a request and its answer: there is nothing to copy to a candidate and compare.' },
  build(value, scope) {
    const prefix = `${scope.optionPrefix}shadow.`;
    const config = resolve(value as ShadowOptions, prefix);
    // Pools are shared parts: an unchanged candidate keeps its keep-alive sockets and health across a reload.
    const pools: PoolSource = (role, poolOptions, optionPrefix) =>
      scope.shared.get('shadow-pool', `${scope.routeName}\u0000${role}\u0000${fingerprint(poolOptions)}`, poolOptions, `"${optionPrefix.slice(0, -1)}"`, `"${optionPrefix.slice(0, -1)}"`, () => new UpstreamPool(poolOptions, optionPrefix), (pool) => pool.close());
    // The report too: routes sharing a name and the same options share one, and an unchanged route keeps it across a reload.
    const where = `"${prefix.slice(0, -1)}"`;
    const stores = (options: StoreOptions) => scope.shared.get('shadow-report', `${scope.routeName}\u0000${fingerprint(config)}`, config, where, where, () => new ShadowStore(options));
    const engine = new Shadow(config, scope.routeName, prefix, pools, scope.route.xForwarded !== false, stores);
    return {
      wrapFinal: (final) => engine.wrap(final),
      control: { report: () => engine.report(), reset: () => engine.reset(), observe: (listener) => engine.observe(listener) } satisfies ShadowControl,
    };
  },
};
