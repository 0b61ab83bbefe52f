/**
 * The per-request context every frontdoor middleware reads and writes: request id, matched route, the
 * path to forward, timings. One typed object on a symbol of the request, never ad-hoc properties.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context, Span } from '@opentelemetry/api';

export const REQUEST_ID_HEADER = 'x-request-id';

export interface RequestContext {
  /** The request id: the client's `X-Request-Id` when short and safe, otherwise generated. */
  requestId: string;
  /** `performance.now()`-style start time in ms (from `process.hrtime`), for durations. */
  startedAt: number;
  /** Name of the gateway route that matched, if any. */
  route?: string;
  /**
   * The normalised path (with query) to forward, set by the gateway after matching so the upstream sees
   * exactly the path the route's policies were applied to.
   */
  forwardUrl?: string;
  /** Target URL (href) of the upstream the last attempt went to. */
  upstream?: string;
  /**
   * Headers the gateway adds to the upstream request (identity, later transforms). proxy() sets them
   * after removing hop-by-hop headers, so a client cannot strip them by naming them in `Connection`.
   */
  upstreamHeaders?: Record<string, string>;
  /** The SERVER span of the request, when trace() runs. */
  span?: Span;
  /** The OpenTelemetry context holding `span`: parent of upstream CLIENT spans. */
  traceContext?: Context;
  /** Code of the error the gateway answered with, for metrics and logs. */
  errorCode?: string;
  /** Run once the response closes (finished or aborted), in the order added: see onResponseClose(). */
  closeHandlers?: Array<() => void>;
}

const CONTEXT = Symbol.for('frontdoor.context');
type WithContext = IncomingMessage & { [CONTEXT]?: RequestContext };

// Printable ASCII without separators or spaces: safe to echo in headers and logs.
const SAFE_REQUEST_ID = /^[A-Za-z0-9._~:+\-/=]{1,128}$/;

/** True when a client-supplied request id may be reused as is. */
export function isSafeRequestId(value: unknown): value is string {
  return typeof value === 'string' && SAFE_REQUEST_ID.test(value);
}

/**
 * Returns the request's context, creating it on first use: the request id is chosen, set on the
 * response and on the request headers (so it is forwarded upstream).
 */
export function getContext(req: IncomingMessage, res?: ServerResponse): RequestContext {
  const withContext = req as WithContext;
  let context = withContext[CONTEXT];
  if (context) return context;
  const offered = req.headers[REQUEST_ID_HEADER];
  const requestId = isSafeRequestId(offered) ? offered : randomUUID();
  req.headers[REQUEST_ID_HEADER] = requestId;
  if (res && !res.headersSent) res.setHeader('X-Request-Id', requestId);
  context = { requestId, startedAt: performance.now() };
  withContext[CONTEXT] = context;
  return context;
}

/**
 * Runs `handler` when the response closes (sent in full or aborted), after the handlers added before it.
 * trace(), metrics() and accessLog() share one 'close' listener this way instead of adding one each.
 */
export function onResponseClose(context: RequestContext, res: ServerResponse, handler: () => void): void {
  if (context.closeHandlers) {
    context.closeHandlers.push(handler);
    return;
  }
  const handlers = [handler];
  context.closeHandlers = handlers;
  res.once('close', function runCloseHandlers() {
    for (const run of handlers) run();
  });
}
