/**
 * What feeds the dashboard's recorder: an observe-phase handler that notes, when a routed request's response
 * closes, its route, status, duration, who answered it (service, monolith or the gateway itself), its fallback
 * trigger and cutover side; and every failed upstream attempt. As the gateway option `dashboard` it wraps every
 * route; as dashboardRecorder() it is mounted in front of the gateway by hand.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getContext, onResponseClose } from '../context';
import type { RequestContext } from '../context';
import { ConfigError } from '../errors';
import type { GatewayFeatureDescriptor, Middleware, Next } from '../pipeline';
import { defineSchema, parseOptions } from '../schema';
import { observeUpstream } from '../upstream-observers';
import type { UpstreamResult } from '../upstream-observers';
import { DashboardRecorder, defaultDashboardRecorder } from './recorder';
import type { Side } from './recorder';

export interface DashboardRecorderOptions {
  /** The recorder to feed. Defaults to the process-wide one that dashboard() reads. */
  recorder?: DashboardRecorder;
}

/** The recorder middleware, with what stops it. */
export type DashboardRecorderMiddleware = Middleware & { readonly recorder: DashboardRecorder; close(): void };

export const dashboardRecorderSchema = defineSchema((z) =>
  z.strictObject(
    { recorder: z.custom<DashboardRecorder>((value) => value instanceof DashboardRecorder, { error: 'must be a DashboardRecorder, e.g. new DashboardRecorder().' }).optional() },
    { error: 'must be an object like { recorder: new DashboardRecorder() }.' },
  ),
);

/** Who answered: fallback and a cutover's monolith side hand over to the app; an upstream attempt means the service. */
function sideOf(context: RequestContext): Side {
  if (context.fallback !== undefined || context.cutover === 'monolith') return 'monolith';
  if (context.cutover === 'service' || context.upstream !== undefined) return 'service';
  return 'edge';
}

/**
 * Records the gateway's routed requests for the dashboard. Gateway option: `gateway({ dashboard: true, routes })`;
 * by hand: `app.use(dashboardRecorder()); app.use(gw)` (requests that match no route are not recorded).
 */
export function dashboardRecorder(options: DashboardRecorderOptions = {}, optionPrefix = ''): DashboardRecorderMiddleware {
  const config = parseOptions(dashboardRecorderSchema(), options, optionPrefix);
  const recorder = config.recorder ?? defaultDashboardRecorder();
  const detach = recorder.attach();
  // Counted once per recorder, however many of its handlers a request passes (app-wide and the gateway's).
  const seen = new WeakSet<IncomingMessage>();
  let closed = false;
  const onUpstream = (result: UpstreamResult) => {
    const code = result.errorType ?? (result.status !== undefined && result.status >= 500 ? `HTTP ${result.status}` : undefined);
    if (code !== undefined) recorder.upstreamFailed(result.target, code, getContext(result.req).route);
  };
  const middleware = function dashboardRecorderMiddleware(req: IncomingMessage, res: ServerResponse, next: Next) {
    if (closed || seen.has(req)) return next();
    seen.add(req);
    const context = getContext(req, res);
    observeUpstream(context, onUpstream);
    onResponseClose(context, res, function recordForDashboard() {
      if (closed || context.route === undefined) return;
      recorder.record({
        route: context.route,
        durationMs: performance.now() - context.startedAt,
        status: res.headersSent ? res.statusCode : 0,
        side: sideOf(context),
        fallback: context.fallback,
        cutover: context.cutover,
      });
    });
    next();
  } as DashboardRecorderMiddleware;
  Object.defineProperty(middleware, 'recorder', { value: recorder, enumerable: true });
  middleware.close = () => {
    closed = true;
    detach();
  };
  return middleware;
}

/**
 * The gateway option `dashboard`: `true` (the process-wide recorder) or `{ recorder }`. Records every routed
 * request for dashboard(); register it in GATEWAY_FEATURES after metrics.
 */
export const dashboardFeature: GatewayFeatureDescriptor = {
  option: 'dashboard',
  phase: 'observe',
  schemas: defineSchema((z) => ({ option: z.union([z.boolean(), dashboardRecorderSchema()]) })),
  upgrade: { apply: false, reason: 'An upgrade has no HTTP response whose end could be timed; the dashboard counts requests, not WebSocket sessions.' },
  build(value) {
    if (value === false || value === undefined) return {};
    if (value !== true && (typeof value !== 'object' || value === null)) throw new ConfigError(`"dashboard" must be true or { recorder }; received ${JSON.stringify(value)}.`);
    const middleware = dashboardRecorder(value === true ? {} : (value as DashboardRecorderOptions), 'dashboard.');
    return { handler: middleware, close: () => middleware.close() };
  },
};
