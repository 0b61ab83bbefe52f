/**
 * Renders errors as RFC 9457 `application/problem+json` — the one error format of the gateway.
 */
import { STATUS_CODES } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from './errors';
import { getContext } from './context';
import { recordProblem } from './telemetry';
import { consoleLogger } from './log';

/**
 * The problem `type`. RFC 9457's `about:blank` says "the status is the meaning": frontdoor owns no address
 * a type URI could point at, and a URI that dereferences to nothing would be a promise it cannot keep. The
 * error is identified by the `code` member instead (each code has a heading in docs/errors.md), and `title`
 * is the status phrase, as the RFC asks with `about:blank` (and as Spring's ProblemDetail does).
 */
const PROBLEM_TYPE = 'about:blank';

export interface ProblemDocument {
  /** Extension members of the error (RFC 9457 §3.2), before the standard ones so they cannot replace them. */
  [extension: string]: unknown;
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance: string;
  code: string;
  requestId: string;
}

/** Anything thrown that is not a GatewayError becomes a 500 without leaking its message. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError('ERR_INTERNAL', { detail: 'The gateway failed to handle the request.', cause: err });
}

export function problemDocument(req: IncomingMessage, error: GatewayError): ProblemDocument {
  const { requestId } = getContext(req);
  const path = ((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/').split('?')[0];
  return {
    ...(error.extensions ? safeExtensions(error.extensions) : {}),
    type: PROBLEM_TYPE,
    title: STATUS_CODES[error.status] ?? 'Error',
    status: error.status,
    ...(error.detail ? { detail: error.detail } : {}),
    instance: path,
    code: error.code,
    requestId,
  };
}

/** Extension members without prototype keys (they may come from an upstream's document). */
function safeExtensions(extensions: Record<string, unknown>): Record<string, unknown> {
  const safe: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(extensions)) if (key !== '__proto__' && key !== 'constructor' && key !== 'prototype') safe[key] = value;
  return safe;
}

/**
 * Answers the request with a problem+json body. When the response has already started (the upstream
 * died mid-body) there is no way to say so in-band: the client connection is aborted at once, so the
 * client sees a truncated response instead of waiting forever.
 */
export function sendProblem(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const error = toGatewayError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(problemDocument(req, error));
  const context = getContext(req, res);
  context.errorCode = error.code;
  // A 500 is the gateway's own failure (a throwing access rule, an unforwardable body), and some 502s are the
  // configuration's (a throwing transform): the client gets a generic problem, so the operator must get the
  // cause, or nobody ever sees it.
  if (error.logCause && error.cause !== undefined) {
    consoleLogger.error(`frontdoor: ${error.code} answering ${req.method} ${((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/').split('?')[0]} (request id ${context.requestId}):`, error.cause);
  }
  recordProblem(req, error);
  res.statusCode = error.status;
  res.setHeader('Content-Type', 'application/problem+json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Request-Id', context.requestId);
  if (error.headers) for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Answers an error the way a middleware's `onError` says: problem+json (`'respond'`), or `next(err)` for the
 * app's error handler. Once the response has started only sendProblem() can end it (it aborts the connection).
 */
export function respondOrNext(mode: 'respond' | 'next', req: IncomingMessage, res: ServerResponse, next: ((err?: unknown) => void) | undefined, err: unknown): void {
  if (mode === 'next' && next && !res.headersSent) next(err);
  else sendProblem(req, res, err);
}
