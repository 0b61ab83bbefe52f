/**
 * rateLimit(): limits requests per client in a window — by IP, by authenticated consumer, or by a key
 * of your own — with tiers, the IETF RateLimit headers, and a Redis store shared by every gateway
 * instance. Built on express-rate-limit and rate-limit-redis.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ipKeyGenerator, MemoryStore, rateLimit as expressRateLimit } from 'express-rate-limit';
import type { Request, Response } from 'express';
import { clientAddress } from '../lib/client-address';
import { getConsumer } from '../lib/consumer';
import type { Duration } from '../lib/duration';
import { ConfigError, GatewayError } from '../lib/errors';
import { consoleLogger, Logger } from '../lib/log';
import { respondOrNext } from '../lib/problem';
import { ResilientRedisStore } from '../lib/rate-limit-store';
import { redisHandle, redisOptionSchema, RedisHandle } from '../lib/redis';
import type { RedisOption } from '../lib/redis';
import type { ErrorMode, FeatureDescriptor } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { defineSchema, duration, errorMode, parseOptions, Z } from '../lib/schema';

export interface RateLimitOptions {
  /** Requests allowed per window (for consumers without a listed tier when `tiers` is set). Defaults to 60. */
  limit?: number;
  /** Length of the window: ms or a string like `'1m'`. Defaults to `'1m'`. */
  window?: Duration;
  /**
   * Whose requests are counted together: `'ip'` (the default; IPv6 grouped by /56 subnet), `'consumer'` (the
   * authenticated `req.user.id`, falling back to the IP for anonymous requests), or a function of the request.
   */
  key?: 'ip' | 'consumer' | ((req: IncomingMessage) => string);
  /** Per-tier limits, picked by the consumer's tier: `{ free: 100, enterprise: 10000 }`. Defaults to none: `limit` for everyone. */
  tiers?: Record<string, number>;
  /** Limit for consumers whose tier is not in `tiers`. Defaults to `limit`. */
  default?: number;
  /** Counter name: limiters with the same name share counters. Defaults to the route; required with `redis` when used alone. */
  name?: string;
  /** Shared store: a `redis://` URL, `{ cluster: [urls] }`, `{ sentinels, name }`, or an ioredis / node-redis client (docs/scaling.md). Defaults to in-memory (per process). */
  redis?: RedisOption;
  /** Timeout of each Redis call. Defaults to `'500ms'`. */
  storeTimeout?: Duration;
  /** When Redis is unreachable: `'allow'` requests through (fail open, the default) or `'deny'` them with 503. */
  onStoreError?: 'allow' | 'deny';
  /** Also send the legacy `X-RateLimit-*` headers. Defaults to false. */
  legacyHeaders?: boolean;
  /** IPv6 prefix length that counts as one client for `key: 'ip'`. Defaults to 56. */
  ipv6Subnet?: number;
  /** Where operator warnings go (outages, risky settings). Defaults to the console. */
  logger?: Logger;
  /**
   * Limits for some methods, each on a counter of its own: `{ POST: { limit: 10 } }` allows 10 POSTs a
   * window next to `limit` requests of other methods. The fields not given are the ones above. `HEAD`
   * follows `GET` unless it has its own. Defaults to none.
   */
  methods?: Record<string, Pick<RateLimitOptions, 'limit' | 'window' | 'key' | 'tiers' | 'default'>>;
  /** Answer errors as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** The limiter middleware, with `close()` to release its Redis connection. */
export interface RateLimitMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
  close(): Promise<void>;
  /** Forgets every counter of an in-memory store (between tests); counters in Redis are kept. */
  reset(): Promise<void>;
}

/** A positive integer (a request count). */
function positiveInteger(z: Z) {
  return z.number({ error: 'must be a positive integer' }).refine((value) => Number.isInteger(value) && value >= 1, { error: 'must be a positive integer' });
}

