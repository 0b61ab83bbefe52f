/**
 * One aggregated call at request time: its URL filled from the request and earlier results, the headers every
 * call gets, the buffered request through the shared upstream machinery, and the answer judged (2xx, JSON,
 * within its size) into a result or a failure with its reason.
 */
import type { IncomingMessage } from 'node:http';
import { isIdentityHeader } from '../auth-headers';
import { getConsumer } from '../consumer';
import { getContext, REQUEST_ID_HEADER } from '../context';
import type { RequestContext } from '../context';
import { GatewayError } from '../errors';
import { forwardHeaders } from '../forwarding-headers';
import { spanEvent } from '../telemetry';
import type { UpstreamPool } from '../upstream-pool';
import { CancelledError, sendBuffered } from '../upstream-request';
import { isJsonAnswer, parseJsonSafely } from './json';
import type { CallOutcome, ScheduledCall } from './run';
import { renderTemplate, valueAt } from './template';
import type { Source, UrlTemplate } from './template';

/** A call, resolved at construction. */
export interface CompiledCall {
  name: string;
  optional: boolean;
  after: readonly string[];
  template: UrlTemplate;
  pool: UpstreamPool;
  /** ms; the call's own `timeout`, its upstream's, or the deadline. */
  timeout: number;
  connectTimeout: number;
  retries: number;
  maxBytes: number;
  /** Client headers this call also gets (lower-case), e.g. `authorization`. */
  forward: readonly string[];
}

/** What every call of one aggregation shares: the request's values and the headers every call gets. */
export interface RequestBasis {
  req: IncomingMessage;
  context: RequestContext;
  headers: Record<string, string>;
  lookup(source: Source): unknown;
}

/** Client headers that carry the trace context when the gateway does not trace (then they pass as sent). */
const TRACE_HEADERS = ['traceparent', 'tracestate', 'baggage'];
const FORWARDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'];

/** Works out, once per aggregation, what its calls share. */
export function requestBasis(req: IncomingMessage, xForwarded: boolean): RequestBasis {
  const context = getContext(req);
  const plan = context.plan;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (xForwarded) {
    const forwarded = forwardHeaders(req, { websocket: false, xForwarded: true });
    for (const name of FORWARDED) if (typeof forwarded[name] === 'string') headers[name] = forwarded[name] as string;
  }
  // trace() took the client's trace headers and starts a CLIENT span per call instead; without it they pass as sent.
  if (!context.span) for (const name of TRACE_HEADERS) if (typeof req.headers[name] === 'string') headers[name] = req.headers[name] as string;
  // What the route's features decided the upstream gets: identity headers (authenticate), header changes.
  if (plan?.setHeaders) {
    for (const [name, value] of Object.entries(plan.setHeaders)) if (name !== 'content-type' && name !== 'content-length') headers[name] = value;
  }
  headers[REQUEST_ID_HEADER] = context.requestId;

  let query: URLSearchParams | undefined;
  const lookup = (source: Source): unknown => {
    switch (source.from) {
      case 'params':
        return context.params?.[source.key] ?? (req as { params?: Record<string, unknown> }).params?.[source.key];
      case 'query': {
        // A parameter the route removes from the upstream's query (an API key) never goes into a URL either.
        if (plan?.removeQuery?.has(source.key)) return undefined;
        query ??= new URLSearchParams(((req as { originalUrl?: string }).originalUrl ?? req.url ?? '').split('?')[1] ?? '');
        return query.get(source.key) ?? undefined;
      }
      case 'headers': {
        // An identity header is the gateway's own (authenticate wrote it); a client's copy is never read.
        if (isIdentityHeader(source.key)) return plan?.setHeaders?.[source.key];
        const value = req.headers[source.key];
        return Array.isArray(value) ? value.join(', ') : value;
      }
      case 'consumer':
        return getConsumer(req)?.[source.key];
      default:
        return undefined; // results are looked up by the call itself
    }
  };
  return { req, context, headers, lookup };
}

