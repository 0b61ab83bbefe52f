/**
 * The upstream client: sends a planned request to a target of a pool and streams the answer back, with
 * connect and response timeouts, retries on another target, CLIENT spans, health reporting and ejection.
 * proxy() forwards through it; aggregation, shadowing and fallback are to use the same client rather than
 * copies of this logic.
 *
 * Requests are forwarded with node:http's own client on the pool's keep-alive agent (sendAttempt() below): the
 * plan is final when it gets here, so what is left per request is what Node needs to send it and what the
 * answer needs to be written back. That step used to go through http-proxy (http-proxy-middleware's engine),
 * whose per-request work (options and headers copied twice, `url.parse`, a closure per listener) measured as the
 * largest cost of the plain route that was not Node's HTTP itself (docs/performance.md, "The proxy engine").
 * WebSocket upgrades still go through http-proxy-middleware's proxy server (loaded by ./proxy-engine, so that it
 * never calls a deprecated Node API): they are not a per-request cost, and its socket handling is well proven.
 * The client drives each attempt (target, body, timeouts) so a failed attempt can go to another target.
 */
import http from 'node:http';
import https from 'node:https';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, RequestOptions, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { PassThrough } from 'node:stream';
import { createProxyMiddleware } from './proxy-engine';
import type { Plugin } from './proxy-engine';
import type { Span } from '@opentelemetry/api';
import { getContext } from './context';
import { GatewayError } from './errors';
import { scrubResponseHeaders } from './forwarding-headers';
import { endUpstreamSpan, spanEvent, startUpstreamSpan } from './telemetry';
import { attemptError, attemptErrorType, connectTimeoutError, IDEMPOTENT_METHODS, isClientGone, mayRetry, noHealthyUpstream, responseTimeoutError } from './upstream-errors';
import { reportUpstreamResult } from './upstream-observers';
import { bodyFilters, bufferLimit, failsOversize, FilteredResponse, responseFiltersOf, selfHandled } from './response-filters';
import type { ResponseFilter } from './response-filters';
import type { TlsOptions, UpstreamPool, UpstreamTarget } from './upstream-pool';

/** Resolved timeouts (ms) and retries of an upstream. */
export interface UpstreamLimits {
  connectTimeout: number;
  timeout: number;
  retries: number;
}

/** The request as the upstream gets it. */
export interface RequestPlan {
  /** Path and query. */
  url: string;
  /** Headers, final: hop-by-hop and forged headers already removed, the gateway's own set. */
  headers: IncomingHttpHeaders;
  /** The body's bytes when they were already read (a body parser ran first); else the request is streamed. */
  body: Buffer | undefined;
}

/** Where a request stands with the upstream; one per forwarded request, on a symbol of the request. */
interface Exchange {
  plan: RequestPlan;
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
  /** The client driving it (for abortUpstream()). */
  client: UpstreamClient;
  fail: (err: GatewayError) => void;
  req: IncomingMessage;
  res: ServerResponse;
  /** The current attempt's answer is written by sendFiltered(), for a body filter; else it streams through as it is. */
  selfHandle: boolean;
}

const EXCHANGE = Symbol('frontdoor.upstream.exchange');
type ForwardedRequest = IncomingMessage & { [EXCHANGE]?: Exchange };
/** An attempt's request carries its exchange, so that its listeners are shared functions, not closures per attempt. */
type AttemptRequest = ClientRequest & { [EXCHANGE]?: Exchange };

/** A target as the upstream requests need it, computed once per target instead of parsing a URL per request. */
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
 * Ends the upstream exchange of `req` under way, answering `err` through the final handler's error path: the
 * upstream's request is aborted, so it never gets the rest of a streamed body (bodyLimit() past its limit
 * mid-stream). Returns false when no exchange is under way (the request is not being forwarded, or is done).
 */
