/**
 * proxy(): forwards a request to one upstream or a load-balanced set, streaming both ways, with
 * keep-alive pooling, passive/active health, retries, connect and response timeouts, and problem+json
 * errors. Works on Express 4, Express 5 and plain connect apps.
 *
 * It turns the request and the context's plan into the upstream request (path, headers, body) and hands
 * it to the upstream client (lib/upstream-client.ts), which does the attempts.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { stripIdentityHeaders } from '../lib/auth-headers';
import { getContext, REQUEST_ID_HEADER, RequestContext } from '../lib/context';
import type { Duration } from '../lib/duration';
import { ConfigError, GatewayError } from '../lib/errors';
import { forwardHeaders } from '../lib/forwarding-headers';
import { consoleLogger } from '../lib/log';
import { closest } from '../lib/options';
import { fingerprint } from '../lib/scope';
import { normaliseTarget, PathOptions } from '../lib/path';
import type { ErrorMode, FeatureDescriptor } from '../lib/pipeline';
import { respondOrNext } from '../lib/problem';
import { withoutQueryParameters } from '../lib/query';
import { consumedBody } from '../lib/request-body';
import { defineSchema, duration, errorMode, fn, parseOptions } from '../lib/schema';
import type { Z } from '../lib/schema';
import { rejectUpgrade, UpstreamClient } from '../lib/upstream-client';
import { UpstreamOptions, UpstreamPool, upstreamShape } from '../lib/upstream-pool';

/** Rewrites the forwarded path: `{ '^/v2/orders': '/internal/orders' }` (first matching pattern wins), or a function. */
export type PathRewrite = Record<string, string> | ((path: string, req: IncomingMessage) => string | undefined);

export type { ErrorMode } from '../lib/pipeline';

