/**
 * Tracing plumbing shared by trace() and proxy(): the tracer (the app's provider when it set up the
 * OpenTelemetry SDK, ours after setupTelemetry(), a no-op otherwise), W3C propagation with strict
 * validation of incoming headers, the upstream CLIENT span, and span events for gateway decisions.
 */
import type { IncomingMessage } from 'node:http';
import { Attributes, context as otelContext, Context, Link, propagation, ROOT_CONTEXT, SamplingDecision, Span, SpanKind, SpanStatusCode, trace, TextMapPropagator } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { getContext, RequestContext } from './context';
import type { GatewayError } from './errors';

/** The name of frontdoor's own tracer: any other taken from setupTelemetry()'s provider is someone else's instrumentation. */
export const FRONTDOOR_TRACER = 'frontdoor';
export const tracer = trace.getTracer(FRONTDOOR_TRACER);

/** Used when the app registered no propagator: frontdoor still speaks W3C Trace Context and Baggage. */
const w3c = new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] });

/** The app's global propagator when it has one (B3, Jaeger…), W3C otherwise. */
export function activePropagator(): TextMapPropagator {
  return propagation.fields().length > 0 ? propagation : w3c;
}

const TRACE_HEADERS = ['traceparent', 'tracestate', 'baggage'] as const;
const MAX_TRACESTATE = 512;
const MAX_BAGGAGE = 8192;
// Version 00 exactly (55 chars); other versions may append fields but never exceed a sane size.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?$/;

/** An incoming header of another propagator (B3, Jaeger…) longer than this is ignored. */
const MAX_OTHER_FIELD = 512;

/**
 * Reads the incoming trace context, rejecting what W3C Trace Context says to ignore: wrong lengths, zero
 * ids, version ff, extra fields on version 00, oversized or duplicated headers (Node joins duplicates
 * with ", "). With an app's own propagator (B3, Jaeger…), its headers are read too, bounded in size. The
 * incoming headers are then removed: the upstream gets the gateway's own, never these as sent.
 */
export function extractIncoming(req: IncomingMessage): Context {
  const headers = req.headers;
  const propagator = activePropagator();
  const others = propagator === w3c ? undefined : otherFields();
  if (headers.traceparent === undefined && headers.baggage === undefined && !others?.some((field) => headers[field] !== undefined)) {
    // Nothing to continue (a tracestate alone means nothing): a new trace, without a propagator round trip.
    if (headers.tracestate !== undefined) delete headers.tracestate;
    return ROOT_CONTEXT;
  }
  const carrier: Record<string, string> = {};
  const traceparent = headers.traceparent;
  if (typeof traceparent === 'string' && traceparent.length <= 256) {
    const match = TRACEPARENT.exec(traceparent);
    const valid =
      match !== null &&
      match[1] !== 'ff' &&
      !(match[1] === '00' && match[5] !== undefined) &&
      !/^0+$/.test(match[2]) &&
      !/^0+$/.test(match[3]);
    if (valid) {
      carrier.traceparent = traceparent;
      const tracestate = headers.tracestate;
      if (typeof tracestate === 'string' && tracestate.length <= MAX_TRACESTATE) carrier.tracestate = tracestate;
    }
  }
  const baggage = headers.baggage;
  if (typeof baggage === 'string' && baggage.length <= MAX_BAGGAGE) carrier.baggage = baggage;
  for (const name of TRACE_HEADERS) delete headers[name];
  if (others) {
    for (const field of others) {
      const value = headers[field];
      if (typeof value === 'string' && value.length <= MAX_OTHER_FIELD) carrier[field] = value;
      delete headers[field];
    }
  }
  return propagator.extract(ROOT_CONTEXT, carrier, {
    get: (c, key) => (c as Record<string, string>)[key],
    keys: (c) => Object.keys(c as object),
  });
}

let fieldsSeen: string[] | undefined;
let othersOfFieldsSeen: string[] = [];

/** The headers the app's propagator reads besides W3C's (`b3`, `x-b3-traceid`, `uber-trace-id`…), lower-cased; worked out again only when the propagator changes. */
function otherFields(): string[] {
  const fields = propagation.fields();
  if (fields !== fieldsSeen) {
    othersOfFieldsSeen = fields.map((field) => field.toLowerCase()).filter((field) => !(TRACE_HEADERS as readonly string[]).includes(field));
    fieldsSeen = fields;
  }
  return othersOfFieldsSeen;
}

/**
 * Trace ids of the provider setupTelemetry() starts: random ones (the SDK's generator), except that trace()
 * can hand over the id it has already taken its sampling decision on, for the root span it starts next.
 */
export class PresetIdGenerator {
  private preset: string | undefined;

  constructor(private readonly random: { generateTraceId(): string; generateSpanId(): string }) {}

  generateTraceId(): string {
    const id = this.preset ?? this.random.generateTraceId();
    this.preset = undefined;
    return id;
  }

  generateSpanId(): string {
    return this.random.generateSpanId();
  }

  /** Runs `start` (which starts one root span) with `traceId` as that span's trace id. */
  withTraceId<T>(traceId: string, start: () => T): T {
    this.preset = traceId;
    try {
      return start();
    } finally {
      this.preset = undefined;
    }
  }
}

/**
 * What setupTelemetry() registered: with its sampler and ids at hand, trace() settles a request that will not
 * be sampled (most of them, at production ratios) without the SDK's span machinery: the same decision by the
 * same sampler, and the same non-recording span the SDK would make (a new span id, sampled flag off).
 */
