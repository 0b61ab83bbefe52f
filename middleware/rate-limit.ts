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
import { Duration, parseDuration } from '../lib/duration';
import { ConfigError, GatewayError } from '../lib/errors';
import { consoleLogger, Logger } from '../lib/log';
import { assertKnownKeys } from '../lib/options';
import { sendProblem } from '../lib/problem';
import { ResilientRedisStore } from '../lib/rate-limit-store';
import { redisHandle, RedisClientLike, RedisHandle } from '../lib/redis';
import type { ErrorMode, FeatureDescriptor } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';

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
  /** Per-tier limits, picked by the consumer's tier: `{ free: 100, enterprise: 10000 }`. */
  tiers?: Record<string, number>;
  /** Limit for consumers whose tier is not in `tiers`. Defaults to `limit`. */
  default?: number;
  /** Counter name: limiters with the same name share counters. Defaults to the route; required with `redis` when used alone. */
  name?: string;
  /** Shared store: a `redis://` URL or an ioredis / node-redis client. Defaults to in-memory (per process). */
  redis?: string | RedisClientLike;
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
  /** Answer errors as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** The limiter middleware, with `close()` to release its Redis connection. */
export interface RateLimitMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
  close(): Promise<void>;
}

const KNOWN = ['limit', 'window', 'key', 'tiers', 'default', 'name', 'redis', 'storeTimeout', 'onStoreError', 'legacyHeaders', 'ipv6Subnet', 'logger', 'onError'];
const DEFAULTS = { limit: 60, window: 60_000, storeTimeout: 500, ipv6Subnet: 56 };

/**
 * @example
 * app.use('/api', rateLimit({ limit: 100, window: '1m' }));
 * app.use('/api', authenticate({ jwt }), rateLimit({ key: 'consumer', window: '1m', tiers: { free: 100, enterprise: 10000 }, default: 60, redis: 'redis://127.0.0.1:6379', name: 'api' }));
 */
