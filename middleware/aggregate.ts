/**
 * aggregate(): one client request, several upstream calls, one JSON answer (backend-for-frontend). Calls run in
 * parallel unless one waits for another's result (`after`); each has a timeout and the whole a deadline; an
 * optional call that fails leaves `null` and an entry in `errors`, a required one fails the request (502/504).
 * Calls go through the shared upstream machinery (lib/upstream-request.ts): pools with keep-alive, health and
 * ejection, retries of idempotent calls, a CLIENT span and a metrics result per attempt.
 *
 * Works alone (`app.get('/home', authenticate(…), aggregate({ calls }))`) and as the route option `aggregate`,
 * a final handler that takes the place of `upstream`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendAnswer } from '../lib/aggregate/answer';
import { requestBasis, scheduledCall } from '../lib/aggregate/call';
import type { CompiledCall } from '../lib/aggregate/call';
import { checkCallGraph, checkCallNames } from '../lib/aggregate/graph';
import { runCalls } from '../lib/aggregate/run';
import type { CallFailure } from '../lib/aggregate/run';
import { compileTemplate } from '../lib/aggregate/template';
import type { ByteSize } from '../lib/byte-size';
import { getConsumer } from '../lib/consumer';
import type { Consumer } from '../lib/consumer';
import { getContext, onResponseClose } from '../lib/context';
import type { Duration } from '../lib/duration';
import { ConfigError, GatewayError } from '../lib/errors';
import { closest } from '../lib/options';
import type { ErrorMode, FeatureDescriptor } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { respondOrNext } from '../lib/problem';
import { spanEvent } from '../lib/telemetry';
import { byteSize, defineSchema, duration, errorMode, fn, parseOptions } from '../lib/schema';
import type { SharedParts } from '../lib/scope';
import { UpstreamOptions, UpstreamPool, upstreamShape } from '../lib/upstream-pool';
import type { RouteUpstreamOptions } from './proxy';

/** One upstream call of an aggregation: `{ url }`, or `{ upstream, path }`. */
export interface AggregateCall {
  /**
   * The URL to GET, with placeholders: `'http://users:4002/users/{consumer.id}?limit={query.limit}'`. Placeholders
   * go in the path and query only (the gateway calls only hosts it is configured with); every value is
   * percent-encoded for its place. Sources: `{params.x}`, `{query.x}`, `{headers.x}`, `{consumer.id}`,
   * `{consumer.tier}`, and `{<call>.<field.path>}` for a call listed in `after`.
   */
  url?: string;
  /**
   * The upstream to call, as a route's `upstream`: a URL, the name of one of the gateway's `upstreams` (its pool,
   * health and keep-alive sockets are shared), or `{ targets, health, timeout, retries, … }`. Used with `path`.
   */
  upstream?: string | RouteUpstreamOptions;
  /** With `upstream`: the path and query to GET, with placeholders as in `url`, e.g. `'/orders?user={consumer.id}'`. */
  path?: string;
  /** Calls this one starts after; their results may be used in its placeholders. Defaults to none: it starts at once. */
  after?: string[];
  /** A failure gives `null` in this call's place and an entry in `errors`, instead of failing the request. Defaults to false. */
  optional?: boolean;
  /** Time for one attempt, up to the last byte of the answer. Defaults to the upstream's `timeout`, else the deadline. */
  timeout?: Duration;
  /** Further attempts on another target after a refused connection, a connect timeout or a reset. Defaults to the upstream's `retries`, else 2. */
  retries?: number;
  /**
   * Client headers this call also gets, e.g. `['authorization']` or `['accept-language']`. Defaults to none: the
   * client's Cookie and Authorization never reach a call unless listed here.
   */
  forward?: string[];
  /** Largest answer accepted; a larger one is a failure of the call. Defaults to `'1mb'`. */
  maxBytes?: ByteSize;
}

/** Why a call gave no result: an entry of the answer's `errors`. */
export interface AggregateCallError {
  call: string;
  /** ERR_UPSTREAM_TIMEOUT, ERR_UPSTREAM_UNAVAILABLE, ERR_UPSTREAM_BAD_RESPONSE (not JSON), ERR_AGGREGATE_CALL_FAILED (non-2xx, missing value), ERR_AGGREGATE_TIMEOUT (deadline)… */
  code: string;
  /** The upstream's status, when it answered. */
  status?: number;
  detail: string;
}

/** What `shape` gets besides the results. */
export interface AggregateShapeContext {
  /** The failed optional calls (their results are null). */
  errors: AggregateCallError[];
  /** The authenticated consumer, when authentication ran. */
  consumer: Consumer | undefined;
  req: IncomingMessage;
}