export function abortUpstream(req: IncomingMessage, err: GatewayError): boolean {
  const exchange = (req as ForwardedRequest)[EXCHANGE];
  return exchange ? exchange.client.abort(req, exchange, err) : false;
}

export class UpstreamClient {
  /** http-proxy-middleware's proxy server, made at the first WebSocket upgrade (requests do not use it). */
  private wsServer: Parameters<Plugin>[0] | undefined;
  private readonly proxyTargets: Map<UpstreamTarget, ProxyTarget>;
  private readonly baseOptions: { agent: unknown; changeOrigin: boolean; xfwd: false; secure: boolean };

  /** `preserveHost`: send the client's Host instead of the target's. */
  constructor(
    readonly pool: UpstreamPool,
    private readonly limits: UpstreamLimits,
    private readonly options: { preserveHost: boolean; tls?: TlsOptions },
  ) {
    this.proxyTargets = new Map(pool.targets.map((target) => [target, toProxyTarget(target.url)]));
    this.baseOptions = { agent: pool.agent, changeOrigin: !options.preserveHost, xfwd: false, secure: options.tls?.rejectUnauthorized !== false };
  }

  /**
   * Sends `plan` to a target and streams the answer to `res`. When no answer can be given (no healthy
   * target, every attempt failed, a timeout), `fail` gets the error to answer with. A client that leaves
   * stops the upstream work it asked for.
   */
  forward(req: IncomingMessage, res: ServerResponse, plan: RequestPlan, fail: (err: GatewayError) => void): void {
    const target = this.pool.pick(req);
    if (!target) return fail(noHealthyUpstream(this.pool));
    const headers = plan.headers;
    const hasBody = plan.body !== undefined || headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0;
    const exchange: Exchange = {
      plan,
      target,
      trial: target.state === 'ejected',
      tried: undefined,
      retriesLeft: this.limits.retries,
      idempotent: IDEMPOTENT_METHODS.has(req.method ?? ''),
      resendable: true,
      streamed: hasBody && plan.body === undefined,
      gate: undefined,
      connected: false,
      proxyReq: undefined,
      timer: undefined,
      responded: false,
      done: false,
      attempt: 0,
      attemptStartedAt: 0,
      span: undefined,
      client: this,
      fail,
      req,
      res,
      selfHandle: false,
    };
    (req as ForwardedRequest)[EXCHANGE] = exchange;
    // 'close' is emitted once: on() spares the once-wrapper and its state.
    res.on('close', () => {
      if (exchange.done) return;
      this.finish(exchange);
      if (!res.writableFinished) {
        // The client went away: stop the upstream work it asked for.
        exchange.proxyReq?.destroy();
        if (!exchange.responded) {
          this.pool.release(exchange.target, exchange.trial);
          this.attemptFailed(req, exchange, 'client_closed');
        }
      }
    });
    this.dispatch(req, res, exchange);
  }

  /** Ends an exchange under way with `err` (see abortUpstream()); false when it is over already. */
  abort(req: IncomingMessage, exchange: Exchange, err: GatewayError): boolean {
    if (exchange.done) return false;
    this.finish(exchange);
    drainBody(req, exchange);
    exchange.proxyReq?.destroy();
    if (!exchange.responded) {
      this.pool.release(exchange.target, exchange.trial);
      this.attemptFailed(req, exchange, err.code);
    }
    exchange.fail(err);
    return true;
  }

