/**
 * proxy(): forwards a request to one upstream or a load-balanced set, streaming both ways, with
 * keep-alive pooling, passive/active health, idempotent retries, connect and response timeouts, and
 * problem+json errors. Works on Express 4, Express 5 and plain connect apps.
 *
 * The forwarding itself is http-proxy-middleware's proxy server, obtained through its plugin API;
 * frontdoor drives each attempt (target, body, timeouts) so a failed attempt can go to another target.
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { PassThrough, Readable } from 'node:stream';
import { createProxyMiddleware } from 'http-proxy-middleware';
import type { Plugin } from 'http-proxy-middleware';
import type { IncomingHttpHeaders } from 'node:http';
import { getContext, REQUEST_ID_HEADER, RequestContext } from '../lib/context';
import { withoutQueryParameters } from '../lib/query';
import type { Duration } from '../lib/duration';
import { ConfigError, GatewayError } from '../lib/errors';
import { forwardHeaders, scrubResponseHeaders } from '../lib/forwarding-headers';
import { closest } from '../lib/options';
import { defineSchema, duration, errorMode, fn, parseOptions } from '../lib/schema';
import type { Z } from '../lib/schema';
import { normaliseTarget, PathOptions } from '../lib/path';
import { stripIdentityHeaders } from '../lib/auth-headers';
import type { ErrorMode, FeatureDescriptor } from '../lib/pipeline';
import { sendProblem } from '../lib/problem';
import { consumedBody } from '../lib/request-body';
import { consoleLogger } from '../lib/log';
import type { Span } from '@opentelemetry/api';
import { endUpstreamSpan, spanEvent, startUpstreamSpan } from '../lib/telemetry';
import { attemptError, connectTimeoutError, responseTimeoutError, isClientGone } from '../lib/upstream-errors';
import { emitUpstreamResult } from '../lib/upstream-events';
import { UpstreamOptions, UpstreamPool, UpstreamTarget, upstreamShape } from '../lib/upstream-pool';

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
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Where a request stands with the upstream; one per proxied request, on a symbol of the request. */
interface Exchange {
  /** Path and query sent upstream. */
  url: string;
  /** Headers sent upstream: the client's, without hop-by-hop and forged identity headers, plus the plan's. */
  headers: IncomingHttpHeaders;
  target: UpstreamTarget;
  /** The current attempt is the one trial the pool lets through to an ejected target. */
  trial: boolean;
  tried: Set<UpstreamTarget> | undefined;
  retriesLeft: number;
  /** Idempotent: may be sent again after it reached an upstream (when its body can be sent again too). */
  idempotent: boolean;
  /** The body is empty or buffered, so it can be sent again; a streamed body only until it starts flowing. */
  resendable: boolean;
  /** A streamed request body: piped into each attempt's gate once that attempt's connection is open. */
  streamed: boolean;
  /** The gate of the current attempt (streamed bodies), opened on connect. */
  gate: PassThrough | undefined;
  /** The current attempt's connection opened: bytes of the request may have reached the upstream. */
  connected: boolean;
  body: Buffer | undefined;
  proxyReq: ClientRequest | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The upstream's response headers arrived. */
  responded: boolean;
  /** The exchange is over: answered, failed, or the client left. Late events are ignored. */
  done: boolean;
  /** Attempts made so far (the first is 0). */
  attempt: number;
  /** When the current attempt started (performance.now()). */
  attemptStartedAt: number;
  /** CLIENT span of the current attempt, when the request is traced. */
  span: Span | undefined;
  next: ((err?: unknown) => void) | undefined;
}

const EXCHANGE = Symbol('frontdoor.proxy.exchange');
type ProxiedRequest = IncomingMessage & { [EXCHANGE]?: Exchange; originalUrl?: string };

/** A target shaped as http-proxy reads it, computed once per target instead of parsing a URL per request. */
interface ProxyTarget {
  protocol: string;
  hostname: string;
  host: string;
  port: string;
  path: string;
  pathname: string;
  href: string;
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
  const proxyTargets = new Map<UpstreamTarget, ProxyTarget>(pool.targets.map((target) => [target, toProxyTarget(target.url)]));
  const baseOptions = {
    agent: pool.agent,
    changeOrigin,
    xfwd: false,
    secure: options.tls?.rejectUnauthorized !== false,
  };

