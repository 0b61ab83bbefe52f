/**
 * cache(): response caching in front of any final handler (the proxy, aggregate, the app's own handlers), alone
 * or as the route option `cache`, after auth, authorize and the rate limit (a hit still counts against the
 * caller's limit). Correctness first: personal requests are never served a shared entry, and what the upstream
 * says (Set-Cookie, Cache-Control, Vary) is obeyed. Memory is bounded (lru-cache), concurrent misses make one
 * upstream request, and a Redis store is shared by gateway instances. Why not plain apicache: docs/cache.md.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ByteSize } from '../lib/byte-size';
import { captureAnswer } from '../lib/cache/capture';
import type { StoredAnswer, StoredValue } from '../lib/cache/entry';
import { storableHeaders } from '../lib/cache/entry';
import { normaliseQuery, primaryKey, variantKey } from '../lib/cache/key';
import { MemoryCacheStore } from '../lib/cache/memory-store';
import type { AnswerDecision, BypassReason } from '../lib/cache/policy';
import { answerDecision, consumerKey, notModified, requestDecision } from '../lib/cache/policy';
import { RedisCacheStore } from '../lib/cache/redis-store';
import { SingleFlight } from '../lib/cache/single-flight';
import type { CacheStore } from '../lib/cache/store';
import { getContext, onResponseClose } from '../lib/context';
import type { Duration } from '../lib/duration';
import { ConfigError } from '../lib/errors';
import { consoleLogger, Logger } from '../lib/log';
import { normaliseTarget } from '../lib/path';
import type { FeatureDescriptor, Middleware } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { redisHandle, redisOptionSchema } from '../lib/redis';
import type { RedisOption } from '../lib/redis';
import { byteSize, defineSchema, duration, parseOptions } from '../lib/schema';
import type { Z } from '../lib/schema';
import type { SharedParts } from '../lib/scope';
import { spanEvent } from '../lib/telemetry';

export interface CacheOptions {
  /** How long an answer is served from the cache: ms or a string like `'30s'`. Required. The upstream's `Cache-Control` may shorten it. */
  ttl: Duration;
  /** Statuses that are stored. Defaults to `[200]`. 206, 304, 401, 403, 407 and 5xx are refused. */
  statuses?: number[];
  /** Query parameters left out of the key (cache busters, tracking): `['_', 'utm_source']`. Defaults to none. */
  ignoreQuery?: string[];
  /**
   * Key entries by the authenticated consumer (`req.user`), so requests with credentials are cached too, each
   * consumer apart; an anonymous request never reads a consumer's entry. Needs authentication before the cache.
   * Defaults to false: requests with credentials (see `credentialHeaders`) or a consumer bypass the cache.
   */
  perConsumer?: boolean;
  /** Request headers that make a request personal. Defaults to `['authorization', 'proxy-authorization', 'cookie', 'x-api-key']`; add your own credential headers. */
  credentialHeaders?: string[];
  /** Let the upstream's `Cache-Control` (`s-maxage`, `max-age`) and `Expires` shorten `ttl`. Defaults to true. */
  respectCacheControl?: boolean;
  /**
   * Let clients skip or refresh the cache (`Cache-Control: no-cache` / `no-store`, `Pragma: no-cache`,
   * `x-apicache-bypass`, `x-apicache-force-fetch`). Defaults to false: any client could otherwise send every
   * request to the upstream.
   */
  allowClientBypass?: boolean;
  /** Most entries held in memory. Defaults to 10 000. */
  maxEntries?: number;
  /** Most bytes held in memory (bodies, headers and keys). Defaults to `'64mb'`. */
  maxBytes?: ByteSize;
  /** Largest answer stored; larger ones stream through uncached, never buffered past this. Defaults to `'1mb'`. */
  maxEntrySize?: ByteSize;
  /** How long concurrent misses for one key wait for the request filling it before going upstream. Defaults to `'5s'`. */
  waitTimeout?: Duration;
  /** Upstream header listing the answer's tags for invalidateTag() (removed from the client's answer), or false. Defaults to `'cache-tag'`. */
  tagHeader?: string | false;
  /** A successful POST, PUT, PATCH or DELETE through the cache purges its path's entries. Defaults to true. */
  invalidateOnWrite?: boolean;
  /** Shared store: a `redis://` URL, `{ cluster: [urls] }`, `{ sentinels, name }`, or an ioredis / node-redis client (docs/scaling.md). Defaults to memory (per process). */
  redis?: RedisOption;
  /** Timeout of each Redis call; past it the request is served uncached. Defaults to `'250ms'`. */
  storeTimeout?: Duration;
  /** Store name: caches with one name share a store (and, with `redis`, their keys across instances). Defaults to the route, or `'default'` alone. */
  name?: string;
  /** Where operator warnings go (Redis outages, settings that cache nothing). Defaults to the console. */
  logger?: Logger;
}