  /**
   * Proxies a WebSocket upgrade to a target. A failure before the handshake is answered on the socket with
   * a bare status line (the client's WebSocket library reads only the status).
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, plan: Pick<RequestPlan, 'url' | 'headers'>): void {
    const target = this.pool.pick(req);
    if (!target) return rejectUpgrade(socket, 503, 'Service Unavailable');
    const trial = target.state === 'ejected';
    // The handshake's verdict reaches the pool as a request's does: a 101 or an answer below 500 is a success (it
    // ends an ejected target's trial), an error or a 5xx a failure, a client gone first frees the trial slot.
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const verdict = (ok: boolean | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok === true) this.pool.reportSuccess(target);
      else if (ok === false) this.noteFailure(req, target, trial);
      else this.pool.release(target, trial);
    };
    const server = this.proxyServer();
    // http-proxy emits 'proxyReqWs' synchronously inside ws(), for this request only while the listener is on.
    const onProxyReq = (proxyReq: ClientRequest, forReq: IncomingMessage): void => {
      if (forReq !== req) return;
      proxyReq.once('upgrade', (_res: IncomingMessage, proxySocket: Duplex) => {
        verdict(true);
        // Either side gone ends the other: left to http-proxy, the client's socket can stay paused and
        // half-open after the upstream's reset, never reading the client's FIN.
        proxySocket.once('close', () => socket.destroy());
        socket.once('close', () => proxySocket.destroy());
      });
      proxyReq.once('response', (res: IncomingMessage) => verdict((res.statusCode ?? 502) < 500));
      socket.once('close', () => verdict(undefined));
      // A handshake the upstream never answers is a timeout (504), as a request's response would be.
      if (this.limits.timeout > 0) timer = setTimeout(() => proxyReq.destroy(responseTimeoutError()), this.limits.timeout);
    };
    server.on('proxyReqWs', onProxyReq as never);
    // As for requests: the plan is on req only while http-proxy builds the upstream request.
    const clientUrl = req.url;
    const clientHeaders = req.headers;
    req.url = plan.url;
    req.headers = plan.headers;
    try {
      server.ws(req, socket, head, {
        ...this.baseOptions,
        agent: false,
        target: this.proxyTargets.get(target) as never,
        ssl: target.url.protocol === 'https:' ? (this.options.tls as never) : undefined,
      }, ((err: NodeJS.ErrnoException) => {
        verdict(false);
        const status = attemptError(err).gatewayError.status;
        if (!socket.destroyed) rejectUpgrade(socket, status, http.STATUS_CODES[status] ?? 'Bad Gateway');
      }) as never);
    } finally {
      server.off('proxyReqWs', onProxyReq as never);
      req.url = clientUrl;
      req.headers = clientHeaders;
    }
  }

  /** Closes the WebSocket proxy server; the pool belongs to whoever created it. */
  close(): void {
    this.wsServer?.close();
  }

  /**
   * http-proxy-middleware's proxy server for upgrades, with its default plugins ejected: frontdoor answers
   * errors itself.
   */
  private proxyServer(): Parameters<Plugin>[0] {
    if (this.wsServer) return this.wsServer;
    let server!: Parameters<Plugin>[0];
    const capture: Plugin = (proxyServer) => {
      server = proxyServer;
    };
    createProxyMiddleware({ target: this.pool.targets[0].href, ejectPlugins: true, plugins: [capture] });
    this.wsServer = server;
    return server;
  }

  /** @internal The attempt's request has its socket, from the pool (connected) or new (connecting). */
  onProxyRequest(proxyReq: ClientRequest, req: IncomingMessage): void {
    const exchange = (req as ForwardedRequest)[EXCHANGE];
    if (!exchange) return;
    if (exchange.done) {
      proxyReq.destroy();
      return;
    }
    exchange.proxyReq = proxyReq;
    const socket = proxyReq.socket;
    if (!socket?.connecting) return this.connected(req, exchange, proxyReq);
    const connectTimeout = this.limits.connectTimeout;
    const timer = connectTimeout > 0 ? setTimeout(() => proxyReq.destroy(connectTimeoutError()), connectTimeout) : undefined;
    socket.once('connect', () => {
      clearTimeout(timer);
      this.connected(req, exchange, proxyReq);
    });
    proxyReq.once('close', () => clearTimeout(timer));
  }

