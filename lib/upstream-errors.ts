/**
 * One table from upstream socket errors to gateway errors (502/504), and whether an idempotent
 * request may be retried on another target after them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from './errors';

const CONNECT_TIMEOUT = 'ERR_FRONTDOOR_CONNECT_TIMEOUT';
const RESPONSE_TIMEOUT = 'ERR_FRONTDOOR_RESPONSE_TIMEOUT';

/** Errors where the request never reached the upstream: safe to retry elsewhere. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', CONNECT_TIMEOUT]);
/** The connection broke before a response: retried only for idempotent requests. */
const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export interface AttemptError {
  gatewayError: GatewayError;
  /** Another target may be tried: for any request when the connection never opened, else for idempotent ones. */
  retriable: boolean;
  /** The connection was reset (rather than refused). */
  reset: boolean;
}

export function connectTimeoutError(): Error {
  return Object.assign(new Error('Timed out connecting to the upstream'), { code: CONNECT_TIMEOUT });
}

export function responseTimeoutError(): Error {
  return Object.assign(new Error('Timed out waiting for the upstream response'), { code: RESPONSE_TIMEOUT });
}

/** Maps a failed attempt's error to what the client is told. Details never name internal hosts. */
export function attemptError(err: NodeJS.ErrnoException): AttemptError {
  const code = err?.code ?? '';
  if (code === RESPONSE_TIMEOUT) {
    return { retriable: false, reset: false, gatewayError: new GatewayError('ERR_UPSTREAM_TIMEOUT', { detail: 'The upstream did not answer in time.', cause: err }) };
  }
  if (code === CONNECT_TIMEOUT) {
    return { retriable: true, reset: false, gatewayError: new GatewayError('ERR_UPSTREAM_CONNECT_TIMEOUT', { detail: 'The upstream could not be reached in time.', cause: err }) };
  }
  if (RESET.has(code)) {
    return { retriable: true, reset: true, gatewayError: new GatewayError('ERR_UPSTREAM_RESET', { detail: 'The upstream closed the connection before answering.', cause: err }) };
  }
  return {
    retriable: NOT_CONNECTED.has(code),
    reset: false,
    gatewayError: new GatewayError('ERR_UPSTREAM_UNAVAILABLE', { detail: 'The upstream could not be reached.', cause: err }),
  };
}

/** The client closed its connection: nobody is left to answer. */
export function isClientGone(req: IncomingMessage, res: ServerResponse): boolean {
  return req.socket.destroyed && !res.writableFinished && !res.headersSent;
}

/** Methods that may be sent again after they reached an upstream (RFC 9110 §9.2.2); any may when the connection never opened. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * Whether a failed attempt may be sent again: retries left, an error after which another target may help, and
 * either a connection that never opened (nothing reached the upstream: nginx and Envoy retry those for every
 * method) or an idempotent method whose body is still at hand.
 */
export function mayRetry(error: AttemptError, attempt: { method: string; connected: boolean; resendable: boolean; retriesLeft: number }): boolean {
  return attempt.retriesLeft > 0 && error.retriable && attempt.resendable && (!attempt.connected || IDEMPOTENT_METHODS.has(attempt.method));
}

/** The `error.type` of a failed attempt for spans and metrics: the gateway's code for timeouts, the socket's otherwise. */
export function attemptErrorType(err: NodeJS.ErrnoException): string {
  if (err?.code === RESPONSE_TIMEOUT) return 'ERR_UPSTREAM_TIMEOUT';
  if (err?.code === CONNECT_TIMEOUT) return 'ERR_UPSTREAM_CONNECT_TIMEOUT';
  return err?.code ?? 'error';
}

/** The 503 when a pool has no target to try, with Retry-After for when the first ejection ends. */
export function noHealthyUpstream(pool: { retryAfterSeconds(): number }): GatewayError {
  return new GatewayError('ERR_NO_HEALTHY_UPSTREAM', {
    detail: 'No upstream is available to serve the request. Try again later.',
    headers: { 'Retry-After': String(pool.retryAfterSeconds()) },
  });
}