export interface SamplingPlan {
  /**
   * True once anything but frontdoor took a tracer from the provider (an instrumentation, the app's own
   * spans): from then on every traced request runs with its SERVER span active, so those spans nest under it.
   */
  otherTracers: boolean;
  /** The provider's own sampler. setupTelemetry's samplers read neither the span's name nor its attributes. */
  sampler: { shouldSample(context: Context, traceId: string, spanName: string, spanKind: SpanKind, attributes: Attributes, links: Link[]): { decision: SamplingDecision } };
  ids: PresetIdGenerator;
}

let plan: SamplingPlan | undefined;

/** Called by setupTelemetry() once its provider is registered: `tracer` starts its spans with that provider from then on. */
export function setSamplingPlan(next: SamplingPlan | undefined): void {
  plan = next;
}

/** The plan of setupTelemetry()'s provider; none when the app brought its own SDK (setupTelemetry() then starts nothing). */
export function samplingPlan(): SamplingPlan | undefined {
  return plan;
}

const HEADER_SETTER = {
  set: (carrier: unknown, key: string, value: string) => {
    (carrier as Record<string, string>)[key] = value;
  },
};

/** Writes the trace context `context` carries (its span as the upstream's parent) into the headers sent upstream. */
function injectInto(headers: IncomingMessage['headers'], context: Context): void {
  activePropagator().inject(context, headers, HEADER_SETTER);
}

/** What a CLIENT span says of its target, worked out once per target URL rather than per request. */
interface TargetAttributes {
  origin: string;
  address: string;
  port: number;
}
const targetAttributes = new WeakMap<URL, TargetAttributes>();

function attributesOf(url: URL): TargetAttributes {
  let found = targetAttributes.get(url);
  if (!found) {
    found = { origin: url.origin, address: url.hostname, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
    targetAttributes.set(url, found);
  }
  return found;
}

/** Starts the CLIENT span of one upstream attempt, as a child of the request's SERVER span, and puts its `traceparent` in the upstream request's `headers` (`path`: what is sent). */
export function startUpstreamSpan(req: IncomingMessage, url: URL, method: string, attempt: number, headers: IncomingMessage['headers'], path: string): Span | undefined {
  const context = getContext(req);
  if (!context.span || !context.traceContext) return undefined;
  if (!context.span.isRecording()) {
    // An unsampled trace records nothing: the upstream continues it (sampled flag off) as a child of the
    // SERVER span, without a CLIENT span that would only be created and thrown away.
    injectInto(headers, context.traceContext);
    return undefined;
  }
  const target = attributesOf(url);
  const attributes: Record<string, string | number> = {
    'http.request.method': method,
    'url.full': target.origin + path,
    'server.address': target.address,
    'server.port': target.port,
  };
  if (attempt > 0) attributes['http.request.resend_count'] = attempt;
  const span = tracer.startSpan(method, { kind: SpanKind.CLIENT, attributes }, context.traceContext);
  injectInto(headers, trace.setSpan(context.traceContext, span));
  return span;
}

/** Ends an upstream CLIENT span with the response status or the error. */
export function endUpstreamSpan(span: Span | undefined, outcome: { status?: number; errorType?: string }): void {
  if (!span) return;
  if (outcome.status !== undefined) span.setAttribute('http.response.status_code', outcome.status);
  if (outcome.errorType || (outcome.status ?? 0) >= 500) {
    span.setAttribute('error.type', outcome.errorType ?? String(outcome.status));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/** Records a gateway decision (retry, ejection, cache hit…) on the request's SERVER span, if traced. */
export function spanEvent(req: IncomingMessage, name: string, attributes?: Record<string, string | number | boolean>): void {
  getContext(req).span?.addEvent(name, attributes);
}

/** The span event for an error answered to the client: auth failures and rate-limit rejections by code. */
export function recordProblem(req: IncomingMessage, error: GatewayError): void {
  const span = getContext(req).span;
  if (!span) return;
  const name = error.code.startsWith('ERR_AUTH_') || error.code.startsWith('ERR_FORBIDDEN') || error.code === 'ERR_IP_DENIED'
    ? 'frontdoor.auth.failure'
    : error.code === 'ERR_RATE_LIMITED'
      ? 'frontdoor.rate_limit.rejected'
      : 'frontdoor.error';
  span.addEvent(name, { 'frontdoor.error.code': error.code, 'http.response.status_code': error.status });
}

/**
 * Runs `fn` with the request's span as the active context, so that other instrumentation nests under it.
 * Done for the whole request when something else traces (the app's own SDK, or other tracers taken from
 * setupTelemetry()'s provider); otherwise only where the request leaves the gateway for the app's own code
 * (activeWhereAppRuns()). An AsyncLocalStorage run per request costs the proxied path about a fifth of its
 * CPU at full load (docs/performance.md), for context nobody reads.
 */
export function withRequestContext(context: RequestContext, fn: () => void): void {
  context.traceContextActive = true;
  otelContext.with(context.traceContext as Context, fn);
}

/** True when every traced request must run with its span active from trace() on: someone else traces. */
export function contextNeededThroughout(): boolean {
  return plan === undefined || plan.otherTracers;
}

/** Runs `fn` (the app's own code: a hand-off, a fallback, an error passed on) with the request's span active, if traced and not active yet. */
export function activeWhereAppRuns(context: RequestContext, fn: () => void): void {
  if (context.traceContext === undefined || context.traceContextActive) fn();
  else withRequestContext(context, fn);
}