  /**
   * The attempt's connection is open: from now on the upstream may receive bytes of the request. A streamed
   * body starts flowing only now, so a refused connection leaves it unread and the request can go elsewhere.
   */
  private connected(req: IncomingMessage, exchange: Exchange, proxyReq: ClientRequest): void {
    if (exchange.proxyReq !== proxyReq || exchange.done) return;
    exchange.connected = true;
    // Bytes of the request body may reach the upstream from now on: it must not be executed elsewhere too (fallback).
    if (exchange.streamed || exchange.plan.body !== undefined) getContext(req).upstreamBodySent = true;
    if (exchange.gate) {
      exchange.resendable = false;
      req.pipe(exchange.gate);
    }
  }

  /**
   * The upstream's response headers arrived: health, spans and observers hear of it, the response filters see
   * it. Returns whether the answer goes on to the client as it is (false: a filter diverted it, it is
   * self-handled, or the exchange was over already).
   */
  private onProxyResponse(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse, exchange: Exchange): boolean {
    if (exchange.timer) clearTimeout(exchange.timer);
    if (exchange.done) {
      proxyRes.destroy();
      return false;
    }
    exchange.responded = true;
    const status = proxyRes.statusCode ?? 502;
    if (status >= 500 && !expectedByFilters(req, status, proxyRes)) this.noteFailure(req, exchange.target, exchange.trial);
    else this.pool.reportSuccess(exchange.target);
    endUpstreamSpan(exchange.span, { status });
    const context = getContext(req);
    // The result's closure is made only for a request with observers (metrics()).
    if (context.upstreamObservers) reportUpstreamResult(context, () => ({ req, pool: this.pool, target: exchange.target.href, durationMs: performance.now() - exchange.attemptStartedAt, status }));
    scrubResponseHeaders(proxyRes.headers);
    // The client's connection is the gateway's business, not the upstream's: say what Node will do with it.
    proxyRes.headers.connection = res.shouldKeepAlive ? 'keep-alive' : 'close';
    // An upstream that dies mid-body must not leave the client waiting for the rest: abort it too.
    proxyRes.on('error', ignore);
    proxyRes.on('close', () => {
      if (!proxyRes.complete) res.destroy();
    });
    const filters = responseFiltersOf(req);
    if (!filters) return true;
    const response: FilteredResponse = { status, headers: proxyRes.headers };
    for (const filter of filters) {
      const refused = filter.divert?.(response, req);
      if (refused) {
        // Nothing of this answer reaches the client; read it to the end so its connection can be reused.
        proxyRes.resume();
        this.finish(exchange);
        exchange.fail(refused);
        return false;
      }
    }
    for (const filter of filters) filter.headers?.(response, req);
    if (response.status !== status) {
      proxyRes.statusCode = response.status;
      proxyRes.statusMessage = ''; // the upstream's reason phrase belongs to its own status
    }
    // Self-handled (dispatch saw a filter asking for bodies): the filters that want this answer's body say so now.
    if (!exchange.selfHandle) return true;
    sendFiltered(req, res, proxyRes, response, bodyFilters(filters, response, req), exchange.fail);
    return false;
  }

  private finish(exchange: Exchange): void {
    exchange.done = true;
    if (exchange.timer) clearTimeout(exchange.timer);
  }

  /** Reports a failed attempt to passive health, and an ejection it causes to the request's span. */
  private noteFailure(req: IncomingMessage, target: UpstreamTarget, trial: boolean): void {
    if (this.pool.reportFailure(target, trial)) spanEvent(req, 'frontdoor.upstream.ejected', { 'frontdoor.upstream': target.href });
  }

  /** Closes the current attempt's span and reports it to observers. */
  private attemptFailed(req: IncomingMessage, exchange: Exchange, errorType: string): void {
    endUpstreamSpan(exchange.span, { errorType });
    exchange.span = undefined;
    const context = getContext(req);
    if (context.upstreamObservers) reportUpstreamResult(context, () => ({ req, pool: this.pool, target: exchange.target.href, durationMs: performance.now() - exchange.attemptStartedAt, errorType }));
  }

