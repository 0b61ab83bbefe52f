/**
 * fallback(): the monolith catches what the new service drops. When the upstream is unreachable, times out,
 * has every target ejected, or answers with a listed status, the request is handed to the app's own handler
 * (`next()`) instead, once. Only when that cannot execute the request twice: the method is idempotent, or
 * no byte of the body went upstream. The answer says so in a header, and metrics count it per trigger.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getContext } from '../lib/context';
import { ConfigError, GatewayError } from '../lib/errors';
import type { GatewayErrorCode } from '../lib/errors';
import type { FeatureDescriptor, Middleware, Next } from '../lib/pipeline';
import { addResponseFilter } from '../lib/response-filters';
import { defineSchema, parseOptions } from '../lib/schema';

/** What hands a request to the app: the upstream unreachable (`'unavailable'`), timed out (`'timeout'`), or one of its statuses. */
export type FallbackTrigger = 'unavailable' | 'timeout' | number;

export interface FallbackOptions {
  /**
   * When to hand the request to the app. `'unavailable'`: refused or reset connections, no healthy target
   * left; `'timeout'`: connect or response timeout; a number: the upstream answered with that status (its
   * answer is dropped). Defaults to `['unavailable', 'timeout']`.
   */
  on?: FallbackTrigger[];
  /** Response header naming the trigger on an answer the app gave instead (`x-frontdoor-fallback: 503`); `false` for none. Defaults to `'x-frontdoor-fallback'`. */
  header?: string | false;
}

const DEFAULTS = { on: ['unavailable', 'timeout'] as FallbackTrigger[], header: 'x-frontdoor-fallback' };

/** Gateway errors by the trigger they are. */
const TRIGGER_OF: Partial<Record<GatewayErrorCode, 'unavailable' | 'timeout'>> = {
  ERR_UPSTREAM_UNAVAILABLE: 'unavailable',
  ERR_UPSTREAM_RESET: 'unavailable',
  ERR_NO_HEALTHY_UPSTREAM: 'unavailable',
  ERR_UPSTREAM_CONNECT_TIMEOUT: 'timeout',
  ERR_UPSTREAM_TIMEOUT: 'timeout',
};

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export const fallbackSchema = defineSchema((z) =>
  z.strictObject(
    {
      on: z
        .array(z.union([z.enum(['unavailable', 'timeout']), z.number().int().min(400).max(599)]), { error: "must be a list of 'unavailable', 'timeout' and upstream statuses (400–599), e.g. ['unavailable', 'timeout', 503]" })
        .min(1)
        .default(DEFAULTS.on),
      header: z.union([z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'must be a header name' }), z.literal(false)]).default(DEFAULTS.header),
    },
    { error: "must be an object like { on: ['unavailable', 'timeout', 503] }." },
  ),
);

/** A request may go to the app after the upstream had it only if it cannot be executed twice. */
function mayRunAgain(req: IncomingMessage): boolean {
  return IDEMPOTENT.has(req.method ?? 'GET') || getContext(req).upstreamBodySent !== true;
}

/**
 * Wraps a final handler (usually proxy() with `onError: 'next'`) so that its failures go to the app.
 *
 * @example
 * app.use('/api/orders', fallback({ on: ['unavailable', 'timeout', 503] }, proxy({ target: 'http://orders:4001', onError: 'next' })));
 * app.use('/api/orders', ordersRouter); // the monolith's own handlers
 */
export function fallback(options: FallbackOptions, final: Middleware, optionPrefix = ''): Middleware {
  if (typeof final !== 'function') throw new ConfigError(`fallback() wraps a handler: fallback({ on: ['unavailable'] }, proxy({ target, onError: 'next' })).`);
  const config = parseOptions(fallbackSchema(), options ?? {}, optionPrefix);
  const errors = new Set(config.on.filter((trigger): trigger is 'unavailable' | 'timeout' => typeof trigger === 'string'));
  const statuses = new Set(config.on.filter((trigger): trigger is number => typeof trigger === 'number'));
  const header = config.header;
  const divertStatus = statuses.size === 0 ? undefined : {
    // Refuses a listed status before any of it reaches the client; the final handler then fails with this.
    divert(response: { status: number }, req: IncomingMessage) {
      if (!statuses.has(response.status) || !mayRunAgain(req)) return undefined;
      return new GatewayError('ERR_UPSTREAM_UNAVAILABLE', { detail: `The upstream answered ${response.status}.`, extensions: { fallbackStatus: response.status } });
    },
  };

  return function fallbackMiddleware(req: IncomingMessage, res: ServerResponse, next: Next) {
    if (divertStatus) addResponseFilter(req, divertStatus);
    final(req, res, (err?: unknown) => {
      if (err === undefined || err === null) return next();
      const trigger = triggerOf(err, errors);
      if (trigger === undefined || res.headersSent || !mayRunAgain(req)) return next(err);
      const context = getContext(req);
      context.fallback = String(trigger);
      if (header) res.setHeader(header, String(trigger));
      // The app's own handler answers, once: the request as the client sent it.
      next();
    });
  };
}

function triggerOf(err: unknown, errors: Set<'unavailable' | 'timeout'>): FallbackTrigger | undefined {
  if (!(err instanceof GatewayError)) return undefined;
  const status = err.extensions?.fallbackStatus;
  if (typeof status === 'number') return status;
  const trigger = TRIGGER_OF[err.code];
  return trigger !== undefined && errors.has(trigger) ? trigger : undefined;
}

/**
 * The route option `fallback`: `{ path, upstream, fallback: { on: ['unavailable', 503] } }` wraps the route's
 * upstream; the monolith (the app's handlers after the gateway) answers what it drops.
 */
export const fallbackFeature: FeatureDescriptor = {
  option: 'fallback',
  phase: 'final',
  wraps: { needsUpstream: true },
  upgrade: { apply: false, reason: 'A refused WebSocket handshake is answered on the socket; handing a half-open upgrade to the app is not possible.' },
  schemas: defineSchema((z) => ({ option: z.union([z.literal(true), fallbackSchema()]) })),
  build(value, scope) {
    const options = value === true ? {} : (value as FallbackOptions);
    const option = `${scope.optionPrefix}fallback.`;
    parseOptions(fallbackSchema(), options, option);
    return { wrapFinal: (final) => fallback(options, final, option) };
  },
};