/** The middleware, with its invalidation API. */
export interface CacheMiddleware extends Middleware {
  /** Purges `path` and everything under it (`'/api/catalog'` covers `/api/catalog/7`), every query, host and consumer; `{ prefix: false }` purges the path alone. Resolves with the number of entries purged. */
  invalidate(path: string, options?: { prefix?: boolean }): Promise<number>;
  /** Purges the entries whose upstream answer carried `tag` in the tag header. */
  invalidateTag(tag: string): Promise<number>;
  /** Entries and counted bytes held in memory (undefined for the Redis store, whose memory is Redis's). */
  stats(): { entries: number; bytes: number } | undefined;
  /** Releases the store (the Redis connection). */
  close(): Promise<void>;
}

/** What a gateway offers over the caches of all its routes. */
export interface CacheControl {
  invalidate(path: string, options?: { prefix?: boolean }): Promise<number>;
  invalidateTag(tag: string): Promise<number>;
}

const NEVER_STORED = [206, 304, 401, 403, 407];
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MAX_TAGS = 64;
const MAX_TAG_LENGTH = 256;

export const cacheSchema = defineSchema((z: Z) => {
  const headerName = z.string().regex(TOKEN, { error: 'must be a header name' });
  return z.strictObject(
    {
      ttl: duration(z).refine((ms) => ms >= 1, { error: 'must be at least 1ms' }),
      statuses: z
        .array(z.number().int({ error: 'must be an HTTP status' }).min(200, { error: 'must be an HTTP status from 200' }).max(499, { error: 'must be below 500: server errors are never cached' }))
        .refine((list) => !list.some((status) => NEVER_STORED.includes(status)), { error: `must not list ${NEVER_STORED.join(', ')}: partial, not-modified and authentication answers are never cached` })
        .default([200]),
      ignoreQuery: z.array(z.string().min(1, { error: 'must be a query parameter name' })).default([]),
      perConsumer: z.boolean({ error: 'must be true or false' }).default(false),
      credentialHeaders: z.array(headerName).default(['authorization', 'proxy-authorization', 'cookie', 'x-api-key']),
      respectCacheControl: z.boolean({ error: 'must be true or false' }).default(true),
      allowClientBypass: z.boolean({ error: 'must be true or false' }).default(false),
      maxEntries: z.number({ error: 'must be a positive integer' }).int({ error: 'must be a positive integer' }).min(1, { error: 'must be a positive integer' }).default(10_000),
      maxBytes: byteSize(z).refine((size) => size >= 1024, { error: 'must be at least 1kb' }).default(64 * 1024 * 1024),
      maxEntrySize: byteSize(z).default(1024 * 1024),
      waitTimeout: duration(z).default(5000),
      tagHeader: z.union([headerName, z.literal(false)]).default('cache-tag'),
      invalidateOnWrite: z.boolean({ error: 'must be true or false' }).default(true),
      redis: redisOptionSchema(z).optional(),
      storeTimeout: duration(z).refine((ms) => ms >= 1, { error: 'must be at least 1ms' }).default(250),
      name: z.string({ error: 'must be a non-empty string.' }).min(1, { error: 'must be a non-empty string.' }).optional(),
      logger: z
        .custom<Logger>((value) => !!value && typeof (value as Logger).warn === 'function' && typeof (value as Logger).error === 'function', {
          error: 'must be a logger with warn() and error() methods (pino, console or winston).',
        })
        .default(consoleLogger),
    },
    { error: "must be an object, e.g. cache({ ttl: '30s' })." },
  );
});

