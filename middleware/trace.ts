/**
 * trace(): a SERVER span per request, continuing the caller's W3C trace context; proxy() adds a CLIENT
 * span per upstream attempt and sends the upstream a `traceparent` whose parent is that CLIENT span.
 * Spans go to the app's OpenTelemetry SDK, or to the one setupTelemetry() starts.
 */
import { Context, isSpanContextValid, SamplingDecision, Span, SpanKind, SpanStatusCode, TraceFlags, trace as otelTrace } from '@opentelemetry/api';
import type { IncomingMessage } from 'node:http';
import { clientAddress } from '../lib/client-address';
import { getContext, onResponseClose } from '../lib/context';
import type { GatewayFeatureDescriptor, Middleware } from '../lib/pipeline';
import { defineSchema, parseOptions } from '../lib/schema';
import { contextNeededThroughout, extractIncoming, samplingPlan, tracer, withRequestContext } from '../lib/telemetry';

export interface TraceOptions {
  /** Record `user_agent.original` and `client.address` on the SERVER span. Defaults to true. */
  clientAttributes?: boolean;
}

/** The options of trace(). */
export const traceSchema = defineSchema((z) =>
  z.strictObject(
    {
      clientAttributes: z.boolean({ error: 'must be true or false' }).default(true),
    },
    { error: 'must be an object of trace() options, e.g. { clientAttributes: false }.' },
  ),
);

/**
 * @example
 * setupTelemetry({ serviceName: 'shop-gateway' });   // or your own NodeSDK
 * app.use(trace());
 */
export function trace(options: TraceOptions = {}, optionPrefix = ''): Middleware {
  return traceWith(options, optionPrefix, true);
}

/**
 * `activateThroughout`: make the SERVER span the active context for the rest of the request, always (trace()
 * alone: the app's handlers follow it), or only when someone else traces (gateway(), which activates it
 * itself where the request leaves for the app).
 */
function traceWith(options: TraceOptions, optionPrefix: string, activateThroughout: boolean): Middleware {
  const { clientAttributes } = parseOptions(traceSchema(), options, optionPrefix);

  return function traceMiddleware(req, res, next) {
    const context = getContext(req, res);
    if (context.span) return next(); // traced once, even when trace() is mounted twice
    const parent = extractIncoming(req);
    const method = req.method ?? 'GET';
    const span = serverSpan(req, method, parent, clientAttributes, context.requestId);
    context.span = span;
    context.traceContext = otelTrace.setSpan(parent, span);
    // An unsampled span records nothing: no need to hear the response's end (most requests, at production sampling).
    if (span.isRecording()) onResponseClose(context, res, function endServerSpan() {
      const route = context.route ?? (req as { route?: { path?: string } }).route?.path;
      if (route) {
        span.setAttribute('http.route', route);
        span.updateName(`${method} ${route}`);
      }
      span.setAttribute('http.response.status_code', res.statusCode);
      if (!res.writableFinished) {
        span.setAttribute('error.type', 'client_closed');
      } else if (res.statusCode >= 500) {
        span.setAttribute('error.type', context.errorCode ?? String(res.statusCode));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    });
    if (activateThroughout || contextNeededThroughout()) withRequestContext(context, next);
    else next();
  };
}

const NO_ATTRIBUTES = Object.freeze({});
const NO_LINKS: never[] = [];

/**
 * The request's SERVER span. With setupTelemetry()'s provider, a request its sampler turns down gets the span
 * the SDK would have made for it (the same trace id, a new span id, sampled flag off) without the SDK's span
 * start, and without working out attributes nobody records; one it samples is started by the SDK on the trace
 * id the decision was taken on.
 */
function serverSpan(req: IncomingMessage, method: string, parent: Context, clientAttributes: boolean, requestId: string): Span {
  const plan = samplingPlan();
  if (!plan) return startServerSpan(req, method, parent, clientAttributes, requestId);
  const parentSpan = otelTrace.getSpanContext(parent);
  const continued = parentSpan !== undefined && isSpanContextValid(parentSpan);
  const traceId = continued ? parentSpan.traceId : plan.ids.generateTraceId();
  if (plan.sampler.shouldSample(parent, traceId, method, SpanKind.SERVER, NO_ATTRIBUTES, NO_LINKS).decision === SamplingDecision.NOT_RECORD) {
    return otelTrace.wrapSpanContext({ traceId, spanId: plan.ids.generateSpanId(), traceFlags: TraceFlags.NONE, traceState: continued ? parentSpan.traceState : undefined });
  }
  if (continued) return startServerSpan(req, method, parent, clientAttributes, requestId);
  return plan.ids.withTraceId(traceId, () => startServerSpan(req, method, parent, clientAttributes, requestId));
}

function startServerSpan(req: IncomingMessage, method: string, parent: Context, clientAttributes: boolean, requestId: string): Span {
  const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  const q = url.indexOf('?');
  return tracer.startSpan(
    method,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': method,
        'url.path': q === -1 ? url : url.slice(0, q),
        'url.scheme': (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
        ...(clientAttributes ? { 'client.address': clientAddress(req), 'user_agent.original': req.headers['user-agent'] ?? '' } : {}),
        'frontdoor.request_id': requestId,
      },
    },
    parent,
  );
}

/** The gateway option `trace`: trace() options or `true`; wraps every route, first. */
export const traceFeature: GatewayFeatureDescriptor = {
  option: 'trace',
  phase: 'observe',
  schemas: defineSchema((z) => ({ option: z.union([z.boolean(), traceSchema()]) })),
  upgrade: { apply: false, reason: 'An upgrade has no HTTP response whose end could be observed; upgrades are not traced, counted or logged yet.' },
  build: (value) => (value ? { handler: traceWith(value === true ? {} : (value as TraceOptions), 'trace.', false) } : {}),
};