  // http-proxy-middleware's proxy server, with its default plugins ejected: frontdoor answers errors
  // itself and wires the proxy events below.
  let server!: Parameters<Plugin>[0];
  const capture: Plugin = (proxyServer) => {
    server = proxyServer;
  };
  createProxyMiddleware({ target: pool.targets[0].href, ejectPlugins: true, plugins: [capture] });

  server.on('proxyReq', function onProxyRequest(proxyReq: ClientRequest, req: IncomingMessage) {
    const exchange = (req as ProxiedRequest)[EXCHANGE];
    if (!exchange) return;
    if (exchange.done) {
      proxyReq.destroy();
      return;
    }
    exchange.proxyReq = proxyReq;
    // http-proxy emits 'proxyReq' from the request's 'socket' event: the socket is there, from the pool
    // (connected) or new (connecting).
    const socket = proxyReq.socket;
    if (!socket?.connecting) return connected(req, exchange, proxyReq);
    const timer = connectTimeout > 0 ? setTimeout(() => proxyReq.destroy(connectTimeoutError()), connectTimeout) : undefined;
    socket.once('connect', () => {
      clearTimeout(timer);
      connected(req, exchange, proxyReq);
    });
    proxyReq.once('close', () => clearTimeout(timer));
  });

  /**
   * The attempt's connection is open: from now on the upstream may receive bytes of the request. A streamed
   * body starts flowing only now, so a refused connection leaves it unread and the request can go elsewhere.
   */
  function connected(req: IncomingMessage, exchange: Exchange, proxyReq: ClientRequest): void {
    if (exchange.proxyReq !== proxyReq || exchange.done) return;
    exchange.connected = true;
    if (exchange.gate) {
      exchange.resendable = false;
      req.pipe(exchange.gate);
    }
  }

  server.on('proxyRes', function onProxyResponse(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) {
    const exchange = (req as ProxiedRequest)[EXCHANGE];
    if (!exchange) return;
    if (exchange.timer) clearTimeout(exchange.timer);
    if (exchange.done) {
      proxyRes.destroy();
      return;
    }
    exchange.responded = true;
    const status = proxyRes.statusCode ?? 502;
    if (status >= 500) noteFailure(req, exchange.target, exchange.trial);
    else pool.reportSuccess(exchange.target);
    endUpstreamSpan(exchange.span, { status });
    emitUpstreamResult(() => ({ req, target: exchange.target.href, durationMs: performance.now() - exchange.attemptStartedAt, status }));
    scrubResponseHeaders(proxyRes.headers);
    // The client's connection is the gateway's business, not the upstream's: say what Node will do with
    // it (http-proxy would otherwise copy the upstream's value or default to keep-alive).
    proxyRes.headers.connection = res.shouldKeepAlive ? 'keep-alive' : 'close';
    // An upstream that dies mid-body must not leave the client waiting for the rest: abort it too.
    proxyRes.on('error', () => undefined);
    proxyRes.once('close', () => {
      if (!proxyRes.complete) res.destroy();
    });
  });

  function fail(req: IncomingMessage, res: ServerResponse, next: ((err?: unknown) => void) | undefined, err: unknown): void {
    if (errorMode === 'next' && next && !res.headersSent) next(err);
    else sendProblem(req, res, err);
  }

  function finish(exchange: Exchange): void {
    exchange.done = true;
    if (exchange.timer) clearTimeout(exchange.timer);
  }

  /** Reports a failed attempt to passive health, and an ejection it causes to the request's span. */
  function noteFailure(req: IncomingMessage, target: UpstreamTarget, trial: boolean): void {
    if (pool.reportFailure(target, trial)) spanEvent(req, 'frontdoor.upstream.ejected', { 'frontdoor.upstream': target.href });
  }

  /** Closes the current attempt's span and reports it to observers. */
  function attemptFailed(req: IncomingMessage, exchange: Exchange, errorType: string): void {
    endUpstreamSpan(exchange.span, { errorType });
    exchange.span = undefined;
    emitUpstreamResult(() => ({ req, target: exchange.target.href, durationMs: performance.now() - exchange.attemptStartedAt, errorType }));
  }