export function rateLimit(options: RateLimitOptions = {}, optionPrefix = ''): RateLimitMiddleware {
  if (!options || typeof options !== 'object') throw new ConfigError(`rateLimit() options must be an object, e.g. rateLimit({ limit: 100, window: '1m' }).`);
  assertKnownKeys(options, KNOWN, optionPrefix);
  const name = (key: string) => optionPrefix + key;
  const windowMs = options.window === undefined ? DEFAULTS.window : parseDuration(options.window, name('window'));
  if (windowMs < 1000) throw new ConfigError(`"${name('window')}" must be at least 1s; received ${JSON.stringify(options.window)}.`);
  const limit = positive(options.limit, DEFAULTS.limit, name('limit'));
  const fallback = positive(options.default, limit, name('default'));
  const tiers = new Map<string, number>();
  for (const [tier, tierLimit] of Object.entries(options.tiers ?? {})) tiers.set(tier, positive(tierLimit, 0, name(`tiers.${tier}`)));
  const ipv6Subnet = options.ipv6Subnet ?? DEFAULTS.ipv6Subnet;
  if (!Number.isInteger(ipv6Subnet) || ipv6Subnet < 1 || ipv6Subnet > 128) throw new ConfigError(`"${name('ipv6Subnet')}" must be an integer from 1 to 128.`);
  const onStoreError = options.onStoreError ?? 'allow';
  if (onStoreError !== 'allow' && onStoreError !== 'deny') throw new ConfigError(`"${name('onStoreError')}" must be 'allow' or 'deny'.`);
  const errorMode = options.onError ?? 'respond';
  const logger = options.logger ?? consoleLogger;
  const keyOption = options.key ?? 'ip';
  if (keyOption !== 'ip' && keyOption !== 'consumer' && typeof keyOption !== 'function') throw new ConfigError(`"${name('key')}" must be 'ip', 'consumer' or a function (req) => string.`);
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) throw new ConfigError(`"${name('name')}" must be a non-empty string.`);

  let trustChecked = false;
  const ipKey = (req: IncomingMessage) => {
    if (!trustChecked) {
      trustChecked = true;
      // With trust proxy = true, req.ip is whatever the client writes in X-Forwarded-For: a new bucket per request.
      if ((req as Request).app?.get?.('trust proxy') === true) {
        logger.warn(`frontdoor rateLimit: Express 'trust proxy' is true, so any client can choose its IP with X-Forwarded-For and escape ${options.name ? `the "${options.name}" ` : 'this '}limit. Set 'trust proxy' to your proxies' addresses (see docs/rate-limit.md).`);
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
  if (options.redis !== undefined) {
    if (!options.name) throw new ConfigError(`"${name('name')}" is required with "${name('redis')}", so that every gateway instance counts in the same place. In a route table it defaults to the route.`);
    const timeout = options.storeTimeout === undefined ? DEFAULTS.storeTimeout : parseDuration(options.storeTimeout, name('storeTimeout'));
    redis = redisHandle(options.redis, name('redis'));
    store = new ResilientRedisStore(redis.send, `frontdoor:rl:${options.name}:`, timeout, logger);
  } else {
    store = new MemoryStore();
  }

  const limiter = expressRateLimit({
    windowMs,
    limit: tiers.size ? (req: Request) => tierLimit(getConsumer(req)?.tier) : limit,
    keyGenerator: keyGenerator as (req: Request) => string,
    standardHeaders: 'draft-8',
    legacyHeaders: options.legacyHeaders === true,
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
      const err = new GatewayError(429, 'ERR_RATE_LIMITED', { detail: 'Too many requests. Retry after the time in the Retry-After header.' });
      if (errorMode === 'next') next(err);
      else sendProblem(req, res, err);
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
      const unavailable = err instanceof GatewayError ? err : new GatewayError(503, 'ERR_RATE_LIMIT_UNAVAILABLE', { detail: 'Rate limiting is unavailable. Try again shortly.', cause: err, headers: { 'Retry-After': '1' } });
      if (errorMode === 'next') next(unavailable);
      else sendProblem(req, res, unavailable);
    });
  } as RateLimitMiddleware;
  middleware.close = async () => {
    await redis?.release();
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

function positive(value: unknown, fallback: number, option: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new ConfigError(`"${option}" must be a positive integer; received ${JSON.stringify(value)}.`);
  return value;
}

function describe(message: unknown): string {
  if (message instanceof Error) return `${(message as { code?: string }).code ? `${(message as { code?: string }).code}: ` : ''}${message.message}`;
  return String(message);
}

/**
 * Resolved options that decide whether two routes may share one counter: durations in ms, defaults filled;
 * a key function, a Redis client and a logger compare by identity (lib/scope.ts).
 */
function resolvedForSharing(options: RateLimitOptions, name: string, optionPrefix: string): Record<string, unknown> {
  return {
    ...options,
    name,
    limit: options.limit ?? DEFAULTS.limit,
    window: options.window === undefined ? DEFAULTS.window : parseDuration(options.window, `${optionPrefix}window`),
    storeTimeout: options.storeTimeout === undefined ? DEFAULTS.storeTimeout : parseDuration(options.storeTimeout, `${optionPrefix}storeTimeout`),
    key: options.key ?? 'ip',
    onStoreError: options.onStoreError ?? 'allow',
    ipv6Subnet: options.ipv6Subnet ?? DEFAULTS.ipv6Subnet,
    legacyHeaders: options.legacyHeaders === true,
  };
}

/**
 * The route option `rateLimit`. Counters are per route — its name, or its path and methods — unless
 * routes share a `name`; a shared counter needs the same resolved options. Upgrades count too (429 on the socket).
 */
export const rateLimitFeature: FeatureDescriptor = {
  option: 'rateLimit',
  phase: 'limit',
  upgrade: { apply: true },
  build(value, scope) {
    const option = `${scope.optionPrefix}rateLimit`;
    const options = withGatewayErrors(value as RateLimitOptions, option);
    if (!options || typeof options !== 'object') return { handler: rateLimit(options, `${option}.`) };
    const route = scope.route.name === undefined && scope.methods ? `${scope.routeName} ${scope.methods.join(',')}` : scope.routeName;
    const counter = options.name ?? route;
    const limiter = scope.shared.get('counter', counter, resolvedForSharing(options, counter, `${option}.`), `route "${scope.routeName}"`, `"${option}"`, () => rateLimit({ ...options, name: counter }, `${option}.`), (shared) => shared.close());
    return { handler: limiter };
  },
};