  private dispatch(req: IncomingMessage, res: ServerResponse, exchange: Exchange): void {
    const target = exchange.target;
    const context = getContext(req);
    context.upstream = target.href;
    exchange.proxyReq = undefined;
    exchange.connected = false;
    exchange.gate = exchange.streamed ? new PassThrough() : undefined;
    exchange.attemptStartedAt = performance.now();
    // The traceparent goes into the upstream's headers (the plan), never into the client's request.
    exchange.span = context.span ? startUpstreamSpan(req, target.url, req.method ?? 'GET', exchange.attempt, exchange.plan.headers, exchange.plan.url) : undefined;
    const timeout = this.limits.timeout;
    exchange.timer = timeout > 0 ? setTimeout(() => this.onResponseTimeout(req, exchange), timeout) : undefined;
    const filters = responseFiltersOf(req);
    // A filter that wants the body: the client answers itself (onProxyResponse), so it can buffer.
    exchange.selfHandle = filters !== undefined && selfHandled(filters);
    let proxyReq: AttemptRequest;
    try {
      proxyReq = this.sendAttempt(req, exchange, this.proxyTargets.get(target) as ProxyTarget);
    } catch (err) {
      // http.request() throws synchronously on request data it refuses (e.g. an invalid header value).
      this.finish(exchange);
      this.attemptFailed(req, exchange, 'invalid_request');
      this.pool.release(target, exchange.trial);
      exchange.fail(new GatewayError('ERR_UPSTREAM_UNAVAILABLE', { detail: 'The request could not be sent to the upstream.', cause: err }));
      return;
    }
    const body = exchange.plan.body;
    if (body) proxyReq.end(body);
    else if (exchange.gate) exchange.gate.pipe(proxyReq);
    else proxyReq.end();
  }

  /**
   * Starts one attempt's request on `target`: the plan's method, path and headers (with the target's Host
   * unless `preserveHost`), on the pool's keep-alive agent. Its events go to shared listeners that find the
   * exchange on the request.
   */
  private sendAttempt(req: IncomingMessage, exchange: Exchange, target: ProxyTarget): AttemptRequest {
    const plan = exchange.plan;
    // A copy: the plan stays as the features made it, for another attempt on another target.
    const headers: IncomingHttpHeaders = { ...plan.headers };
    if (this.baseOptions.changeOrigin) headers.host = target.host;
    const method = req.method ?? 'GET';
    // A DELETE or OPTIONS without a length says it has no body, as http-proxy did (some servers wait for one otherwise).
    if ((method === 'DELETE' || method === 'OPTIONS') && !headers['content-length']) {
      headers['content-length'] = '0';
      delete headers['transfer-encoding'];
    }
    const options: RequestOptions & { rejectUnauthorized?: boolean } = {
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method,
      path: upstreamPath(target.path, plan.url),
      headers,
      agent: this.pool.agent,
    };
    const secure = target.protocol === 'https:';
    if (secure) options.rejectUnauthorized = this.baseOptions.secure;
    const proxyReq: AttemptRequest = (secure ? https : http).request(options);
    proxyReq[EXCHANGE] = exchange;
    proxyReq.on('socket', onAttemptSocket);
    proxyReq.on('error', onAttemptRequestError);
    proxyReq.on('response', onAttemptResponse);
    return proxyReq;
  }

  /** @internal The attempt's answer arrived: written back to the client as it is, unless a filter or the exchange says otherwise. */
  respond(proxyReq: AttemptRequest, proxyRes: IncomingMessage, exchange: Exchange): void {
    const { req, res } = exchange;
    if (exchange.proxyReq !== proxyReq && exchange.proxyReq !== undefined) {
      proxyRes.destroy();
      return;
    }
    if (!this.onProxyResponse(proxyRes, req, res, exchange)) return;
    if (res.writableEnded) {
      proxyRes.resume();
      return;
    }
    if (!res.headersSent) {
      const headers = proxyRes.headers;
      // An HTTP/1.0 client cannot read a chunked body: Node ends the body by closing the connection instead.
      if (req.httpVersion === '1.0') delete headers['transfer-encoding'];
      for (const name in headers) {
        const value = headers[name];
        if (value !== undefined) res.setHeader(name, value);
      }
      res.statusCode = proxyRes.statusCode ?? 502;
      if (proxyRes.statusMessage) res.statusMessage = proxyRes.statusMessage;
    }
    proxyRes.pipe(res);
  }