  function dispatch(req: ProxiedRequest, res: ServerResponse, exchange: Exchange): void {
    const target = exchange.target;
    const context = getContext(req);
    context.upstream = target.href;
    exchange.proxyReq = undefined;
    exchange.connected = false;
    exchange.gate = exchange.streamed ? new PassThrough() : undefined;
    exchange.attemptStartedAt = performance.now();
    exchange.span = context.span ? startUpstreamSpan(req, target.url, req.method ?? 'GET', exchange.attempt) : undefined;
    exchange.timer = responseTimeout > 0 ? setTimeout(onResponseTimeout, responseTimeout, req, res, exchange) : undefined;
    // http-proxy builds the upstream request from req.url and req.headers, synchronously inside web(): they
    // carry the plan for that call only, and the client's request is back as it was sent right after.
    const clientUrl = req.url;
    const clientHeaders = req.headers;
    req.url = exchange.url;
    req.headers = exchange.headers;
    try {
      server.web(req, res, {
        ...baseOptions,
        target: proxyTargets.get(target) as never,
        buffer: (exchange.body ? Readable.from([exchange.body]) : exchange.gate) as never,
      }, onAttemptError as never);
    } catch (err) {
      // http.request() throws synchronously on request data it refuses (e.g. an invalid header value).
      finish(exchange);
      attemptFailed(req, exchange, 'invalid_request');
      pool.release(target, exchange.trial);
      fail(req, res, exchange.next, new GatewayError('ERR_UPSTREAM_UNAVAILABLE', { detail: 'The request could not be sent to the upstream.', cause: err }));
    } finally {
      req.url = clientUrl;
      req.headers = clientHeaders;
    }
  }

  function onResponseTimeout(req: ProxiedRequest, res: ServerResponse, exchange: Exchange): void {
    exchange.timer = undefined;
    if (exchange.done || exchange.responded) return;
    if (exchange.proxyReq) {
      exchange.proxyReq.destroy(responseTimeoutError());
      return;
    }
    // Still queued for a socket of our own pool: answer now; the request is dropped when a socket comes.
    finish(exchange);
    pool.release(exchange.target, exchange.trial);
    attemptFailed(req, exchange, 'ERR_UPSTREAM_TIMEOUT');
    fail(req, res, exchange.next, new GatewayError('ERR_UPSTREAM_TIMEOUT', { detail: 'The upstream did not answer in time.' }));
  }

  function onAttemptError(err: NodeJS.ErrnoException, req: ProxiedRequest, res: ServerResponse): void {
    const exchange = req[EXCHANGE];
    if (!exchange || exchange.done) return;
    const target = exchange.target;
    if (isClientGone(req, res)) {
      finish(exchange);
      pool.release(target, exchange.trial);
      attemptFailed(req, exchange, 'client_closed');
      return;
    }
    if (exchange.timer) clearTimeout(exchange.timer);
    noteFailure(req, target, exchange.trial);
    const error = attemptError(err);
    attemptFailed(req, exchange, err?.code === 'ERR_FRONTDOOR_RESPONSE_TIMEOUT' ? 'ERR_UPSTREAM_TIMEOUT' : err?.code === 'ERR_FRONTDOOR_CONNECT_TIMEOUT' ? 'ERR_UPSTREAM_CONNECT_TIMEOUT' : err?.code ?? 'error');
    const reusedSocket = exchange.proxyReq?.reusedSocket === true;
    // Sent again only what can be: a request whose connection never opened (nginx and Envoy retry those for every
    // method: nothing reached the upstream), or an idempotent one whose body is still at hand.
    const mayResend = exchange.resendable && (!exchange.connected || exchange.idempotent);
    if (!res.headersSent && !exchange.responded && mayResend && exchange.retriesLeft > 0 && error.retriable) {
      (exchange.tried ??= new Set()).add(target);
      // A reset on a reused keep-alive socket is the classic stale-connection race: the same target may
      // be tried again when no other is left.
      const next = pool.pick(req, exchange.tried) ?? (error.reset && reusedSocket && target.state === 'healthy' ? target : undefined);
      if (next) {
        exchange.retriesLeft -= 1;
        exchange.attempt += 1;
        spanEvent(req, 'frontdoor.retry', { 'frontdoor.upstream': next.href, 'error.type': err?.code ?? 'error' });
        exchange.target = next;
        exchange.trial = next.state === 'ejected';
        dispatch(req, res, exchange);
        return;
      }
    }
    finish(exchange);
    fail(req, res, exchange.next, error.gatewayError);
  }

