/**
 * The per-request context every frontdoor middleware reads and writes: request id, matched route, the
 * upstream plan, timings. One typed object on a symbol of the request, never ad-hoc properties. Reading
 * it has no side effects: the client's request stays as the client sent it, so the app's own handlers
 * (fall-through, fallback) see the real request.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context, Span } from '@opentelemetry/api';

export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * What the upstream should get, written by the route's features instead of editing the client's request.
 * The final handler builds the upstream request from it (see proxy()).
 */
export interface UpstreamPlan {
  /**
   * The normalised path (with query) to forward, set by the gateway after matching so the upstream sees
   * exactly the path the route's policies were applied to. Unset, proxy() works it out from the request.
   */
  url?: string;
  /**
   * Headers the gateway sets upstream (identity, later transforms). They are set after the client's
   * hop-by-hop and identity headers are removed, so a client cannot strip them by naming them in `Connection`.
   */
  setHeaders?: Record<string, string>;
  /** Client headers that are not forwarded (credentials with `forwardAuthorization: false`, transforms). */
  removeHeaders?: Set<string>;
  /** Query parameters that are not forwarded (an API key passed in the query); the rest stays byte for byte. */
  removeQuery?: Set<string>;
  /**
   * The body to send instead of the client's (a transform or the XML bridge rewrote it). The final handler
   * sends exactly these bytes with their Content-Length; set `setHeaders['content-type']` to match.
   */
  body?: Buffer;
}

export interface RequestContext {
  /** The request id: the client's `X-Request-Id` when short and safe, otherwise generated. */
  requestId: string;
  /** `performance.now()`-style start time in ms (from `process.hrtime`), for durations. */
  startedAt: number;
  /** Name of the gateway route that matched, if any. */
  route?: string;
  /** Values of the matched route's `:name` segments (`/users/:id` → `{ id: '7' }`), percent-decoded. */
  params?: Record<string, string>;
  /** What the upstream should get; see upstreamPlan(). */
  plan?: UpstreamPlan;
  /** Target URL (href) of the upstream the last attempt went to. */
  upstream?: string;
  /** The SERVER span of the request, when trace() runs. */
  span?: Span;
  /** The OpenTelemetry context holding `span`: parent of upstream CLIENT spans. */
  traceContext?: Context;
  /** True once `traceContext` is the active context (see withRequestContext()). */
  traceContextActive?: boolean;
  /**
   * What cache() did with the request, for metrics, the access log and traces: answered from the cache (`HIT`),
   * went upstream and may have stored the answer (`MISS`), or the cache stayed out of it (`BYPASS`: not
   * cacheable, or the store unreachable).
   */
  cache?: 'HIT' | 'MISS' | 'BYPASS';
  /** Code of the error the gateway answered with, for metrics and logs. */
  errorCode?: string;
  /** Observers that already took the request: a request is counted and logged once, however many are mounted. */
  observed?: { metrics?: boolean; accessLog?: boolean };
  /** Observers of this request's upstream attempts (metrics()); see observeUpstream(). */
  upstreamObservers?: Array<(result: import('./upstream-observers').UpstreamResult) => void>;
  /** The side a cutover sent the request to. */
  cutover?: 'service' | 'monolith';
  /** What made fallback() hand the request to the app (`unavailable`, `timeout`, or the upstream's status). */
  fallback?: string;
  /** A request body went (or started going) to an upstream: the request may have been executed there. */
  upstreamBodySent?: boolean;
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
 * Returns the request's context, creating it on first use: the request id is chosen and set on the
 * response (proxy() forwards it upstream).
 */
export function getContext(req: IncomingMessage, res?: ServerResponse): RequestContext {
  const withContext = req as WithContext;
  let context = withContext[CONTEXT];
  if (context) return context;
  const offered = req.headers[REQUEST_ID_HEADER];
  const requestId = isSafeRequestId(offered) ? offered : randomUUID();
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

/** The request's upstream plan, created empty on first use. */
export function upstreamPlan(context: RequestContext): UpstreamPlan {
  context.plan ??= {};
  return context.plan;
}

/**
 * The plan with its header and query collections, for features that change them. They are made only
 * then: most requests forward the client's headers as they are, and pay for no collection.
 */
export function planChanges(context: RequestContext): UpstreamPlan & Required<Pick<UpstreamPlan, 'setHeaders' | 'removeHeaders' | 'removeQuery'>> {
  const plan = upstreamPlan(context);
  plan.setHeaders ??= {};
  plan.removeHeaders ??= new Set();
  plan.removeQuery ??= new Set();
  return plan as UpstreamPlan & Required<Pick<UpstreamPlan, 'setHeaders' | 'removeHeaders' | 'removeQuery'>>;
}
