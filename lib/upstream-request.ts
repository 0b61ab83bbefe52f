/**
 * The buffered upstream client: one request to a target of a pool, the whole answer read into memory up to a
 * limit. For features that need an upstream's answer as a value rather than a stream to pass on (aggregation;
 * later shadow comparison). It shares the streaming client's machinery: the pool's balancer, keep-alive agent
 * and passive health, the same error table (lib/upstream-errors.ts) and retry rule, a CLIENT span per attempt
 * and one result per attempt for metrics(). The streaming proxy is lib/upstream-client.ts.
 */
import http from 'node:http';
import https from 'node:https';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { getContext } from './context';
import { GatewayError } from './errors';
import { endUpstreamSpan, spanEvent, startUpstreamSpan } from './telemetry';
import { attemptError, attemptErrorType, connectTimeoutError, mayRetry, noHealthyUpstream, responseTimeoutError } from './upstream-errors';
import { reportUpstreamResult } from './upstream-observers';
import type { UpstreamPool, UpstreamTarget } from './upstream-pool';

/** The request to send: path and query relative to the target (its own path is put in front). */
export interface BufferedRequest {
  method: string;
  /** Path and query, starting with `/`. */
  path: string;
  /** Final headers: the target's Host is added, nothing else is removed. */
  headers: Record<string, string>;
  body?: Buffer;
}

export interface BufferedOptions {
  /** Time for one attempt, from sending to the last byte of the answer (ms); 0 for none. */
  timeout: number;
  /** Time to open a connection (ms); 0 for none. A connect timeout is retried like a refused connection. */
  connectTimeout: number;
  /** Further attempts on another target, by the streaming client's rule (see mayRetry below). */
  retries: number;
  /** Largest answer body read; a larger one fails with ERR_UPSTREAM_BAD_RESPONSE. */
  maxBytes: number;
  /** Aborts the request: the upstream sees its connection closed, the promise rejects with a CancelledError. */
  signal?: AbortSignal;
  /** The client's request: its context carries the span (parent of the CLIENT spans) and the result observers. */
  req: IncomingMessage;
  /** Added to each CLIENT span (e.g. the aggregated call's name). */
  attributes?: Record<string, string>;
}

export interface BufferedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The target that answered (its URL without trailing slash). */
  target: string;
}

/** The request was aborted through its signal: not a failure of the upstream. */
export class CancelledError extends Error {
  readonly code = 'ERR_FRONTDOOR_CANCELLED';
  constructor() {
    super('The upstream request was cancelled.');
    this.name = 'CancelledError';
  }
}

/**
 * Sends `request` to a target of `pool` and reads the answer (any status) up to `options.maxBytes`. Rejects with
 * a GatewayError (no healthy target, refused, reset, timed out, answer too large) or a CancelledError.
 */
export function sendBuffered(pool: UpstreamPool, request: BufferedRequest, options: BufferedOptions): Promise<BufferedResponse> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(new CancelledError());
    const first = pool.pick(options.req);
    if (!first) return reject(noHealthyUpstream(pool));
    new Attempts(pool, request, options, resolve, reject).send(first);
  });
}