  const middleware = function proxyMiddleware(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void {
    const request = req as ProxiedRequest;
    const context = getContext(req, res);
    const url = forwardUrl(req, context, stripPath ? req.url ?? '/' : request.originalUrl ?? req.url ?? '/');
    if (typeof url !== 'string') return fail(req, res, next, new GatewayError('ERR_BAD_PATH', { detail: url.refused }));

    let body: Buffer | undefined;
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
    const target = pool.pick(req);
    if (!target) return fail(req, res, next, noHealthyUpstream(pool));

    const headers = upstreamHeaders(req, context, false);
    if (body) {
      headers['content-length'] = String(body.length);
      delete headers['transfer-encoding'];
      delete headers['content-encoding'];
    }
    const hasBody = body !== undefined || headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0;
    const exchange: Exchange = {
      url,
      headers,
      target,
      trial: target.state === 'ejected',
      tried: undefined,
      retriesLeft: retries,
      idempotent: IDEMPOTENT.has(req.method ?? ''),
      resendable: true,
      streamed: hasBody && body === undefined,
      gate: undefined,
      connected: false,
      body,
      proxyReq: undefined,
      timer: undefined,
      responded: false,
      done: false,
      next,
      attempt: 0,
      attemptStartedAt: 0,
      span: undefined,
    };
    request[EXCHANGE] = exchange;
    res.once('close', function onClientClose() {
      if (exchange.done) return;
      finish(exchange);
      if (!res.writableFinished) {
        // The client went away: stop the upstream work it asked for.
        exchange.proxyReq?.destroy();
        if (!exchange.responded) {
          pool.release(exchange.target, exchange.trial);
          attemptFailed(req, exchange, 'client_closed');
        }
      }
    });
    dispatch(request, res, exchange);
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
    const target = pool.pick(req);
    if (!target) return rejectUpgrade(socket, 503, 'Service Unavailable');
    const trial = target.state === 'ejected';
    // As for requests: the plan is on req only while http-proxy builds the upstream request.
    const clientUrl = req.url;
    const clientHeaders = req.headers;
    req.url = url;
    req.headers = upstreamHeaders(req, context, true);
    try {
      server.ws(req, socket, head, {
        ...baseOptions,
        agent: false,
        target: proxyTargets.get(target) as never,
        ssl: target.url.protocol === 'https:' ? (options.tls as never) : undefined,
      }, ((err: NodeJS.ErrnoException) => {
        noteFailure(req, target, trial);
        if (!socket.destroyed) rejectUpgrade(socket, attemptError(err).gatewayError.status, 'Bad Gateway');
      }) as never);
    } finally {
      req.url = clientUrl;
      req.headers = clientHeaders;
    }
  };

  /**
   * The path and query to send: the plan's (the gateway's matched path), or the request's own, normalised;
   * without the plan's removed query parameters, then through `pathRewrite`; or why the path is refused.
   */
  function forwardUrl(req: IncomingMessage, context: RequestContext, own: string): string | { refused: string } {
    let url = context.plan?.url ?? context.forwardUrl;
    if (url === undefined) {
      const target = normaliseTarget(own, pathOptions);
      if (!target.ok) return { refused: target.reason };
      url = target.path + target.search;
    }
    if (context.plan?.removeQuery.size) url = withoutQueryParameters(url, context.plan.removeQuery);
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
      for (const name of plan.removeHeaders) delete headers[name];
      Object.assign(headers, plan.setHeaders);
    }
    if (context.upstreamHeaders) Object.assign(headers, context.upstreamHeaders);
    headers[REQUEST_ID_HEADER] = context.requestId;
    return headers;
  }

  middleware.close = async function closeProxy(): Promise<void> {
    server.close();
    if (!sharedPool) await pool.close();
  };
  Object.defineProperty(middleware, 'pool', { value: pool, enumerable: true });
  return middleware;
}

function noHealthyUpstream(pool: UpstreamPool): GatewayError {
  return new GatewayError('ERR_NO_HEALTHY_UPSTREAM', {
    detail: 'No upstream is available to serve the request. Try again later.',
    headers: { 'Retry-After': String(pool.retryAfterSeconds()) },
  });
}

function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

function toProxyTarget(url: URL): ProxyTarget {
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return { protocol: url.protocol, hostname, host: `${hostname}:${port}`, port, path, pathname: path, href: url.href };
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
      shared.get<NamedUpstream>(NAMED, name, name, `"${option}"`, `"${option}"`, () => ({ pool: new UpstreamPool(poolOptions(options), `${option}.`), limits }), (named) => named.pool.close());
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
      routeProxy = proxy({ ...upstream, ...forwarding }, `${option}.`);
    }
    return { handler: routeProxy, upgrade: route.ws === true ? routeProxy.upgrade : undefined, pool: routeProxy.pool, close: () => routeProxy.close() };
  },
};