export interface AggregateOptions {
  /** The calls, by name: `{ profile: { url: '…' }, orders: { upstream: 'orders', path: '…', optional: true } }`. At most 32. */
  calls: Record<string, AggregateCall>;
  /** Time for the whole aggregation; a required call still running then is a 504. Defaults to `'10s'`. */
  deadline?: Duration;
  /**
   * Builds the answer from the results (null for failed optional calls). Defaults to `{ <call>: result, …, errors }`
   * (`errors` only when a call failed). May return a Promise. A throw is a 502 ERR_TRANSFORM_FAILED, logged.
   */
  shape?: (results: Record<string, unknown>, ctx: AggregateShapeContext) => unknown;
  /**
   * Aggregations in flight at once; more are answered 503 ERR_OVERLOADED with Retry-After. In a gateway the count
   * is the gateway's (every route with `aggregate` adds to it) and each route compares it with its own limit.
   * Defaults to 1000.
   */
  maxInFlight?: number;
  /** Set X-Forwarded-For/Proto/Host on every call. Defaults to true. */
  xForwarded?: boolean;
  /** Answer errors as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** The middleware, with what it holds. */
export interface AggregateMiddleware {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Closes the pools it created (shared and named ones belong to the gateway). */
  close(): Promise<void>;
  /** Every pool its calls go through. */
  readonly pools: readonly UpstreamPool[];
}

/** Defaults, in one place. */
const DEFAULTS = { deadline: 10_000, connectTimeout: 5_000, retries: 2, maxBytes: 1024 * 1024, maxInFlight: 1000 };
const MAX_CALLS = 32;
const NOT_FORWARDABLE = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer', 'expect', 'x-request-id']);
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const nonNegativeInteger = { error: 'must be a non-negative integer' };

export const aggregateSchema = defineSchema((z) => {
  const limits = {
    connectTimeout: duration(z).optional(),
    timeout: duration(z).optional(),
    retries: z.number(nonNegativeInteger).int(nonNegativeInteger).min(0, nonNegativeInteger).optional(),
  };
  const call = z.strictObject(
    {
      url: z.string({ error: "must be a URL template such as 'http://users:4002/users/{consumer.id}'" }).optional(),
      upstream: z.union([z.string(), z.strictObject({ ...upstreamShape(z), ...limits })], { error: 'must be a URL, the name of an upstream, or { target | targets, … }' }).optional(),
      path: z.string({ error: "must be a path template such as '/orders?user={consumer.id}'" }).optional(),
      after: z.array(z.string(), { error: 'must be a list of call names' }).optional(),
      optional: z.boolean().optional(),
      timeout: duration(z).optional(),
      retries: limits.retries,
      forward: z.array(z.string().regex(HEADER_NAME, { error: 'must be a header name' }), { error: "must be a list of header names, e.g. ['authorization']" }).optional(),
      maxBytes: byteSize(z).optional(),
    },
    { error: "must be a call like { url: 'http://users:4002/users/{consumer.id}' } or { upstream: 'users', path: '/users/{consumer.id}' }" },
  );
  return z.strictObject(
    {
      calls: z.record(z.string(), call, { error: "must be an object of name → call, e.g. { profile: { url: 'http://users:4002/users/{consumer.id}' } }" }),
      deadline: duration(z).optional(),
      shape: fn<(results: Record<string, unknown>, ctx: AggregateShapeContext) => unknown>(z, '(results, ctx) => answer').optional(),
      maxInFlight: z.number({ error: 'must be a positive integer' }).int({ error: 'must be a positive integer' }).min(1, { error: 'must be a positive integer' }).optional(),
      xForwarded: z.boolean().optional(),
      onError: errorMode(z).optional(),
    },
    { error: "must be an object like { calls: { profile: { url: 'http://users:4002/users/{consumer.id}' } }, deadline: '1s' }" },
  );
});

/** What a gateway lends an aggregation: its shared parts (named upstreams, pools, the in-flight count). */
interface GatewayScope {
  shared: SharedParts;
  /** Names of the gateway's `upstreams`, for "did you mean". */
  upstreamNames: readonly string[];
}

/** A gateway's named upstream, as proxy.ts keeps it in the shared parts (kind 'upstream'). */
interface NamedUpstream {
  pool: UpstreamPool;
  limits: { connectTimeout?: number; timeout?: number; retries?: number };
}

type Limits = NamedUpstream['limits'];

/**
 * Creates the aggregation middleware.
 *
 * @example
 * app.get('/home', authenticate({ jwt }), aggregate({
 *   calls: {
 *     profile: { url: 'http://users:4002/users/{consumer.id}' },
 *     orders: { url: 'http://orders:4001/orders?user={consumer.id}&limit={query.limit}', optional: true, timeout: '300ms' },
 *     recs: { url: 'http://recs:4003/for/{profile.segment}', after: ['profile'], optional: true },
 *   },
 *   deadline: '1s',
 * }));
 */
export function aggregate(options: AggregateOptions, optionPrefix = '', gatewayScope?: GatewayScope): AggregateMiddleware {
  if (!options || typeof options !== 'object') throw new ConfigError(`aggregate() needs options. Example: aggregate({ calls: { profile: { url: 'http://users:4002/users/{consumer.id}' } } }).`);
  const config = parseOptions(aggregateSchema(), options, optionPrefix);
  const name = (key: string) => optionPrefix + key;
  const deadline = config.deadline ?? DEFAULTS.deadline;
  if (deadline <= 0) throw new ConfigError(`"${name('deadline')}" must be longer than 0 ms; received ${JSON.stringify(options.deadline)}.`);
  const maxInFlight = config.maxInFlight ?? DEFAULTS.maxInFlight;
  const xForwarded = config.xForwarded !== false;
  const onError = config.onError ?? 'respond';
  const shape = config.shape;

  const names = Object.keys(config.calls);
  if (names.length === 0) throw new ConfigError(`"${name('calls')}" needs at least one call. Example: calls: { profile: { url: 'http://users:4002/users/{consumer.id}' } }.`);
  if (names.length > MAX_CALLS) throw new ConfigError(`"${name('calls')}" has ${names.length} calls; at most ${MAX_CALLS} are allowed in one aggregation.`);
  checkCallNames(names, name('calls'));

  const owned: UpstreamPool[] = [];
  const pools = new Set<UpstreamPool>();
  const compiled: CompiledCall[] = [];
  try {
    for (const callName of names) compiled.push(compileCall(callName, config.calls[callName], options.calls[callName], `${name('calls')}.${callName}`));
    checkCallGraph(Object.fromEntries(compiled.map((call) => [call.name, { after: call.after, reads: call.template.calls }])), name('calls'));
  } catch (err) {
    for (const pool of owned) void pool.close();
    throw err;
  }

  function compileCall(callName: string, call: (typeof config.calls)[string], given: AggregateCall, option: string): CompiledCall {
    const { path, target, limits } = resolveTarget(call, given, option);
    const template = compileTemplate(path, `${option}.${call.url !== undefined ? 'url' : 'path'}`, names);
    for (const part of [...template.path, ...(template.query ?? [])]) {
      if (typeof part !== 'string' && part.source.from === 'headers' && CREDENTIAL_HEADERS.has(part.source.key)) {
        throw new ConfigError(`"${option}" puts the client's ${part.source.key} header into a URL, where it would be logged by every server on the way; use forward: ['${part.source.key}'] to send it as a header.`);
      }
    }
    const forward = (call.forward ?? []).map((header) => header.toLowerCase());
    const refused = forward.find((header) => NOT_FORWARDABLE.has(header));
    if (refused) throw new ConfigError(`"${option}.forward" lists "${refused}", which the gateway sets itself on every call.`);
    pools.add(target);
    return {
      name: callName,
      optional: call.optional === true,
      after: call.after ?? [],
      template,
      pool: target,
      timeout: call.timeout ?? limits.timeout ?? deadline,
      connectTimeout: limits.connectTimeout ?? DEFAULTS.connectTimeout,
      retries: call.retries ?? limits.retries ?? DEFAULTS.retries,
      maxBytes: call.maxBytes ?? DEFAULTS.maxBytes,
      forward,
    };
  }

  /** The call's pool, its limits, and its path template. */
  function resolveTarget(call: (typeof config.calls)[string], given: AggregateCall, option: string): { path: string; target: UpstreamPool; limits: Limits } {
    if (call.url !== undefined) {
      if (call.upstream !== undefined || call.path !== undefined) throw new ConfigError(`"${option}" has "url" and "${call.upstream !== undefined ? 'upstream' : 'path'}"; a call is { url } or { upstream, path }.`);
      const match = /^(https?:\/\/[^/?#]*)(.*)$/i.exec(call.url);
      if (!match) throw new ConfigError(`"${option}.url" must be an absolute http(s) URL such as 'http://users:4002/users/{consumer.id}'; received ${JSON.stringify(call.url)}.`);
      const [, origin, rest] = match;
      if (origin.includes('{')) throw new ConfigError(`"${option}.url" has a placeholder in its host; placeholders go in the path and query only, so a call reaches only the hosts it is configured with.`);
      checkTargetUrl(origin, `${option}.url`);
      return { path: rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest, target: targetPool(origin, `${option}.url`), limits: {} };
    }
    if (call.upstream === undefined) throw new ConfigError(`"${option}" needs "url", or "upstream" and "path". Example: { url: 'http://users:4002/users/{consumer.id}' } or { upstream: 'users', path: '/users/{consumer.id}' }.`);
    if (call.path === undefined) throw new ConfigError(`"${option}.path" is missing: a call with "upstream" says which path to GET, e.g. path: '/users/{consumer.id}'.`);
    const upstream = call.upstream;
    if (typeof upstream === 'string') {
      if (/^[A-Za-z][A-Za-z0-9_-]*$/.test(upstream)) return { path: call.path, ...namedUpstream(upstream, `${option}.upstream`) };
      checkTargetUrl(upstream, `${option}.upstream`);
      return { path: call.path, target: targetPool(upstream, `${option}.upstream`), limits: {} };
    }
    // The pool parses its own options as given (durations as written); the limits come resolved from our schema.
    const { target, targets, sticky, health, tls, agent } = given.upstream as UpstreamOptions;
    const poolOptions = Object.fromEntries(Object.entries({ target, targets, sticky, health, tls, agent }).filter(([, value]) => value !== undefined));
    const pool = new UpstreamPool(poolOptions, `${option}.upstream.`);
    owned.push(pool);
    return { path: call.path, target: pool, limits: { connectTimeout: upstream.connectTimeout, timeout: upstream.timeout, retries: upstream.retries } };
  }

  function namedUpstream(upstreamName: string, option: string): { target: UpstreamPool; limits: Limits } {
    const named = gatewayScope?.shared.find<NamedUpstream>('upstream', upstreamName);
    if (named) return { target: named.pool, limits: named.limits };
    if (!gatewayScope) throw new ConfigError(`"${option}" names the upstream ${JSON.stringify(upstreamName)}, but aggregate() used alone has no named upstreams: give a URL or { targets }, or use the route option "aggregate" of a gateway with "upstreams".`);
    const suggestion = closest(upstreamName, gatewayScope.upstreamNames);
    throw new ConfigError(`"${option}" names the upstream ${JSON.stringify(upstreamName)}, which is not in "upstreams" (${gatewayScope.upstreamNames.join(', ') || 'none defined'}).${suggestion ? ` Did you mean "${suggestion}"?` : ' A URL needs its scheme: http://host:port.'}`);
  }

  /** One pool per target URL: the gateway's (shared by its routes) or this middleware's own. */
  function targetPool(target: string, option: string): UpstreamPool {
    if (gatewayScope) {
      return gatewayScope.shared.get('aggregate target', target, target, `"${option}"`, `"${option}"`, () => new UpstreamPool({ target }, `${option}.`), (pool) => pool.close());
    }
    const existing = owned.find((pool) => pool.targets.length === 1 && pool.targets[0].href === target.replace(/\/$/, ''));
    if (existing) return existing;
    const pool = new UpstreamPool({ target }, `${option}.`);
    owned.push(pool);
    return pool;
  }

  // The in-flight count: the gateway's (every aggregating route adds to it), or this middleware's.
  const inFlight = gatewayScope ? gatewayScope.shared.get('aggregate in-flight', 'gateway', {}, 'aggregate', 'aggregate', () => ({ count: 0 })) : { count: 0 };

  const middleware = function aggregateMiddleware(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void {
    const context = getContext(req, res);
    const fail = (err: unknown) => respondOrNext(onError, req, res, next, err);
    if (inFlight.count >= maxInFlight) {
      return fail(new GatewayError('ERR_OVERLOADED', { detail: 'Too many aggregated requests are in flight. Try again shortly.', headers: { 'Retry-After': '1' } }));
    }
    inFlight.count += 1;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      inFlight.count -= 1;
    };
    const clientGone = new AbortController();
    onResponseClose(context, res, () => {
      release();
      if (!res.writableFinished) clientGone.abort();
    });

    let basis: ReturnType<typeof requestBasis>;
    try {
      basis = requestBasis(req, xForwarded);
    } catch (err) {
      release();
      return fail(err);
    }
    const scheduled = compiled.map((call) => scheduledCall(call, basis));
    runCalls(scheduled, deadline, clientGone.signal)
      .then(async (result) => {
        release();
        if (result.kind === 'cancelled') return;
        reportDeadlineMisses(req, result.kind === 'failed' ? [result.failure] : result.errors);
        if (result.kind === 'failed') return fail(callFailed(result.failure));
        const errors = result.errors.map(publicError);
        const body = await shaped(result.results, { errors, consumer: getConsumer(req), req });
        const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
        if (errors.length > 0) headers['partial-response'] = errors.map((error) => error.call).join(', ');
        await sendAnswer(req, res, 200, headers, body);
      })
      .catch(fail);
  } as AggregateMiddleware;

  /** The answer's bytes: `shape`'s value, or the results with `errors`. */
  async function shaped(results: Record<string, unknown>, ctx: AggregateShapeContext): Promise<Buffer> {
    let text: string | undefined;
    try {
      const value = shape ? await shape(results, ctx) : ctx.errors.length > 0 ? { ...results, errors: ctx.errors } : results;
      text = JSON.stringify(value);
    } catch (err) {
      throw new GatewayError('ERR_TRANSFORM_FAILED', { detail: 'The aggregated answer could not be shaped.', cause: err, logCause: true });
    }
    if (text === undefined) throw new GatewayError('ERR_TRANSFORM_FAILED', { detail: 'The aggregated answer could not be shaped.', cause: new Error(`${optionPrefix}shape returned no JSON value (undefined or a function).`), logCause: true });
    return Buffer.from(text);
  }

  middleware.close = async function closeAggregate(): Promise<void> {
    await Promise.all(owned.map((pool) => pool.close()));
  };
  Object.defineProperty(middleware, 'pools', { value: [...pools], enumerable: true });
  return middleware;
}

/** A required call's failure, as the client's problem: 504 when it ran out of time, 502 otherwise, naming the call. */
function callFailed(failure: CallFailure): GatewayError {
  const code = failure.timedOut ? 'ERR_AGGREGATE_TIMEOUT' : 'ERR_AGGREGATE_CALL_FAILED';
  // Call failures read as predicates ("did not answer before the deadline"); an upstream error's detail is a sentence.
  const sentence = /^[A-Z]/.test(failure.detail);
  const detail = sentence ? `The call "${failure.call}" failed: ${failure.detail.replace(/\.$/, '')}.` : `The call "${failure.call}" ${failure.detail.replace(/\.$/, '')}.`;
  return new GatewayError(code, { detail, extensions: { call: failure.call } });
}

/** Calls cut off by the deadline never report themselves (they were aborted): their span events are written here. */
function reportDeadlineMisses(req: IncomingMessage, failures: readonly CallFailure[]): void {
  for (const failure of failures) {
    if (failure.code === 'ERR_AGGREGATE_TIMEOUT') spanEvent(req, 'frontdoor.aggregate.call', { 'frontdoor.aggregate.call': failure.call, 'frontdoor.aggregate.outcome': 'timeout', 'frontdoor.error.code': failure.code });
  }
}

function publicError(failure: CallFailure): AggregateCallError {
  return { call: failure.call, code: failure.code, ...(failure.status === undefined ? {} : { status: failure.status }), detail: failure.detail };
}

/** Refuses a target URL the pool could not use, naming the call's option (the pool would name its own). */
function checkTargetUrl(value: string, option: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`"${option}" must be an absolute http(s) URL such as 'http://127.0.0.1:4002'; received ${JSON.stringify(value)}.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`"${option}" must use http:// or https://; received ${JSON.stringify(value)}.`);
  if (url.username || url.password) throw new ConfigError(`"${option}" must not carry credentials in the URL.`);
}

/**
 * The route option `aggregate`: a final handler in place of `upstream` (a route has one). Its calls may name the
 * gateway's `upstreams`, sharing their pools; the in-flight bound counts the gateway's aggregations.
 */
export const aggregateFeature: FeatureDescriptor = {
  option: 'aggregate',
  phase: 'final',
  schemas: defineSchema(() => ({ option: aggregateSchema() })),
  upgrade: { apply: false, reason: 'An aggregated answer is built from several buffered HTTP calls; there is no single upstream a WebSocket could be handed to.' },
  build(value, scope) {
    const option = `${scope.optionPrefix}aggregate`;
    const upstreamNames = Object.keys((scope.gateway.upstreams as object | undefined) ?? {});
    const middleware = aggregate(withGatewayErrors(value as AggregateOptions, option), `${option}.`, { shared: scope.shared, upstreamNames });
    // A part reports one pool (health metrics, gw.events); a route calling several upstreams reports them through its calls' results.
    return { handler: middleware, close: () => middleware.close(), pools: middleware.pools };
  },
};