/** The attempts of one buffered request, one at a time. */
class Attempts {
  private tried: Set<UpstreamTarget> | undefined;
  private retriesLeft: number;
  private attempt = 0;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly request: BufferedRequest,
    private readonly options: BufferedOptions,
    private readonly resolve: (response: BufferedResponse) => void,
    private readonly reject: (err: Error) => void,
  ) {
    this.retriesLeft = options.retries;
  }

  send(target: UpstreamTarget): void {
    const { request, options, pool } = this;
    const req = options.req;
    const trial = target.state === 'ejected';
    const startedAt = performance.now();
    // A fresh header object per attempt: each attempt's CLIENT span puts its own traceparent in it.
    const headers: Record<string, string> = { ...request.headers };
    const path = joinPath(target.url.pathname, request.path);
    const span = startUpstreamSpan(req, target.url, request.method, this.attempt, headers as IncomingHttpHeaders, request.path);
    if (span && options.attributes) span.setAttributes(options.attributes);
    headers.host = target.url.host;
    if (request.body) headers['content-length'] = String(request.body.length);

    let done = false;
    let connected = false;
    let connectTimer: NodeJS.Timeout | undefined;
    let clientReq: ClientRequest;
    // Why the attempt was cut short: after the headers, Node reports a destroyed request as a plain reset.
    let reason: Error | undefined;
    const abort = (err: Error) => {
      reason ??= err;
      clientReq.destroy(err);
    };
    const timer = options.timeout > 0 ? setTimeout(() => abort(responseTimeoutError()), options.timeout) : undefined;
    const onAbort = () => abort(new CancelledError());

    const settle = () => {
      done = true;
      clearTimeout(timer);
      clearTimeout(connectTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const report = (outcome: { status?: number; errorType?: string }) => {
      endUpstreamSpan(span, outcome);
      reportUpstreamResult(getContext(req), () => ({ req, pool, target: target.href, durationMs: performance.now() - startedAt, ...outcome }));
    };
    const fail = (error: NodeJS.ErrnoException, reusedSocket: boolean) => {
      if (done) return;
      settle();
      const err: NodeJS.ErrnoException = reason ?? error;
      if (err instanceof CancelledError) {
        // Nobody waits for the answer any more: no verdict on the target's health.
        pool.release(target, trial);
        report({ errorType: 'cancelled' });
        return this.reject(err);
      }
      if (err instanceof GatewayError) {
        // The target answered, but not in a way we can use (too large): it is up.
        pool.reportSuccess(target);
        report({ errorType: err.code });
        return this.reject(err);
      }
      this.noteFailure(target, trial);
      const classified = attemptError(err);
      report({ errorType: attemptErrorType(err) });
      const resend = { method: request.method, connected, resendable: true, retriesLeft: this.retriesLeft };
      const next = mayRetry(classified, resend) ? pool.retryTarget(req, (this.tried ??= new Set()), target, classified.reset && reusedSocket) : undefined;
      if (!next) return this.reject(classified.gatewayError);
      this.retriesLeft -= 1;
      this.attempt += 1;
      spanEvent(req, 'frontdoor.retry', { 'frontdoor.upstream': next.href, 'error.type': err?.code ?? 'error' });
      this.send(next);
    };

    try {
      const client = target.url.protocol === 'https:' ? https : http;
      clientReq = client.request({
        agent: pool.agent,
        protocol: target.url.protocol,
        hostname: target.url.hostname.startsWith('[') ? target.url.hostname.slice(1, -1) : target.url.hostname,
        port: target.url.port || undefined,
        method: request.method,
        path,
        headers,
      });
    } catch (err) {
      // http.request() throws synchronously on request data it refuses (an invalid header value).
      settle();
      pool.release(target, trial);
      report({ errorType: 'invalid_request' });
      return this.reject(new GatewayError('ERR_UPSTREAM_UNAVAILABLE', { detail: 'The request could not be sent to the upstream.', cause: err }));
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    clientReq.on('error', (err) => fail(err, clientReq.reusedSocket));
    clientReq.on('socket', (socket) => {
      if (!socket.connecting) {
        connected = true;
        return;
      }
      if (options.connectTimeout > 0) connectTimer = setTimeout(() => abort(connectTimeoutError()), options.connectTimeout);
      socket.once('connect', () => {
        clearTimeout(connectTimer);
        connected = true;
      });
    });
    clientReq.on('response', (res) => {
      const status = res.statusCode ?? 502;
      const declared = Number(res.headers['content-length'] ?? NaN);
      const tooLarge = () => new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: `The upstream's answer is larger than ${options.maxBytes} bytes.` });
      // An error after the headers (reset, timeout, abort, too large) may reach both objects; fail() runs once.
      res.on('error', (err) => fail(err, false));
      res.on('aborted', () => fail(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }), false));
      if (declared > options.maxBytes) return abort(tooLarge());
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) return abort(tooLarge());
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (done) return;
        settle();
        if (status >= 500) this.noteFailure(target, trial);
        else pool.reportSuccess(target);
        report({ status });
        this.resolve({ status, headers: res.headers, body: Buffer.concat(chunks, size), target: target.href });
      });
    });
    clientReq.end(request.body);
  }

  /** Passive health, as the streaming client reports it; an ejection is an event on the request's span. */
  private noteFailure(target: UpstreamTarget, trial: boolean): void {
    if (this.pool.reportFailure(target, trial)) spanEvent(this.options.req, 'frontdoor.upstream.ejected', { 'frontdoor.upstream': target.href });
  }
}

/** The target's own path in front of the request's (`http://h/base` + `/x` → `/base/x`). */
function joinPath(base: string, path: string): string {
  return base === '/' ? path : base.replace(/\/$/, '') + path;
}