type CacheConfig = ReturnType<ReturnType<typeof cacheSchema>['parse']>;

/** What a fill hands to the requests that waited for it. */
interface Filled {
  answer: StoredAnswer;
  /** The key it was stored under (a variant's, when it varies). */
  key: string;
  vary: string[];
}

/** Builds the store a config asks for. */
function buildStore(config: CacheConfig, name: string, option: (key: string) => string): CacheStore {
  if (config.redis === undefined) return new MemoryCacheStore({ maxEntries: config.maxEntries, maxBytes: config.maxBytes });
  const handle = redisHandle(config.redis, option('redis'));
  return new RedisCacheStore(handle.send, `frontdoor:cache:{${name}}:`, config.storeTimeout, config.logger, () => handle.release());
}

/**
 * @example
 * app.use('/api/catalog', cache({ ttl: '30s', ignoreQuery: ['_'] }), proxy({ target: 'http://127.0.0.1:4001' }));
 */
export function cache(options: CacheOptions, optionPrefix = ''): CacheMiddleware {
  const config = parseOptions(cacheSchema(), options, optionPrefix);
  const name = config.name ?? 'default';
  const store = buildStore(config, name, (key) => `${optionPrefix}${key}`);
  return cacheWithStore(config, store, async () => store.close());
}

