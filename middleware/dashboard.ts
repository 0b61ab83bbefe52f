/**
 * dashboard(): one page that shows where every route of a gateway stands in the migration — monolith, shadow,
 * cutover, service — with its live rate, errors, latency of service and monolith, shadow match ratio and latest
 * differences, fallbacks, and the health of every upstream target. Server-rendered; a small script refreshes it
 * from `state.json`. Every asset is served by the handler itself, under a Content-Security-Policy that allows
 * nothing else.
 *
 * It refuses to mount without `auth` unless `public: true` says so, and it is read-only unless `allowChanges: true`;
 * then a cutover percentage can be changed by a form post carrying a CSRF token (lib/dashboard/csrf.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError, GatewayError } from '../lib/errors';
import { consoleLogger } from '../lib/log';
import { mountPathOf, splitUrl } from '../lib/path';
import type { Middleware, Next } from '../lib/pipeline';
import { sendProblem } from '../lib/problem';
import { defineSchema, duration, parseOptions } from '../lib/schema';
import type { Duration } from '../lib/duration';
import { ASSETS } from '../lib/dashboard/assets';
import { dashboardGuard, PUBLIC_GUARD } from '../lib/dashboard/auth';
import type { DashboardAuth } from '../lib/dashboard/auth';
import { csrfGuard } from '../lib/dashboard/csrf';
import { renderPage } from '../lib/dashboard/page';
import { DashboardRecorder, defaultDashboardRecorder } from '../lib/dashboard/recorder';
import { buildState, maskIdentity } from '../lib/dashboard/state';
import type { ChangeState, DashboardGateway, DashboardState } from '../lib/dashboard/state';
import { buildView } from '../lib/dashboard/view';
import type { DashboardView } from '../lib/dashboard/view';

export { DashboardRecorder, defaultDashboardRecorder } from '../lib/dashboard/recorder';
export type { RecorderOptions as DashboardRecorderSettings } from '../lib/dashboard/recorder';
export { dashboardFeature, dashboardRecorder } from '../lib/dashboard/observe';
export type { DashboardRecorderMiddleware, DashboardRecorderOptions } from '../lib/dashboard/observe';
export type { DashboardAuth } from '../lib/dashboard/auth';
export type { DashboardGateway, DashboardState, RouteState, UpstreamState, TargetState, ShadowState, ChangeState, Stage } from '../lib/dashboard/state';
export type { DashboardView } from '../lib/dashboard/view';

export interface DashboardOptions {
  /** The gateway to show: `gateway({ routes })`'s return value. Required. */
  gateway: DashboardGateway;
  /**
   * Who may open it. `{ username, password }` (HTTP Basic: the browser asks), `{ apiKey }` (in `X-API-Key`, or as
   * the Basic password with any user name), authenticate() options, or your own middleware (a session check).
   * Secrets may be given as `'sha256:<hex>'` digests. Required unless `public: true`.
   */
  auth?: DashboardAuth;
  /** Serve it without any check, for a port only operators reach. Defaults to false: without `auth`, dashboard() throws. */
  public?: boolean;
  /** Let the page change cutover percentages (a form post with a CSRF token). Needs `auth`. Defaults to false: read-only. */
  allowChanges?: boolean;
  /** Where the per-request numbers come from. Defaults to the process-wide recorder that `gateway({ dashboard: true })` feeds. */
  recorder?: DashboardRecorder;
  /** How often the page refreshes. Defaults to `'5s'`. */
  refresh?: Duration;
  /** The page's title. Defaults to `'frontdoor'`. */
  title?: string;
  /**
   * Signs the CSRF tokens of the change form. Give the same value (32 characters or more) to every instance behind
   * one address, so a form served by one is accepted by another. Defaults to a random key per process.
   */
  csrfSecret?: string;
}

/** Changes listed on the page. */
const CHANGES_KEPT = 20;
/** A change request's body is a route name and a number. */
const MAX_CHANGE_BODY = 4 * 1024;

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const isGateway = (value: unknown): value is DashboardGateway =>
  (typeof value === 'function' || (typeof value === 'object' && value !== null)) &&
  ['routes', 'control', 'shadowReport', 'setCutover'].every((method) => typeof (value as Record<string, unknown>)[method] === 'function');