/** The fields a method may override. */
function countingShape(z: Z) {
  return {
    limit: positiveInteger(z).optional(),
    window: duration(z)
      .refine((ms) => ms >= 1000, { error: 'must be at least 1s' })
      .optional(),
    key: z
      .custom<'ip' | 'consumer' | ((req: IncomingMessage) => string)>((value) => value === 'ip' || value === 'consumer' || typeof value === 'function', {
        error: "must be 'ip', 'consumer' or a function (req) => string.",
      })
      .optional(),
    tiers: z.record(z.string(), positiveInteger(z), { error: 'must be an object of tier → limit, e.g. { free: 100, enterprise: 10000 }.' }).optional(),
    default: positiveInteger(z).optional(),
  };
}

/** The options of rateLimit(), resolved: durations in ms, defaults filled in (`default` is filled by rateLimit()). */
export const rateLimitSchema = defineSchema((z) =>
  z.strictObject(
    {
      ...countingShape(z),
      limit: positiveInteger(z).default(60),
      window: duration(z)
        .refine((ms) => ms >= 1000, { error: 'must be at least 1s' })
        .default(60_000),
      key: countingShape(z).key.unwrap().default('ip'),
      methods: z
        .record(z.string(), z.strictObject(countingShape(z)))
        .refine((rules) => Object.keys(rules).every((method) => /^[A-Z]+$/.test(method)), { error: 'must have HTTP methods in capitals as keys, e.g. { POST: { … } }' })
        .optional(),
      name: z.string({ error: 'must be a non-empty string.' }).min(1, { error: 'must be a non-empty string.' }).optional(),
      // A URL, a cluster or sentinel set, or a client's command method (lib/redis.ts connects to each).
      redis: redisOptionSchema(z).optional(),
      storeTimeout: duration(z).default(500),
      onStoreError: z.enum(['allow', 'deny'], { error: "must be 'allow' or 'deny'." }).default('allow'),
      legacyHeaders: z.boolean({ error: 'must be true or false' }).default(false),
      ipv6Subnet: z
        .number({ error: 'must be an integer from 1 to 128.' })
        .refine((bits) => Number.isInteger(bits) && bits >= 1 && bits <= 128, { error: 'must be an integer from 1 to 128.' })
        .default(56),
      logger: z
        .custom<Logger>((value) => !!value && typeof (value as Logger).warn === 'function' && typeof (value as Logger).error === 'function', {
          error: 'must be a logger with warn() and error() methods (pino, console or winston).',
        })
        .default(consoleLogger),
      onError: errorMode(z).default('respond'),
    },
    { error: "must be an object, e.g. rateLimit({ limit: 100, window: '1m' })." },
  ),
);

/** The resolved options of a limiter. */
type RateLimitConfig = ReturnType<ReturnType<typeof rateLimitSchema>['parse']> & { default: number };

/** Resolves rateLimit() options (every mistake in one ConfigError naming the options). */
function resolveOptions(options: RateLimitOptions, optionPrefix: string): RateLimitConfig {
  if (!options || typeof options !== 'object') throw new ConfigError(`rateLimit() options must be an object, e.g. rateLimit({ limit: 100, window: '1m' }).`);
  const config = parseOptions(rateLimitSchema(), options, optionPrefix);
  return { ...config, default: config.default ?? config.limit };
}

/**
 * Whether a limit can run before authentication: it counts by IP and needs no consumer (no tiers). Such
 * limits throttle token and API-key guessing too, which a limit after authentication never sees.
 */
function limitsByAddressOnly(config: RateLimitConfig): boolean {
  const counts = [config, ...Object.values(config.methods ?? {})];
  return counts.every((count) => (count.key ?? config.key) === 'ip' && (count.tiers ?? config.tiers) === undefined);
}