  /** @internal The attempt's request failed (refused, reset, timed out): retried elsewhere or answered. */
  attemptRequestFailed(proxyReq: AttemptRequest, err: NodeJS.ErrnoException, exchange: Exchange): void {
    const { req, res } = exchange;
    // A reset caused by the client going away: its 'close' already ended the exchange.
    if (req.socket.destroyed && err.code === 'ECONNRESET') {
      proxyReq.destroy();
      return;
    }
    if (exchange.proxyReq !== undefined && exchange.proxyReq !== proxyReq) return;
    this.onAttemptError(err, req, res);
  }

  private onResponseTimeout(req: IncomingMessage, exchange: Exchange): void {
    exchange.timer = undefined;
    if (exchange.done || exchange.responded) return;
    if (exchange.proxyReq) {
      exchange.proxyReq.destroy(responseTimeoutError());
      return;
    }
    // Still queued for a socket of our own pool: answer now; the request is dropped when a socket comes.
    this.finish(exchange);
    this.pool.release(exchange.target, exchange.trial);
    this.attemptFailed(req, exchange, 'ERR_UPSTREAM_TIMEOUT');
    exchange.fail(new GatewayError('ERR_UPSTREAM_TIMEOUT', { detail: 'The upstream did not answer in time.' }));
  }

  private onAttemptError(err: NodeJS.ErrnoException, req: IncomingMessage, res: ServerResponse): void {
    const exchange = (req as ForwardedRequest)[EXCHANGE];
    if (!exchange || exchange.done) return;
    const target = exchange.target;
    if (isClientGone(req, res)) {
      this.finish(exchange);
      this.pool.release(target, exchange.trial);
      this.attemptFailed(req, exchange, 'client_closed');
      return;
    }
    if (exchange.timer) clearTimeout(exchange.timer);
    this.noteFailure(req, target, exchange.trial);
    const error = attemptError(err);
    this.attemptFailed(req, exchange, attemptErrorType(err));
    const resend = { method: req.method ?? 'GET', connected: exchange.connected, resendable: exchange.resendable, retriesLeft: exchange.retriesLeft };
    if (!res.headersSent && !exchange.responded && mayRetry(error, resend)) {
      const next = this.pool.retryTarget(req, (exchange.tried ??= new Set()), target, error.reset && exchange.proxyReq?.reusedSocket === true);
      if (next) {
        exchange.retriesLeft -= 1;
        exchange.attempt += 1;
        spanEvent(req, 'frontdoor.retry', { 'frontdoor.upstream': next.href, 'error.type': err?.code ?? 'error' });
        exchange.target = next;
        exchange.trial = next.state === 'ejected';
        this.dispatch(req, res, exchange);
        return;
      }
    }
    this.finish(exchange);
    drainBody(req, exchange);
    exchange.fail(error.gatewayError);
  }
}

/** A 5xx answer a route's filter says is the service's normal answer (a SOAP Fault), not a failure of the target. */
function expectedByFilters(req: IncomingMessage, status: number, proxyRes: IncomingMessage): boolean {
  const filters = responseFiltersOf(req);
  if (!filters) return false;
  const response = { status, headers: proxyRes.headers };
  return filters.some((filter) => filter.expected?.(response, req) === true);
}