export const dashboardSchema = defineSchema((z) =>
  z.strictObject(
    {
      gateway: z.custom<DashboardGateway>(isGateway, { error: 'must be the gateway to show, e.g. gateway: gw (with gw = gateway({ routes }))' }),
      auth: z.unknown().optional(),
      public: z.boolean({ error: 'must be true or false' }).default(false),
      allowChanges: z.boolean({ error: 'must be true or false' }).default(false),
      recorder: z.custom<DashboardRecorder>((value) => value instanceof DashboardRecorder, { error: 'must be a DashboardRecorder' }).optional(),
      refresh: duration(z)
        .refine((ms) => ms >= 1000, { error: "must be at least '1s'" })
        .default(5000),
      title: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(80, { error: 'must be at most 80 characters' }).default('frontdoor'),
      csrfSecret: z.string({ error: 'must be a string' }).min(32, { error: 'must be at least 32 characters' }).optional(),
    },
    { error: 'must be an object like { gateway: gw, auth: { username, password } }.' },
  ),
);

/**
 * The dashboard handler. Mount it under a path of its own.
 *
 * @example
 * const gw = gateway({ dashboard: true, routes });
 * app.use(gw);
 * app.use('/_frontdoor', dashboard({ gateway: gw, auth: { username: 'ops', password: process.env.DASHBOARD_PASSWORD } }));
 */
export function dashboard(options: DashboardOptions): Middleware {
  if (!options || typeof options !== 'object') throw new ConfigError(`dashboard() needs options. Example: dashboard({ gateway: gw, auth: { username: 'ops', password: process.env.DASHBOARD_PASSWORD } }).`);
  const config = parseOptions(dashboardSchema(), options);
  if (config.auth === undefined && !config.public) {
    throw new ConfigError(`dashboard() needs "auth" — { username, password }, { apiKey }, authenticate() options or a middleware — or "public: true" to serve it to anyone who reaches it. Example: auth: { username: 'ops', password: process.env.DASHBOARD_PASSWORD }.`);
  }
  if (config.auth !== undefined && config.public) throw new ConfigError(`"public" is true but "auth" is set too: choose one.`);
  if (config.public && config.allowChanges) throw new ConfigError(`"allowChanges" needs "auth": a public dashboard would let anyone move traffic. Set "auth", or leave changes off.`);
  const guard = config.public ? PUBLIC_GUARD : dashboardGuard(config.auth, 'auth');
  const csrf = config.allowChanges ? csrfGuard(config.csrfSecret) : undefined;
  const gateway = config.gateway;
  const recorder = config.recorder ?? defaultDashboardRecorder();
  const changes: ChangeState[] = [];

  const snapshot = (): { state: DashboardState; view: DashboardView } => {
    const state = buildState(gateway, recorder, { allowChanges: config.allowChanges, changes });
    return { state, view: buildView(state) };
  };

  function serve(req: IncomingMessage, res: ServerResponse, next: Next | undefined): void {
    const { pathname } = splitUrl(req.url ?? '/');
    const method = req.method ?? 'GET';
    const base = dashboardMountPath(req);
    if (pathname === '/cutover' && method === 'POST') return void change(req, res, base);
    if (method !== 'GET' && method !== 'HEAD') return notFound(req, res, next);
    if (pathname === '/' || pathname === '') {
      const { state, view } = snapshot();
      const token = csrf?.tokenFor(req, res, base);
      return send(req, res, 200, 'text/html; charset=utf-8', renderPage(state, view, { base, title: config.title, refreshMs: config.refresh, csrfToken: token }));
    }
    if (pathname === '/state.json') {
      const { state, view } = snapshot();
      return send(req, res, 200, 'application/json; charset=utf-8', JSON.stringify({ ...state, view }));
    }
    const asset = ASSETS.get(pathname);
    if (!asset) return notFound(req, res, next);
    res.setHeader('ETag', asset.etag);
    // Behind auth: cached by the browser only, and checked again each time (a 304 when unchanged).
    res.setHeader('Cache-Control', 'private, no-cache');
    if (req.headers['if-none-match'] === asset.etag) {
      securityHeaders(res);
      res.statusCode = 304;
      return void res.end();
    }
    return send(req, res, 200, asset.type, asset.body, false);
  }

  async function change(req: IncomingMessage, res: ServerResponse, base: string): Promise<void> {
    if (!csrf) {
      return sendProblem(req, res, new GatewayError('ERR_FORBIDDEN', { detail: 'This dashboard is read-only: it was mounted without allowChanges: true.' }));
    }
    let fields: Record<string, unknown>;
    try {
      fields = await readFields(req);
    } catch (err) {
      return sendProblem(req, res, err);
    }
    const headerToken = req.headers['x-csrf-token'];
    const refusal = csrf.refusal(req, typeof fields.csrf === 'string' ? fields.csrf : typeof headerToken === 'string' ? headerToken : undefined);
    if (refusal) return sendProblem(req, res, new GatewayError('ERR_FORBIDDEN', { detail: refusal }));
    const route = fields.route;
    const percent = typeof fields.percent === 'string' && fields.percent.trim() !== '' ? Number(fields.percent) : fields.percent;
    if (typeof route !== 'string' || route === '' || route.length > 200) return sendProblem(req, res, new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'Say which route: a "route" field with its name.' }));
    if (typeof percent !== 'number' || !Number.isFinite(percent) || percent < 0 || percent > 100) {
      return sendProblem(req, res, new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'The "percent" field must be a number from 0 to 100.' }));
    }
    const before = gateway.control<{ percent: number }>(route, 'cutover')?.percent;
    try {
      gateway.setCutover(route, percent);
    } catch (err) {
      const detail = err instanceof ConfigError ? err.message.replace(/^frontdoor: /, '') : 'The cutover could not be changed.';
      return sendProblem(req, res, new GatewayError('ERR_BAD_REQUEST_BODY', { detail, cause: err }));
    }
    const identity = guard.identity(req);
    changes.unshift({ at: new Date().toISOString(), route, from: before ?? 0, to: percent, by: maskIdentity(identity) });
    changes.length = Math.min(changes.length, CHANGES_KEPT);
    consoleLogger.info(`frontdoor dashboard: cutover of route "${route}" set from ${before ?? '?'} % to ${percent} % by ${identity ?? 'an unnamed user'}.`);
    if (wantsJson(req)) return send(req, res, 200, 'application/json; charset=utf-8', JSON.stringify({ route, from: before ?? null, to: percent }));
    // Post/redirect/get: a reload of the page does not post the change again.
    securityHeaders(res);
    res.statusCode = 303;
    res.setHeader('Location', `${base}/`);
    res.setHeader('Cache-Control', 'no-store');
    res.end();
  }

  return function dashboardMiddleware(req: IncomingMessage, res: ServerResponse, next?: Next) {
    guard.check(req, res, (err?: unknown) => {
      if (err !== undefined && err !== null) return sendProblem(req, res, err);
      try {
        serve(req, res, next);
      } catch (error) {
        sendProblem(req, res, error);
      }
    });
  };
}

function securityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'same-origin');
}

function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string | Buffer, noStore = true): void {
  securityHeaders(res);
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (noStore) res.setHeader('Cache-Control', 'no-store');
  res.end(req.method === 'HEAD' ? undefined : body);
}

function notFound(req: IncomingMessage, res: ServerResponse, next: Next | undefined): void {
  if (next) return next();
  res.statusCode = 404;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(req.method === 'HEAD' ? undefined : 'Not found\n');
}

function wantsJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  const type = req.headers['content-type'] ?? '';
  return type.startsWith('application/json') || (accept.includes('application/json') && !accept.includes('text/html'));
}

/** The change request's fields: a form or a JSON object, parsed here or by a body parser mounted before. */
async function readFields(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const parsed = (req as { body?: unknown }).body;
  if (req.readableEnded && parsed && typeof parsed === 'object' && !Buffer.isBuffer(parsed)) return parsed as Record<string, unknown>;
  if (type !== 'application/x-www-form-urlencoded' && type !== 'application/json') {
    throw new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE', { detail: 'Send the change as a form (application/x-www-form-urlencoded) or as JSON.' });
  }
  const text = await readBody(req, MAX_CHANGE_BODY);
  if (type === 'application/json') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'The body is not valid JSON.' });
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'The body must be an object like { "route": "orders", "percent": 50 }.' });
    return value as Record<string, unknown>;
  }
  return Object.fromEntries(new URLSearchParams(text));
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const fail = (error: GatewayError) => {
      req.off('data', onData);
      req.resume();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > limit) return fail(new GatewayError('ERR_BODY_TOO_LARGE', { detail: `A change request is at most ${limit} bytes.` }));
      chunks.push(chunk);
    };
    const incomplete = () => fail(new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'The request body was not received completely.' }));
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', incomplete);
    // A client that goes away mid-body: nothing more will come, and the request must not wait for ever.
    req.once('close', () => {
      if (!req.complete) incomplete();
    });
  });
}

/** The path the dashboard is mounted at, without a trailing slash; '' at the root of a node:http server. */
function dashboardMountPath(req: IncomingMessage): string {
  return mountPathOf(req).replace(/\/$/, '');
}