/** The base limiter, and one per method with its own counter (`<name>:<METHOD>`). */
function buildLimiter(config: RateLimitConfig, optionPrefix: string): RateLimitMiddleware {
  const base = createLimiter({ ...config, methods: undefined }, optionPrefix);
  if (!config.methods) return base;
  const byMethod = new Map<string, RateLimitMiddleware>();
  for (const [method, override] of Object.entries(config.methods)) {
    const fields = Object.fromEntries(Object.entries(override).filter(([, value]) => value !== undefined));
    const limit = (fields.limit as number | undefined) ?? config.limit;
    // A method's own limit is also its limit for consumers outside `tiers`, unless it sets `default`.
    const fallback = (fields.default as number | undefined) ?? (fields.limit as number | undefined) ?? config.default;
    byMethod.set(method, createLimiter({ ...config, ...fields, limit, default: fallback, methods: undefined, name: config.name && `${config.name}:${method}` }, `${optionPrefix}methods.${method}.`));
  }
  if (byMethod.has('GET') && !byMethod.has('HEAD')) byMethod.set('HEAD', byMethod.get('GET') as RateLimitMiddleware);
  const middleware = function rateLimitByMethod(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
    (byMethod.get(req.method ?? '') ?? base)(req, res, next);
  } as RateLimitMiddleware;
  middleware.close = async () => {
    await Promise.all([base, ...new Set(byMethod.values())].map((limiter) => limiter.close()));
  };
  middleware.reset = async () => {
    await Promise.all([base, ...new Set(byMethod.values())].map((limiter) => limiter.reset()));
  };
  return middleware;
}

/**
 * @example
 * app.use('/api', rateLimit({ limit: 100, window: '1m' }));
 * app.use('/api', authenticate({ jwt }), rateLimit({ key: 'consumer', window: '1m', tiers: { free: 100, enterprise: 10000 }, default: 60, redis: 'redis://127.0.0.1:6379', name: 'api' }));
 */
export function rateLimit(options: RateLimitOptions = {}, optionPrefix = ''): RateLimitMiddleware {
  return buildLimiter(resolveOptions(options, optionPrefix), optionPrefix);
}

function createLimiter(config: RateLimitConfig, optionPrefix: string): RateLimitMiddleware {
  const name = (key: string) => optionPrefix + key;
  const { window: windowMs, limit, default: fallback, ipv6Subnet, onStoreError, onError, logger, key: keyOption } = config;
  const tiers = new Map(Object.entries(config.tiers ?? {}));

  let trustChecked = false;
  const ipKey = (req: IncomingMessage) => {
    if (!trustChecked) {
      trustChecked = true;
      // With trust proxy = true, req.ip is whatever the client writes in X-Forwarded-For: a new bucket per request.
      if ((req as Request).app?.get?.('trust proxy') === true) {
        logger.warn(`frontdoor rateLimit: Express 'trust proxy' is true, so any client can choose its IP with X-Forwarded-For and escape ${config.name ? `the "${config.name}" ` : 'this '}limit. Set 'trust proxy' to your proxies' addresses (see docs/rate-limit.md).`);
      }
    }
    return ipKeyGenerator(clientAddress(req), ipv6Subnet);
  };
  const keyGenerator =
    keyOption === 'ip'
      ? (req: IncomingMessage) => `ip:${ipKey(req)}`
      : keyOption === 'consumer'
        ? (req: IncomingMessage) => {
            const consumer = getConsumer(req);
            return consumer && consumer.scheme !== 'anonymous' ? `consumer:${consumer.id}` : `ip:${ipKey(req)}`;
          }
        : (req: IncomingMessage) => `key:${keyOption(req)}`;

  let redis: RedisHandle | undefined;
  let store;
  if (config.redis !== undefined) {
    if (!config.name) throw new ConfigError(`"${name('name')}" is required with "${name('redis')}", so that every gateway instance counts in the same place. In a route table it defaults to the route.`);
    redis = redisHandle(config.redis, name('redis'));
    store = new ResilientRedisStore(redis.send, `frontdoor:rl:${config.name}:`, config.storeTimeout, logger);
  } else {
    store = new MemoryStore();
  }

  const limiter = expressRateLimit({
    windowMs,
    limit: tiers.size ? (req: Request) => tierLimit(getConsumer(req)?.tier) : limit,
    keyGenerator: keyGenerator as (req: Request) => string,
    standardHeaders: 'draft-8',
    legacyHeaders: config.legacyHeaders,
    store,
    passOnStoreError: onStoreError === 'allow',
    // Our store logs an outage once; express-rate-limit would log every request that passes during it.
    logger: {
      warn: (message: unknown) => logger.warn(`frontdoor rateLimit: ${describe(message)}`),
      error: (message: unknown, context?: unknown) => {
        if (typeof context === 'string' && context.includes('store')) return;
        logger.warn(`frontdoor rateLimit: ${describe(message)}`);
      },
    },
    // frontdoor checks trust proxy itself (express-rate-limit only does so in its own key generator).
    validate: { trustProxy: false, xForwardedForHeader: false, keyGeneratorIpFallback: false },
    handler: (req: Request, res: Response, next: (err?: unknown) => void) => {
      respondOrNext(onError, req, res, next, new GatewayError('ERR_RATE_LIMITED', { detail: 'Too many requests. Retry after the time in the Retry-After header.' }));
    },
  });

  function tierLimit(tier: string | undefined): number {
    return (tier !== undefined ? tiers.get(tier) : undefined) ?? fallback;
  }

  const middleware = function rateLimitMiddleware(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
    withAppend(res);
    limiter(req as Request, res as Response, (err?: unknown) => {
      if (err === undefined) return next();
      // Only store failures reach here, and only with onStoreError: 'deny'.
      const unavailable = err instanceof GatewayError ? err : new GatewayError('ERR_RATE_LIMIT_UNAVAILABLE', { detail: 'Rate limiting is unavailable. Try again shortly.', cause: err, headers: { 'Retry-After': '1' } });
      respondOrNext(onError, req, res, next, unavailable);
    });
  } as RateLimitMiddleware;
  middleware.close = async () => {
    await redis?.release();
  };
  middleware.reset = async () => {
    if (store instanceof MemoryStore) await store.resetAll();
  };
  return middleware;
}