export interface ProxyOptions extends UpstreamOptions {
  /**
   * Forward the path without the mount path (`app.use('/api/orders', proxy(…))` sends `/7` instead of
   * `/api/orders/7`). Defaults to false: the upstream sees the path the client sent.
   */
  stripPath?: boolean;
  /** Rewrites the forwarded path (with its query string). Applied after `stripPath`. */
  pathRewrite?: PathRewrite;
  /** Send the client's `Host` header upstream instead of the target's. Defaults to false. */
  preserveHost?: boolean;
  /** Time to open a connection to a target. Defaults to `'5s'`. A timeout is a 504 (retried for idempotent requests). */
  connectTimeout?: Duration;
  /** Time from sending the request to the upstream's response headers. Defaults to `'30s'`. A timeout is a 504. */
  timeout?: Duration;
  /**
   * Further attempts on another target after a connect error, connect timeout or reset, for idempotent
   * methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) whose body is empty or was buffered by a body
   * parser. A POST is never re-sent. Defaults to 2.
   */
  retries?: number;
  /** Proxy WebSocket upgrades through `.upgrade(req, socket, head)`. Defaults to false. */
  ws?: boolean;
  /** Set `X-Forwarded-For/Proto/Host` (honouring Express's `trust proxy`). Defaults to true. */
  xForwarded?: boolean;
  /** Accept `;` path parameters (see GatewayOptions.allowSemicolons). Defaults to false: such paths are a 400. */
  allowSemicolons?: boolean;
  /** Answer errors as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** A connect/Express middleware with the proxy's lifecycle attached. */
export interface ProxyMiddleware {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Proxies a WebSocket upgrade (when `ws: true`): `server.on('upgrade', proxy.upgrade)`. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Stops health checks and closes pooled upstream sockets. */
  close(): Promise<void>;
  /** The upstream pool: targets and their health. */
  readonly pool: UpstreamPool;
}

const DEFAULTS = { connectTimeout: 5_000, timeout: 30_000, retries: 2 };

/** Timeouts and retries: what an upstream adds to its pool in a route or a named upstream. */
function limitsShape(z: Z) {
  return {
    connectTimeout: duration(z).optional(),
    timeout: duration(z).optional(),
    retries: z.number({ error: 'must be a non-negative integer' }).int({ error: 'must be a non-negative integer' }).min(0, { error: 'must be a non-negative integer' }).optional(),
  };
}

/** A route's `upstream` object, and a named upstream: the pool, its timeouts and retries. */
const routeUpstreamSchema = defineSchema((z) => z.strictObject({ ...upstreamShape(z), ...limitsShape(z) }));

/** proxy()'s options. */
export const proxySchema = defineSchema((z) =>
  z.strictObject({
    ...upstreamShape(z),
    ...limitsShape(z),
    stripPath: z.boolean().optional(),
    pathRewrite: z.union([z.record(z.string(), z.string()), fn(z, '(path, req) => string | undefined')], { error: 'must be an object of pattern → replacement or a function' }).optional(),
    preserveHost: z.boolean().optional(),
    ws: z.boolean().optional(),
    xForwarded: z.boolean().optional(),
    allowSemicolons: z.boolean().optional(),
    onError: errorMode(z).optional(),
  }),
);

/** The keys of `options` that configure the pool. */
function poolOptions(options: UpstreamOptions): UpstreamOptions {
  const { target, targets, sticky, health, tls, agent } = options;
  return Object.fromEntries(Object.entries({ target, targets, sticky, health, tls, agent }).filter(([, value]) => value !== undefined));
}
/**
 * Creates a proxy middleware.
 *
 * @example
 * app.use('/api/orders', proxy({ target: 'http://127.0.0.1:4001' }));
 * app.use('/api/catalog', proxy({ targets: [{ url: 'http://10.0.0.1:4002', weight: 95 }, { url: 'http://10.0.0.2:4002', weight: 5 }] }));
 */
export function proxy(options: ProxyOptions, optionPrefix = '', sharedPool?: UpstreamPool): ProxyMiddleware {
  if (!options || typeof options !== 'object') {
    throw new ConfigError(`proxy() needs options. Example: proxy({ target: 'http://127.0.0.1:4001' }).`);
  }
  const config = parseOptions(proxySchema(), options, optionPrefix);
  const connectTimeout = config.connectTimeout ?? DEFAULTS.connectTimeout;
  const responseTimeout = config.timeout ?? DEFAULTS.timeout;
  const retries = config.retries ?? DEFAULTS.retries;
  const rewrite = compilePathRewrite(options.pathRewrite, `${optionPrefix}pathRewrite`);
  const errorMode = config.onError ?? 'respond';
  const stripPath = options.stripPath === true;
  const xForwarded = options.xForwarded !== false;
  const changeOrigin = options.preserveHost !== true;
  const websockets = options.ws === true;
  const pathOptions: PathOptions = { semicolons: options.allowSemicolons === true };
  /** Re-serialised bodies are reported once per proxy (once per route in a gateway). */
  let warnedReserialised = false;

  // A gateway's named upstream lends its pool (one health state for every route on it); it closes it itself.
  const pool = sharedPool ?? new UpstreamPool(poolOptions(options), optionPrefix);
  const client = new UpstreamClient(pool, { connectTimeout, timeout: responseTimeout, retries }, { preserveHost: !changeOrigin, tls: options.tls });

  const fail = (req: IncomingMessage, res: ServerResponse, next: ((err?: unknown) => void) | undefined, err: unknown) => respondOrNext(errorMode, req, res, next, err);

  const middleware = function proxyMiddleware(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void {
    const context = getContext(req, res);
    const url = forwardUrl(req, context, stripPath ? req.url ?? '/' : (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/');
    if (typeof url !== 'string') return fail(req, res, next, new GatewayError('ERR_BAD_PATH', { detail: url.refused }));

    // A body the route's features rewrote (transformBody, xml) replaces the client's.
    let body: Buffer | undefined = context.plan?.body;
    if (body === undefined) {
      try {
        const consumed = consumedBody(req);
        body = consumed?.bytes;
        if (consumed?.reserialised && !warnedReserialised) {
          warnedReserialised = true;
          consoleLogger.warn(`frontdoor: a body parser read the request body before the proxy${context.route ? ` of route "${context.route}"` : ''}, so the body is re-serialised and may differ from what the client sent (big numbers, decimals, duplicate keys, form arrays, signatures). Mount the gateway before express.json()/urlencoded(), or pass { verify: keepRawBody } to them (docs/proxy.md#bodies).`);
        }
      } catch (err) {
        return fail(req, res, next, err);
      }
    }
    const headers = upstreamHeaders(req, context, false);
    if (body) {
      headers['content-length'] = String(body.length);
      delete headers['transfer-encoding'];
      delete headers['content-encoding'];
    }
    client.forward(req, res, { url, headers, body }, (err: GatewayError) => fail(req, res, next, err));
  } as ProxyMiddleware;

  middleware.upgrade = function proxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    if (!websockets) {
      socket.destroy();
      return;
    }
    const context = getContext(req);
    const url = forwardUrl(req, context, req.url ?? '/');
    if (typeof url !== 'string') return rejectUpgrade(socket, 400, 'Bad Request');
    client.upgrade(req, socket, head, { url, headers: upstreamHeaders(req, context, true) });
  };

  /**
   * The path and query to send: the plan's (the gateway's matched path), or the request's own, normalised;
   * without the plan's removed query parameters, then through `pathRewrite`; or why the path is refused.
   */
  function forwardUrl(req: IncomingMessage, context: RequestContext, own: string): string | { refused: string } {
    let url = context.plan?.url;
    if (url === undefined) {
      const target = normaliseTarget(own, pathOptions);
      if (!target.ok) return { refused: target.reason };
      url = target.path + target.search;
    }
    if (context.plan?.removeQuery?.size) url = withoutQueryParameters(url, context.plan.removeQuery);
    return rewrite ? rewrite(url, req) : url;
  }

  /**
   * The upstream's headers: the client's without hop-by-hop headers, forged identity headers and what the
   * plan removes, then the gateway's own (the plan's, the request id), so a client cannot strip them.
   */
  function upstreamHeaders(req: IncomingMessage, context: RequestContext, websocket: boolean): IncomingHttpHeaders {
    const headers = forwardHeaders(req, { websocket, xForwarded });
    stripIdentityHeaders(headers);
    const plan = context.plan;
    if (plan) {
      if (plan.removeHeaders) for (const name of plan.removeHeaders) delete headers[name];
      if (plan.setHeaders) Object.assign(headers, plan.setHeaders);
    }
    headers[REQUEST_ID_HEADER] = context.requestId;
    return headers;
  }

  middleware.close = async function closeProxy(): Promise<void> {
    client.close();
    if (!sharedPool) await pool.close();
  };
  Object.defineProperty(middleware, 'pool', { value: pool, enumerable: true });
  return middleware;
}

function compilePathRewrite(rewrite: PathRewrite | undefined, option: string): ((path: string, req: IncomingMessage) => string) | undefined {
  if (rewrite === undefined) return undefined;
  if (typeof rewrite === 'function') {
    return (path, req) => {
      const result = rewrite(path, req);
      return typeof result === 'string' ? result : path;
    };
  }
  if (typeof rewrite !== 'object' || rewrite === null) throw new ConfigError(`"${option}" must be an object of pattern → replacement or a function.`);
  const rules = Object.entries(rewrite).map(([pattern, replacement]) => {
    try {
      return { regex: new RegExp(pattern), replacement: String(replacement) };
    } catch (err) {
      throw new ConfigError(`"${option}" has an invalid pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`);
    }
  });
  return (path) => {
    for (const rule of rules) if (rule.regex.test(path)) return path.replace(rule.regex, rule.replacement) || '/';
    return path;
  };
}

/** Upstream settings of a route: the pool plus timeouts and retries. */
export interface RouteUpstreamOptions extends UpstreamOptions {
  /** See ProxyOptions.connectTimeout. Defaults to `'5s'`. */
  connectTimeout?: Duration;
  /** See ProxyOptions.timeout. Defaults to `'30s'`. */
  timeout?: Duration;
  /** See ProxyOptions.retries. Defaults to 2. */
  retries?: number;
}

/** A gateway's named upstream: its pool, shared by the routes naming it, and its timeouts and retries. */
interface NamedUpstream {
  pool: UpstreamPool;
  limits: Pick<RouteUpstreamOptions, 'connectTimeout' | 'timeout' | 'retries'>;
}

const NAMED = 'upstream';
const UPSTREAM_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

/**
 * The route option `upstream`: the final handler that forwards to a service, with the route options
 * `rewrite`, `preserveHost`, `ws` and `xForwarded`. With `ws: true` it takes the route's upgrades, after
 * every upgrade-applying feature let them through. `upstream: 'orders'` names one of the gateway's
 * `upstreams`: every route naming it shares its pool, so its health, ejections and keep-alive sockets.
 */
export const proxyFeature: FeatureDescriptor = {
  option: 'upstream',
  reads: ['rewrite', 'preserveHost', 'ws', 'xForwarded'],
  gatewayOptions: ['upstreams'],
  phase: 'final',
  upgrade: { apply: true },
  schemas: defineSchema((z) => {
    const upstream = z.union([z.string(), routeUpstreamSchema()]);
    return {
      option: upstream,
      reads: {
        rewrite: proxySchema().shape.pathRewrite,
        preserveHost: z.boolean(),
        ws: z.boolean(),
        xForwarded: z.boolean(),
      },
      gateway: { upstreams: z.record(z.string().regex(UPSTREAM_NAME, { error: 'must start with a letter and have letters, digits, "-" and "_" only' }), upstream) },
    };
  }),
  prepare(gateway, shared) {
    const upstreams = gateway.upstreams;
    if (upstreams === undefined) return;
    if (!upstreams || typeof upstreams !== 'object' || Array.isArray(upstreams)) throw new ConfigError(`"upstreams" must be an object of name → upstream, e.g. { orders: { targets: ['http://10.0.0.5:4001', 'http://10.0.0.6:4001'] } }.`);
    for (const [name, value] of Object.entries(upstreams)) {
      const option = `upstreams.${name}`;
      if (!UPSTREAM_NAME.test(name)) throw new ConfigError(`"${option}": an upstream name starts with a letter and has letters, digits, "-" and "_" only.`);
      const options = typeof value === 'string' ? { target: value } : (value as RouteUpstreamOptions);
      if (!options || typeof options !== 'object') throw new ConfigError(`"${option}" must be a URL or an object with "target" or "targets".`);
      const resolved = parseOptions(routeUpstreamSchema(), options, `${option}.`);
      const limits = { connectTimeout: resolved.connectTimeout, timeout: resolved.timeout, retries: resolved.retries };
      // Compared by options: a reload that changes the upstream's targets or limits builds it anew; an unchanged one keeps its pool and health.
      shared.get<NamedUpstream>(NAMED, name, resolved, `"${option}"`, `"${option}"`, () => ({ pool: new UpstreamPool(poolOptions(options), `${option}.`), limits }), (named) => named.pool.close());
    }
  },
  build(value, scope) {
    const option = `${scope.optionPrefix}upstream`;
    const route = scope.route as { rewrite?: PathRewrite; preserveHost?: boolean; ws?: boolean; xForwarded?: boolean };
    const forwarding = { pathRewrite: route.rewrite, preserveHost: route.preserveHost, ws: route.ws, xForwarded: route.xForwarded, onError: 'next' as const };
    let routeProxy: ProxyMiddleware;
    if (typeof value === 'string' && UPSTREAM_NAME.test(value)) {
      const named = scope.shared.find<NamedUpstream>(NAMED, value);
      if (!named) {
        const names = Object.keys((scope.gateway.upstreams as object | undefined) ?? {});
        const suggestion = closest(value, names);
        throw new ConfigError(`"${option}" names the upstream ${JSON.stringify(value)}, which is not in "upstreams" (${names.join(', ') || 'none defined'}).${suggestion ? ` Did you mean "${suggestion}"?` : ' A URL needs its scheme: http://host:port.'}`);
      }
      routeProxy = proxy({ ...named.limits, ...forwarding }, `${option}.`, named.pool);
    } else {
      const upstream = typeof value === 'string' ? { target: value } : (value as RouteUpstreamOptions);
      if (!upstream || typeof upstream !== 'object') throw new ConfigError(`"${option}" must be a URL, the name of one of the gateway's "upstreams", or an object with "target" or "targets".`);
      // Forwarding options belong to the route ("stripPath", "rewrite", "ws" …; "onError" to gateway()).
      parseOptions(routeUpstreamSchema(), upstream, `${option}.`);
      // Routes with the same targets and pool options share one pool (one health state, one set of sockets),
      // and a reload that leaves them unchanged keeps it, with its health and its keep-alive sockets.
      const pooled = poolOptions(upstream);
      const print = fingerprint(pooled);
      const pool = scope.shared.get('pool', print, pooled, `"${option}"`, `"${option}"`, () => new UpstreamPool(pooled, `${option}.`), (shared) => shared.close());
      routeProxy = proxy({ ...upstream, ...forwarding }, `${option}.`, pool);
    }
    return { handler: routeProxy, upgrade: route.ws === true ? routeProxy.upgrade : undefined, pools: [routeProxy.pool], close: () => routeProxy.close() };
  },
};