/** The call as the scheduler runs it, for one aggregation. */
export function scheduledCall(call: CompiledCall, basis: RequestBasis): ScheduledCall {
  return {
    name: call.name,
    optional: call.optional,
    after: call.after,
    async run(outcomes, signal) {
      const startedAt = performance.now();
      const outcome = await execute(call, basis, outcomes, signal);
      if (!signal.aborted) {
        const attributes: Record<string, string | number> = { 'frontdoor.aggregate.call': call.name, 'frontdoor.aggregate.outcome': outcome.ok ? 'ok' : outcome.failure.timedOut ? 'timeout' : 'failed', 'frontdoor.duration_ms': Math.round(performance.now() - startedAt) };
        if (!outcome.ok) attributes['frontdoor.error.code'] = outcome.failure.code;
        if (!outcome.ok && outcome.failure.status !== undefined) attributes['http.response.status_code'] = outcome.failure.status;
        spanEvent(basis.req, 'frontdoor.aggregate.call', attributes);
      }
      return outcome;
    },
  };
}

async function execute(call: CompiledCall, basis: RequestBasis, outcomes: ReadonlyMap<string, CallOutcome>, signal: AbortSignal): Promise<CallOutcome> {
  const failed = (code: string, detail: string, extra: { status?: number; timedOut?: boolean } = {}): CallOutcome => ({ ok: false, failure: { code, detail, timedOut: extra.timedOut ?? false, ...(extra.status === undefined ? {} : { status: extra.status }) } });
  const unavailable = call.template.calls.find((name) => !outcomes.get(name)?.ok);
  if (unavailable) return failed('ERR_AGGREGATE_CALL_FAILED', `its URL reads the result of "${unavailable}", which failed`);
  const url = renderTemplate(call.template, (source) => (source.from === 'call' ? valueAt((outcomes.get(source.call) as { value: unknown }).value, source.path) : basis.lookup(source)));
  if (!url.ok) return failed('ERR_AGGREGATE_CALL_FAILED', url.reason);

  const headers = { ...basis.headers };
  for (const name of call.forward) {
    const value = basis.req.headers[name];
    // Identity headers are the gateway's: a client's copy never passes, even when listed.
    if (value !== undefined && !isIdentityHeader(name)) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  try {
    const response = await sendBuffered(
      call.pool,
      { method: 'GET', path: url.url, headers },
      { timeout: call.timeout, connectTimeout: call.connectTimeout, retries: call.retries, maxBytes: call.maxBytes, signal, req: basis.req, attributes: { 'frontdoor.aggregate.call': call.name } },
    );
    const status = response.status;
    if (status < 200 || status > 299) return failed('ERR_AGGREGATE_CALL_FAILED', `answered ${status}`, { status });
    if (status === 204) return { ok: true, value: null };
    if (!isJsonAnswer(response.headers)) return failed('ERR_UPSTREAM_BAD_RESPONSE', 'answered with a body that is not JSON', { status });
    const parsed = parseJsonSafely(response.body);
    if (!parsed) return failed('ERR_UPSTREAM_BAD_RESPONSE', 'answered with malformed JSON', { status });
    return { ok: true, value: parsed.value };
  } catch (err) {
    if (err instanceof CancelledError) return failed('ERR_AGGREGATE_CANCELLED', 'was cancelled');
    const error = err instanceof GatewayError ? err : new GatewayError('ERR_INTERNAL', { cause: err });
    const timedOut = error.code === 'ERR_UPSTREAM_TIMEOUT' || error.code === 'ERR_UPSTREAM_CONNECT_TIMEOUT';
    return failed(error.code, timedOut ? 'did not answer in time' : (error.detail ?? error.message).replace(/^The upstream /, 'the upstream ').replace(/\.$/, ''), { timedOut });
  }
}