/**
 * express-rate-limit writes the RateLimit headers with Express's `res.append`, which plain Node responses
 * lack: on connect, and on the response the gateway binds to a WebSocket upgrade's socket.
 */
function withAppend(res: ServerResponse): void {
  const target = res as ServerResponse & { append?: (name: string, value: string | string[]) => unknown };
  if (typeof target.append === 'function') return;
  target.append = function append(name: string, value: string | string[]) {
    const previous = this.getHeader(name);
    const list = previous === undefined ? [] : Array.isArray(previous) ? previous : [String(previous)];
    this.setHeader(name, list.concat(value));
    return this;
  };
}

function describe(message: unknown): string {
  if (message instanceof Error) return `${(message as { code?: string }).code ? `${(message as { code?: string }).code}: ` : ''}${message.message}`;
  return String(message);
}

/**
 * The route option `rateLimit`. Counters are per route — its name, or its path and methods — unless
 * routes share a `name`; a shared counter needs the same resolved options. Upgrades count too (429 on the socket).
 * A limit by IP alone runs in the admit phase, before authentication; one by consumer or tier after it.
 */
export const rateLimitFeature: FeatureDescriptor = {
  option: 'rateLimit',
  phase: 'limit',
  upgrade: { apply: true },
  schemas: defineSchema(() => ({ option: rateLimitSchema() })),
  build(value, scope) {
    const option = `${scope.optionPrefix}rateLimit`;
    const config = resolveOptions(withGatewayErrors(value as RateLimitOptions, option), `${option}.`);
    // An unnamed route's counter is its path, methods and hosts: what tells it apart from the other routes.
    const route = scope.route.name !== undefined ? scope.routeName : [scope.routeName, scope.methods?.join(','), scope.hosts?.join(',')].filter(Boolean).join(' ');
    const counter = { ...config, name: config.name ?? route };
    // Routes may share a counter when their resolved options are the same ('1m' is 60000; a key
    // function, a Redis client and a logger compare by identity, lib/scope.ts).
    const limiter = scope.shared.get('counter', counter.name, counter, `route "${scope.routeName}"`, `"${option}"`, () => buildLimiter(counter, `${option}.`), (shared) => shared.close());
    // A limit by address alone runs before authentication, so failed credentials are throttled too.
    return { handler: limiter, phase: limitsByAddressOnly(counter) ? 'admit' : undefined, reset: () => limiter.reset() };
  },
};