/** The middleware over a store it may not own (`close` releases what it owns). */
function cacheWithStore(config: CacheConfig, store: CacheStore, close: () => Promise<void>): CacheMiddleware {
  const ignore = new Set(config.ignoreQuery);
  const requestRules = { perConsumer: config.perConsumer, credentialHeaders: config.credentialHeaders.map((header) => header.toLowerCase()), allowClientBypass: config.allowClientBypass };
  const answerRules = { statuses: new Set(config.statuses), ttlMs: config.ttl, respectCacheControl: config.respectCacheControl };
  const tagHeader = config.tagHeader === false ? undefined : config.tagHeader.toLowerCase();
  const dropped = new Set(tagHeader ? [tagHeader] : []);
  const flights = new SingleFlight<Filled>(config.waitTimeout);
  const logger = config.logger;

  function bypass(req: IncomingMessage, res: ServerResponse, next: () => void, reason: BypassReason): void {
    getContext(req).cache = 'BYPASS';
    spanEvent(req, 'frontdoor.cache.bypass', { 'frontdoor.cache.reason': reason });
    if (!res.headersSent) res.setHeader('X-Cache', 'BYPASS');
    next();
  }

  function hit(req: IncomingMessage, res: ServerResponse, answer: StoredAnswer): void {
    getContext(req).cache = 'HIT';
    spanEvent(req, 'frontdoor.cache.hit');
    for (const [header, value] of Object.entries(answer.headers)) res.setHeader(header, value);
    res.setHeader('Age', String(answer.age + Math.max(0, Math.floor((Date.now() - answer.storedAt) / 1000))));
    res.setHeader('X-Cache', 'HIT');
    if (notModified(req.headers, answer.headers)) {
      // A 304 carries the validators and caching headers, not those describing a body (RFC 9110 §15.4.5).
      for (const header of res.getHeaderNames()) if (header.startsWith('content-') && header !== 'content-location') res.removeHeader(header);
      res.statusCode = 304;
      res.end();
      return;
    }
    res.statusCode = answer.status;
    res.setHeader('Content-Length', answer.body.length);
    res.end(req.method === 'HEAD' ? undefined : answer.body);
  }

  /** The fresh answer stored for `req` under `key`, following a Vary record to the request's variant. */
  function lookup(key: string, req: IncomingMessage): MaybePromise<StoredAnswer | undefined> {
    return after(store.get(key), (value: StoredValue | undefined) => {
      if (!value || value.expiresAt <= Date.now()) return undefined;
      if (value.kind === 'answer') return value;
      return after(store.get(variantKey(key, value.vary, req)), (variant: StoredValue | undefined) => (variant?.kind === 'answer' && variant.expiresAt > Date.now() ? variant : undefined));
    });
  }

  /** Goes upstream; a GET is captured and stored when the answer allows it. */
  function fill(req: IncomingMessage, res: ServerResponse, next: () => void, key: string, path: string, lead: boolean): void {
    getContext(req).cache = 'MISS';
    spanEvent(req, 'frontdoor.cache.miss');
    res.setHeader('X-Cache', 'MISS');
    if (req.method === 'HEAD') return next(); // no body to store: a HEAD is answered from a GET's entry
    const flight = lead ? flights.lead(key) : undefined;
    const before = res.getHeaders();
    let decision: AnswerDecision | undefined;
    let status = 0;
    let headers: OutgoingHttpHeaders = {};
    let tags: string[] = [];
    captureAnswer(req, res, config.maxEntrySize, {
      head(statusCode, written) {
        status = statusCode;
        headers = written;
        if (tagHeader) {
          tags = parseTags(written[tagHeader]);
          res.removeHeader(tagHeader);
        }
        for (const header of Object.keys(written)) if (header.startsWith('apicache-')) res.removeHeader(header);
        decision = answerDecision(statusCode, written, answerRules);
        // Nothing to wait for: the waiters go upstream now, not once this answer has streamed out.
        if (!decision.store && flight) flights.finish(flight, undefined);
        return decision.store;
      },
      done(body) {
        if (!decision?.store || body === undefined) {
          if (flight) flights.finish(flight, undefined);
          return;
        }
        const now = Date.now();
        const { ttlMs, vary } = decision;
        const answer: StoredAnswer = { kind: 'answer', status, headers: storableHeaders(headers, before, dropped), body, storedAt: now, expiresAt: now + ttlMs, age: ageOf(headers.age) };
        const index = { path, tags };
        const storedKey = vary.length > 0 ? variantKey(key, vary, req) : key;
        if (vary.length > 0) settle(store.set(key, { kind: 'vary', vary, expiresAt: now + ttlMs }, ttlMs, index));
        settle(store.set(storedKey, answer, ttlMs, index));
        if (flight) flights.finish(flight, { answer, key: storedKey, vary });
      },
    });
    next();
  }

  /** A miss: wait for a fill under way for the key, or lead one. */
  function miss(req: IncomingMessage, res: ServerResponse, next: () => void, key: string, path: string): void {
    const flight = flights.current(key);
    // A conditional request may well be answered 304, which fills nothing: it does not make others wait for it.
    if (!flight) return fill(req, res, next, key, path, req.method === 'GET' && req.headers['if-none-match'] === undefined && req.headers['if-modified-since'] === undefined);
    flights.wait(flight).then((filled) => {
      if (res.headersSent || res.destroyed) return;
      // The fill's answer is this request's when it selects the same variant.
      if (filled && (filled.vary.length > 0 ? variantKey(key, filled.vary, req) : key) === filled.key) return hit(req, res, filled.answer);
      fill(req, res, next, key, path, false);
    });
  }

  let warnedUnverified = false;
  const middleware = function cacheMiddleware(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') {
      if (config.invalidateOnWrite && method !== undefined && UNSAFE_METHODS.has(method)) purgeOnSuccess(req, res);
      return next();
    }
    const target = normaliseTarget((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/');
    if (!target.ok) return bypass(req, res, next, 'path');
    const decision = requestDecision(req, requestRules);
    if (decision !== undefined && decision !== 'refresh') {
      if (decision === 'credentials' && config.perConsumer && !warnedUnverified) {
        warnedUnverified = true;
        logger.warn('frontdoor: cache({ perConsumer: true }) saw a request with credentials but no authenticated consumer: such requests bypass the cache. Put authenticate() before cache().');
      }
      return bypass(req, res, next, decision);
    }
    if (!store.available()) return bypass(req, res, next, 'store');
    const key = primaryKey({
      path: target.path,
      host: String(req.headers.host ?? '').toLowerCase(),
      query: normaliseQuery(target.search, ignore),
      consumer: config.perConsumer ? consumerKey(req) : '',
    });
    const path = target.path.toLowerCase();
    if (decision === 'refresh') return fill(req, res, next, key, path, false);
    let found: MaybePromise<StoredAnswer | undefined>;
    try {
      found = lookup(key, req);
    } catch {
      return bypass(req, res, next, 'store');
    }
    if (!isPromise(found)) return found ? hit(req, res, found) : miss(req, res, next, key, path);
    found.then(
      (answer) => (answer ? hit(req, res, answer) : miss(req, res, next, key, path)),
      () => bypass(req, res, next, 'store'),
    );
  } as CacheMiddleware;

  /** After a successful unsafe request, its path's entries go (every query, host, consumer and variant). */
  function purgeOnSuccess(req: IncomingMessage, res: ServerResponse): void {
    const target = normaliseTarget((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/');
    if (!target.ok) return;
    onResponseClose(getContext(req, res), res, function purgeWrittenPath() {
      if (res.headersSent && res.statusCode >= 200 && res.statusCode < 400) settle(store.purgePath(target.path.toLowerCase(), false));
    });
  }

  middleware.invalidate = async (path: string, options: { prefix?: boolean } = {}) => store.purgePath(invalidationPath(path), options.prefix !== false);
  middleware.invalidateTag = async (tag: string) => {
    if (typeof tag !== 'string' || tag === '') throw new TypeError('invalidateTag() needs a tag (a non-empty string).');
    return store.purgeTag(tag);
  };
  middleware.stats = () => (store instanceof MemoryCacheStore ? store.stats() : undefined);
  middleware.close = close;
  return middleware;
}

/** The path invalidate() purges, normalised as request paths are (purging is case-insensitive: more is safe). */
function invalidationPath(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new TypeError(`invalidate() needs a path starting with "/"; received ${JSON.stringify(path)}.`);
  const target = normaliseTarget(path.split('?')[0]);
  if (!target.ok) throw new TypeError(`invalidate() cannot purge ${JSON.stringify(path)}: ${target.reason}`);
  return target.path.toLowerCase();
}

/** Tags from the tag header: comma- or space-separated, bounded in number and length. */
function parseTags(value: OutgoingHttpHeaders[string]): string[] {
  if (value === undefined) return [];
  const tags = new Set<string>();
  for (const tag of String(Array.isArray(value) ? value.join(',') : value).split(/[\s,]+/)) {
    if (tag && tag.length <= MAX_TAG_LENGTH) tags.add(tag);
    if (tags.size >= MAX_TAGS) break;
  }
  return [...tags];
}

function ageOf(value: OutgoingHttpHeaders[string]): number {
  const seconds = Number(value);
  return Number.isInteger(seconds) && seconds > 0 ? seconds : 0;
}

type MaybePromise<T> = T | Promise<T>;

function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return !!value && typeof (value as Promise<T>).then === 'function';
}

/** Runs `next` on the value now when there is one, after it when it is a promise (the memory store answers at once). */
function after<T, U>(value: MaybePromise<T>, next: (value: T) => MaybePromise<U>): MaybePromise<U> {
  return isPromise(value) ? value.then(next) : next(value);
}

/** A store write or purge nobody waits for: its failure is the store's to report (it logs outages once). */
function settle(operation: void | Promise<unknown>): void {
  if (isPromise(operation)) operation.catch(() => undefined);
}

/** The caches of each gateway's routes, by the gateway's shared parts: what its `cache` control reaches. */
const storesOf = new WeakMap<SharedParts, Set<CacheStore>>();

/**
 * Invalidation over every route cache of a gateway (the gateway exposes it, e.g. as `gw.cache`): a path or tag
 * is purged in each store the routes use.
 */
export function cacheControlFor(shared: SharedParts): CacheControl {
  const stores = () => [...(storesOf.get(shared) ?? [])];
  return {
    async invalidate(path, options = {}) {
      const target = invalidationPath(path);
      const counts = await Promise.all(stores().map((store) => store.purgePath(target, options.prefix !== false)));
      return counts.reduce((sum, count) => sum + count, 0);
    },
    async invalidateTag(tag) {
      if (typeof tag !== 'string' || tag === '') throw new TypeError('invalidateTag() needs a tag (a non-empty string).');
      const counts = await Promise.all(stores().map((store) => store.purgeTag(tag)));
      return counts.reduce((sum, count) => sum + count, 0);
    },
  };
}

/** True when the route's auth lets anonymous requests through (`optional: true`), directly or by a named scheme. */
function authIsOptional(route: Readonly<Record<string, unknown>>, gateway: Readonly<Record<string, unknown>>): boolean {
  const auth = typeof route.auth === 'string' ? (gateway.authSchemes as Record<string, unknown> | undefined)?.[route.auth] : route.auth;
  return !!auth && typeof auth === 'object' && (auth as { optional?: unknown }).optional === true;
}

/**
 * The route option `cache`, after auth, authorize and the rate limit, before the request is shaped. Routes with
 * the same `name` share a store (with the same store options); by default each route has its own.
 */
export const cacheFeature: FeatureDescriptor = {
  option: 'cache',
  phase: 'cache',
  upgrade: { apply: false, reason: 'A WebSocket upgrade opens a live connection, not an answer that could be stored: it is never cached and passes the cache untouched.' },
  schemas: defineSchema(() => ({ option: cacheSchema() })),
  build(value, scope) {
    const option = `${scope.optionPrefix}cache`;
    const given = withGatewayErrors(value as CacheOptions, option);
    if (given && typeof given === 'object') delete (given as { onError?: unknown }).onError; // the cache answers no error of its own
    const config = parseOptions(cacheSchema(), given, `${option}.`);
    if (config.perConsumer && scope.route.auth === undefined) {
      throw new ConfigError(`"${option}.perConsumer" keys entries by the authenticated consumer, but route "${scope.routeName}" has no "auth": set "auth" on the route, or drop "perConsumer".`);
    }
    if (scope.route.auth !== undefined && !config.perConsumer && !authIsOptional(scope.route, scope.gateway)) {
      config.logger.warn(`frontdoor: route "${scope.routeName}" caches with "auth" but without "perConsumer": every authenticated request bypasses the cache. Set "${option}.perConsumer: true" to cache per consumer.`);
    }
    const name = config.name ?? scope.routeName;
    const storeOptions = { redis: config.redis, maxEntries: config.maxEntries, maxBytes: config.maxBytes, storeTimeout: config.storeTimeout, logger: config.logger };
    const store = scope.shared.get('cache', name, storeOptions, `route "${scope.routeName}"`, `"${option}"`, () => buildStore(config, name, (key) => `${option}.${key}`), (shared) => shared.close());
    let stores = storesOf.get(scope.shared);
    if (!stores) storesOf.set(scope.shared, (stores = new Set()));
    stores.add(store);
    // The store is the gateway's shared part, closed with it.
    return { handler: cacheWithStore(config, store, async () => undefined), reset: async () => void (await store.purgePath('/', true)) };
  },
};