/**
 * The client's body stops going to a failed attempt. Once it had started flowing there, the rest is read and
 * dropped: left paused on a keep-alive connection, it would keep the next request on that connection from ever
 * being read (Node discards an unread body itself only when nobody started reading it). A body that never
 * started flowing is left as it is, for whoever answers next (fallback() hands it to the app).
 */
function drainBody(req: IncomingMessage, exchange: Exchange): void {
  if (!exchange.gate) return;
  req.unpipe(exchange.gate);
  if (exchange.connected && !req.complete) req.resume();
}

/**
 * Answers with the upstream's response after the body filters that want it ran on it, buffered up to their
 * limit. A body over the limit (or one that cannot have a body, or that no filter wants) streams through as it is.
 */
function sendFiltered(req: IncomingMessage, res: ServerResponse, proxyRes: IncomingMessage, response: FilteredResponse, filters: readonly ResponseFilter[], fail: (err: GatewayError) => void): void {
  const writeHead = () => {
    res.statusCode = response.status;
    for (const [name, value] of Object.entries(response.headers)) if (value !== undefined) res.setHeader(name, value);
  };
  const limit = bufferLimit(filters) ?? -1;
  const bodiless = req.method === 'HEAD' || response.status === 204 || response.status === 304 || filters.length === 0;
  const declared = Number(response.headers['content-length'] ?? NaN);
  const mustFilter = failsOversize(filters);
  const oversize = () => {
    proxyRes.destroy();
    fail(new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: `The upstream's answer is larger than the ${limit} bytes this route can transform.` }));
  };
  if (!bodiless && declared > limit && mustFilter) return oversize();
  if (bodiless || declared > limit) {
    writeHead();
    proxyRes.pipe(res);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    chunks.push(chunk);
    if (size <= limit) return;
    proxyRes.off('data', onData);
    proxyRes.off('end', onEnd);
    if (mustFilter) return oversize();
    // Too big to filter: send what came so far and stream the rest.
    writeHead();
    for (const part of chunks) res.write(part);
    proxyRes.pipe(res);
  };
  const onEnd = () => {
    let body: Promise<Buffer> = Promise.resolve(Buffer.concat(chunks));
    for (const filter of filters) {
      const buffered = filter.buffer;
      if (buffered) body = body.then((current) => buffered.body(current, response, req));
    }
    body.then(
      (final) => {
        delete response.headers['transfer-encoding'];
        response.headers['content-length'] = String(final.length);
        writeHead();
        res.end(final);
      },
      (err: unknown) => fail(err instanceof GatewayError ? err : new GatewayError('ERR_INTERNAL', { detail: 'The response could not be processed.', cause: err })),
    );
  };
  proxyRes.on('data', onData);
  proxyRes.on('end', onEnd);
}

// The listeners of every attempt's request, shared: the exchange is on the request.
function onAttemptSocket(this: AttemptRequest): void {
  const exchange = this[EXCHANGE];
  if (exchange) exchange.client.onProxyRequest(this, exchange.req);
}

function onAttemptResponse(this: AttemptRequest, proxyRes: IncomingMessage): void {
  const exchange = this[EXCHANGE];
  if (exchange) exchange.client.respond(this, proxyRes, exchange);
  else proxyRes.resume();
}

function onAttemptRequestError(this: AttemptRequest, err: NodeJS.ErrnoException): void {
  const exchange = this[EXCHANGE];
  if (exchange) exchange.client.attemptRequestFailed(this, err, exchange);
}

/**
 * The path the upstream gets: the target's base path, then the planned path and query (already normalised,
 * so its slashes are single).
 */
function upstreamPath(base: string, url: string): string {
  if (base === '') return url;
  return url.startsWith('/') ? base + url : `${base}/${url}`;
}

function ignore(): void {}

/** Refuses an upgrade with a bare status line (no body: WebSocket clients read only the status). */
export function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

function toProxyTarget(url: URL): ProxyTarget {
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return { protocol: url.protocol, hostname, host: `${hostname}:${port}`, port, path, pathname: path, href: url.href };
}
