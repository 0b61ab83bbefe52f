/**
 * gateway({ routes }): the route table. Matches requests by normalised path (segment-aware longest
 * prefix), method and host, runs the matched route's pipeline, and lets every other request fall through
 * to the app's own handlers — how a monolith keeps serving what has not been extracted yet.
 *
 * The pipeline of each route is built once, from the feature registry (middleware/features.ts) in the
 * fixed phases of lib/pipeline.ts; this file names no feature. WebSocket upgrades run the same pipeline up
 * to the final handler.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { UpstreamPool } from '../lib/upstream-pool';
import type { Duplex } from 'node:stream';
import { getContext, upstreamPlan } from '../lib/context';
import { ConfigError, ConfigIssues, GatewayError } from '../lib/errors';
import { assertKnownKeys } from '../lib/options';
import { dropSegments, mountPathOf, normaliseTarget, PathOptions } from '../lib/path';
import { FeatureParts, Middleware, PHASES, UpgradeHandler } from '../lib/pipeline';
import type { ErrorMode } from '../lib/pipeline';
import { respondOrNext, sendProblem } from '../lib/problem';
import { activeWhereAppRuns } from '../lib/telemetry';
import { SharedParts } from '../lib/scope';
import { compileRoutePath, matchesSegments, paramsOf, RoutePath } from '../lib/route-path';
import { consoleLogger } from '../lib/log';
import { refuseUpgrade, serveUpgradeAsHttp, serverOf, upgradeResponse } from '../lib/upgrade';
import { appHandoffFeature } from './app-handoff';
import type { CutoverControl } from './cutover';
import type { ShadowControl, ShadowReport } from './shadow';
import { cacheControlFor } from './cache';
import type { CacheControl } from './cache';
import { GATEWAY_FEATURES, GatewayFeatureOptions, ROUTE_FEATURES, RouteFeatureOptions } from './features';
import { gatewayFromFile } from './gateway-file';

export type { RouteUpstreamOptions } from './proxy';

export interface RouteOptions extends RouteFeatureOptions {
  /** Path prefix, matched segment by segment: `/api/orders` matches `/api/orders/7`, not `/api/ordersX`. */
  path: string;
  /** Name used in logs, metrics and problem details. Defaults to `path`. */
  name?: string;
  /** Only these methods match (GET includes HEAD). Defaults to all methods. */
  methods?: string[];
  /** Only these hosts match (`api.example.com`, `*.example.com`). Defaults to any host. */
  host?: string | string[];
  /** Forward the path without the route's prefix. Defaults to false. */
  stripPath?: boolean;
}

export interface GatewayOptions extends GatewayFeatureOptions {
  /** The route table. Order does not matter: the longest matching prefix wins. */
  routes: RouteOptions[];
  /** Answer errors as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
  /** Match paths case-sensitively. Defaults to false, like Express's own routing. */
  caseSensitive?: boolean;
  /**
   * Accept `;` path parameters (`/orders;jsessionid=1/7`). Defaults to false: such paths are a 400 on every
   * route, because Tomcat, Jetty and Spring read `/admin;x/y` as `/admin/y` and `/..;/` as `..`. When true,
   * routes match on the segment names without their parameters, as those servers read them, and a dot
   * segment with parameters is still refused.
   */
  allowSemicolons?: boolean;
}

interface CompiledRoute {
  name: string;
  /** The literal part of the path before any `:name` segment, as matched: lower-cased unless case-sensitive. */
  prefix: string;
  /** The compiled path: segments, parameters. */
  path: RoutePath;
  methods: Set<string> | undefined;
  hosts: Array<(hostname: string) => boolean> | undefined;
  /** Segments in the prefix, dropped from the forwarded path by `stripPath`. */
  segments: number;
  stripPath: boolean;
  /** The pipeline of requests, phase by phase, ending in the final handler. */
  handlers: Middleware[];
  /** What upgrades run before `upgrade`: the handlers of every feature whose upgrade rule is `apply`. */
  upgradePolicies: Middleware[];
  /** The final handler's upgrade part; a route without one does not take upgrades. */
  upgrade: UpgradeHandler | undefined;
  parts: FeatureParts[];
  /** Runtime controls of the route's features, by option (`cutover` → its setPercent). */
  controls: Map<string, unknown>;
  /** The route's option path, `routes[2].`, for errors. */
  option: string;
  /** What gw.routes() says about it (targets are read live). */
  info: Omit<RouteInfo, 'targets' | 'cutover' | 'stage'> & { stage: Exclude<RouteStage, 'cutover'> | 'cutover' };
  /** Path, methods and hosts: two routes with the same key would shadow each other. */
  key: string;
}

/** The router's own route options; every other key belongs to a feature of the registry. */
const ROUTER_KEYS = ['path', 'name', 'methods', 'host', 'stripPath'];
const ROUTE_KEYS = [...ROUTER_KEYS, ...ROUTE_FEATURES.flatMap((feature) => [feature.option, ...(feature.reads ?? [])])];
const GATEWAY_KEYS = ['routes', 'onError', 'caseSensitive', 'allowSemicolons', ...GATEWAY_FEATURES.map((feature) => feature.option), ...ROUTE_FEATURES.flatMap((feature) => feature.gatewayOptions ?? [])];
const PHASE_ORDER = new Map(PHASES.map((phase, index) => [phase, index]));
/** The final handler of a route whose only final-phase features are wrappers: the app's own. */
const APP_FINAL = appHandoffFeature;

/**
 * The router returned by gateway(): a plain middleware, so it mounts on Express 4, Express 5 and
 * connect alike: `app.use(gateway({ routes }))`.
 */
/** What a gateway reports about its upstreams: `gw.events.on('upstream.ejected', …)`. */
export interface GatewayEvents {
  /** A target stopped getting traffic: passive health ejected it for `cooldownMs`, or its active check failed (0). */
  'upstream.ejected': [event: { target: string; cooldownMs: number; routes: string[] }];
  /** A target gets traffic again: its trial request or its active check passed. */
  'upstream.recovered': [event: { target: string; routes: string[] }];
}

export interface Gateway {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
  /** The gateway's event channel: target ejections and recoveries, with the routes they concern. */
  readonly events: EventEmitter<GatewayEvents>;
  /**
   * Routes WebSocket upgrades to `ws: true` routes, after the route's policies (IP rules, auth, authorize,
   * rate limit) passed: `server.on('upgrade', gw.upgrade)`. A refusal is answered on the socket (401, 403,
   * 429 problem+json), then the socket closes. An upgrade no route takes is left to the server's other
   * 'upgrade' listeners when it has some, otherwise served as the plain HTTP request it also is.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * Listens for the server's upgrades and owns what no route takes: they go to `options.upgrade` (your own
   * WebSocket server's handler) when given, otherwise they are served as plain HTTP requests. Returns a
   * function that detaches the listener.
   */
  attach(server: Server, options?: AttachOptions): () => void;
  /**
   * Replaces the route table without a restart: the new table is built and checked in full, then swapped in
   * at once. Requests in flight finish on the old table; what only the old table held (pools, timers, Redis
   * clients) is closed once they did. Parts whose options did not change are kept: rate-limit counters, key
   * caches, pools with their target health, cache entries. Invalid options reject with a ConfigError and the
   * old table keeps serving (`lastReloadError` holds the error until a reload succeeds).
   */
  reload(options: GatewayOptions, reloadOptions?: ReloadOptions): Promise<void>;
  /** The ConfigError of the last reload when it failed (the previous table kept serving); undefined after a successful one. */
  readonly lastReloadError: ConfigError | undefined;
  /** Frees timers, sockets and store connections of every route (of tables still draining too). */
  close(): Promise<void>;
  /**
   * Changes the share of a route's requests that its `cutover` sends to the upstream (0–100), at once and
   * without a reload: `gw.setCutover('orders', 50)`. A later reload applies the file's or options' value.
   */
  setCutover(route: string, percent: number): void;
  /**
   * Invalidation over the caches of every route (`cache` route option): `gw.cache.invalidate('/api/catalog')`,
   * `gw.cache.invalidateTag('product-7')`. Across instances when the routes' caches share Redis.
   */
  readonly cache: CacheControl;
  /**
   * What a route's `shadow` found: tallies of match, mismatch, candidate error and skipped, the fields that differ,
   * learned noise and samples. Without a name, the reports of every shadowed route.
   */
  shadowReport(): ShadowReport[];
  shadowReport(route: string): ShadowReport | undefined;
  /**
   * Forgets what the current table learned from traffic: in-memory rate-limit counters, cached answers, failed-
   * authentication counts, ejected targets. For test suites (one gateway, many independent tests); counters kept in
   * Redis are not touched.
   */
  reset(): Promise<void>;
  /** The routes of the current table: path, methods, hosts, features in pipeline order, migration stage, targets and their health. */
  routes(): RouteInfo[];
  /** The runtime control a route's feature exposes, by route name and option (`'cutover'`, `'shadow'`), if any. */
  control<T = unknown>(route: string, option: string): T | undefined;
  /** @internal Lets gateway.fromFile() report a file that did not check out as the last reload's error. */
  [REPORT_RELOAD_ERROR](error: ConfigError, counted: boolean): void;
}

/** @internal */
export const REPORT_RELOAD_ERROR = Symbol('frontdoor.reportReloadError');

/** Where a route's migration stands: served by the app (`monolith`), compared (`shadow`), split (`cutover`), or moved (`service`). */
export type RouteStage = 'monolith' | 'shadow' | 'cutover' | 'service';

/** A route of the current table, as gw.routes() describes it. */
export interface RouteInfo {
  name: string;
  /** The path as configured (`/api/orders/:id`). */
  path: string;
  /** Upper-case, when the route is limited to some (GET includes HEAD). */
  methods: string[] | undefined;
  hosts: string[] | undefined;
  /** The route options that run, in pipeline order: policies, then the final handler's wrappers outermost first, then the final handler. */
  features: string[];
  /** The final handler: `upstream`, `aggregate`, `grpc` or `app` (a route with only `shadow` wraps the app). */
  final: string;
  stage: RouteStage;
  /** The share sent to the upstream, for a route with `cutover`. */
  cutover?: number;
  /** The targets of the route's upstream pools, with their health right now. */
  targets: Array<{
    url: string;
    healthy: boolean;
    state: 'healthy' | 'ejected';
    activeDown: boolean;
    failures: number;
    /** Ejected, with its one trial request under way. */
    trial: boolean;
    /** Ejected: ms until it may get its trial request (0 when due). */
    retryInMs?: number;
    /** Requests on their way to or from the target: the pool's sockets in use for it, plus requests waiting for one. */
    inFlight: number;
  }>;
}

export interface ReloadOptions {
  /** How long requests in flight on the replaced table may take before what it held is closed anyway. Defaults to 30 s. */
  drainTimeout?: number;
}

export interface AttachOptions {
  /** Takes the upgrades that no `ws: true` route takes, e.g. `(req, socket, head) => wss.handleUpgrade(…)`. */
  upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}



/**
 * Creates the gateway router.
 *
 * @example
 * app.use(gateway({ routes: [
 *   { path: '/api/orders', upstream: 'http://127.0.0.1:4001' },
 *   { path: '/v2/orders', methods: ['GET'], upstream: { targets: ['http://10.0.0.1:4001', 'http://10.0.0.2:4001'] }, rewrite: { '^/v2/orders': '/internal/orders' } },
 * ] }));
 */
export function gateway(options: GatewayOptions): Gateway {
  let table = buildTable(options);
  const events = new EventEmitter<GatewayEvents>();
  let unwireEvents = wirePoolEvents(table.routes, events);
  /** Tables replaced by a reload, until their requests in flight finished and what only they held is closed. */
  const retiring = new Set<Promise<void>>();
  let lastReloadError: ConfigError | undefined;
  let closed = false;

  /**
   * Route paths are relative to where the gateway is mounted: under `app.use('/api', gw)`, the route
   * `/api/orders` matches `/api/api/orders`. Said once, on the first request that shows the mount path.
   */
  let mountChecked = false;
  function warnAboutMountPath(mountPath: string): void {
    mountChecked = true;
    const mount = table.caseSensitive ? mountPath : mountPath.toLowerCase();
    for (const route of table.routes) {
      if (route.prefix === mount || route.prefix.startsWith(`${mount}/`)) {
        consoleLogger.warn(`frontdoor: route "${route.name}" starts with the gateway's mount path "${mountPath}". Route paths are relative to the mount path, so it matches ${mountPath}${route.prefix || '/'}; write it as "${route.prefix.slice(mount.length) || '/'}" (docs/gateway.md#matching).`);
      }
    }
  }

  const router = function gatewayDispatch(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
    // One table for the whole request: a reload swaps the pointer, this request finishes on the table it started on.
    const current = table;
    const target = normaliseTarget(req.url ?? '/', current.pathOptions);
    const route = routeFor(current, target, req);
    if (!route) return next();
    const context = getContext(req, res);
    context.route = route.name;
    current.inFlight++;
    // The table's own listener, shared by its requests: counting adds no allocation per request.
    res.on('close', current.requestEnded);
    if (!target.ok) {
      // Refused before the route's policies, but still traced, counted and logged: probes must leave a trace.
      return runPipeline(current.observe, req, res, () => activeWhereAppRuns(context, () => respondOrNext(current.errorMode, req, res, next, new GatewayError('ERR_BAD_PATH', { detail: target.reason }))));
    }
    const mountPath = mountPathOf(req);
    if (mountPath !== '' && !mountChecked) warnAboutMountPath(mountPath);
    if (route.path.hasParams) context.params = paramsOf(target.match ?? target.path, route.path);
    upstreamPlan(context).url = forwardPath(route, target.path, mountPath) + target.search;
    // Leaving for the app (a hand-off, a fallback, an error passed on): its code runs under the request's span.
    runPipeline(route.handlers, req, res, (err) => activeWhereAppRuns(context, () => (err === undefined ? next() : respondOrNext(current.errorMode, req, res, next, err))));
  } as Gateway;

  /** Runs a `ws: true` route's policies on an upgrade, then proxies it; false when no route takes it. */
  function upgradeRoute(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const current = table;
    const target = normaliseTarget(req.url ?? '/', current.pathOptions);
    // The most specific route decides, as for requests: a `ws: true` route on `/` must not take an upgrade
    // for `/admin/x` that the (authenticated, non-ws) `/admin` route owns.
    const route = routeFor(current, target, req);
    if (!route?.upgrade) return false;
    socket.on('error', () => undefined);
    const context = getContext(req);
    context.route = route.name;
    if (!target.ok) {
      refuseUpgrade(req, socket, new GatewayError('ERR_BAD_PATH', { detail: target.reason }));
      return true;
    }
    if (route.path.hasParams) context.params = paramsOf(target.match ?? target.path, route.path);
    upstreamPlan(context).url = forwardPath(route, target.path, '') + target.search;
    // The policies answer on a response bound to the socket; once they pass, the socket goes to the proxy.
    const answer = upgradeResponse(req, socket);
    const takeUpgrade = route.upgrade;
    runPipeline(route.upgradePolicies, req, answer.res, (err) => {
      if (err !== undefined) return sendProblem(req, answer.res, err);
      if (answer.res.headersSent || socket.destroyed) return;
      answer.release();
      takeUpgrade(req, socket, head);
    });
    return true;
  }

  router.upgrade = function gatewayUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (upgradeRoute(req, socket, head)) return;
    // Another 'upgrade' listener (the app's own WebSocket server) may want it; with none, nobody would answer.
    const server = serverOf(socket);
    if (server && server.listenerCount('upgrade') > 1) return;
    serveUpgradeAsHttp(req, socket, head);
  };

  router.attach = function attachGateway(server: Server, attachOptions: AttachOptions = {}): () => void {
    assertKnownKeys(attachOptions, ['upgrade'], 'attach.');
    const fallback = attachOptions.upgrade;
    if (fallback !== undefined && typeof fallback !== 'function') throw new ConfigError(`"attach.upgrade" must be a function (req, socket, head) => void.`);
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (upgradeRoute(req, socket, head)) return;
      if (fallback) fallback(req, socket, head);
      else serveUpgradeAsHttp(req, socket, head);
    };
    server.on('upgrade', onUpgrade);
    return () => {
      server.off('upgrade', onUpgrade);
    };
  };

  router.reload = async function reloadGateway(next: GatewayOptions, reloadOptions: ReloadOptions = {}): Promise<void> {
    if (closed) throw new ConfigError('reload() was called on a closed gateway.');
    const startedAt = performance.now();
    let fresh: Table;
    try {
      fresh = buildTable(next, table.shared);
    } catch (err) {
      if (err instanceof ConfigError) lastReloadError = err;
      for (const observer of table.observers) observer.reloaded?.('failed');
      throw err;
    }
    const old = table;
    table = fresh;
    lastReloadError = undefined;
    unwireEvents();
    unwireEvents = wirePoolEvents(fresh.routes, events);
    for (const observer of fresh.observers) observer.reloaded?.('applied');
    consoleLogger.info(`frontdoor: configuration reloaded (${fresh.routes.length} routes, ${fresh.shared.carriedOver} shared parts kept) in ${Math.round(performance.now() - startedAt)} ms; the previous table drains its ${old.inFlight} requests in flight.`);
    const retired = retire(old, fresh, reloadOptions.drainTimeout ?? DEFAULT_DRAIN_MS);
    retiring.add(retired);
    void retired.finally(() => retiring.delete(retired));
  };

  router.control = function controlOf<T>(name: string, option: string): T | undefined {
    return table.routes.find((route) => route.name === name && route.controls.has(option))?.controls.get(option) as T | undefined;
  };

  router.reset = async function resetGateway(): Promise<void> {
    const parts = [...new Set(table.routes.flatMap((route) => route.parts))];
    const pools = new Set(parts.flatMap((part) => part.pools ?? []));
    for (const pool of pools) pool.resetHealth();
    // Shared parts (a counter or a scheme several routes name) are reset once.
    const resets = new Map<unknown, () => Promise<void> | void>();
    for (const part of parts) if (part.reset) resets.set(part.handler ?? part, part.reset);
    await Promise.all([...resets.values()].map((reset) => reset()));
  };

  router.routes = function routes(): RouteInfo[] {
    return table.routes.map((route) => {
      const cutover = route.controls.get('cutover') as CutoverControl | undefined;
      const pools = [...new Set(route.parts.flatMap((part) => part.pools ?? []))];
      const now = Date.now();
      return {
        ...route.info,
        ...(cutover ? { cutover: cutover.percent } : {}),
        targets: pools.flatMap((pool) =>
          pool.targets.map((target) => ({
            url: target.href,
            healthy: target.state === 'healthy' && !target.activeDown,
            state: target.state,
            activeDown: target.activeDown,
            failures: target.failures,
            trial: target.state === 'ejected' && target.trialInFlight,
            ...(target.state === 'ejected' ? { retryInMs: Math.max(0, target.ejectedUntil - now) } : {}),
            inFlight: pool.inFlight(target),
          })),
        ),
      };
    });
  };

  router.shadowReport = function shadowReport(name?: string): never {
    const shadowed = table.routes.filter((route) => route.controls.has('shadow') && (name === undefined || route.name === name));
    // Routes that share a name and the same shadow options share one report: list each once.
    const reports = [...new Set(shadowed.map((route) => route.controls.get('shadow') as ShadowControl))].map((control) => control.report());
    return (name === undefined ? reports : reports[0]) as never;
  } as Gateway['shadowReport'];

  router.setCutover = function setCutover(name: string, percent: number): void {
    const controls = table.routes.filter((route) => route.name === name && route.controls.has('cutover')).map((route) => route.controls.get('cutover') as CutoverControl);
    if (controls.length === 0) {
      const names = table.routes.filter((route) => route.controls.has('cutover')).map((route) => route.name);
      throw new ConfigError(`route "${name}" has no cutover${names.length ? `; routes with one: ${names.join(', ')}` : ''}.`);
    }
    // A route name may stand for several routes (one per method set): they move together.
    for (const control of controls) control.setPercent(percent);
  };

  router.close = async function closeGateway(): Promise<void> {
    closed = true;
    unwireEvents();
    events.removeAllListeners();
    await Promise.all([...retiring, closeTable(table)]);
  };
  Object.defineProperty(router, 'events', { value: events, enumerable: true });
  Object.defineProperty(router, 'lastReloadError', { get: () => lastReloadError, enumerable: true });
  // The current table's caches: after a reload, the stores it kept or made.
  Object.defineProperty(router, 'cache', { get: () => cacheControlFor(table.shared), enumerable: true });
  // `counted`: reload() itself failed and already told the observers.
  router[REPORT_RELOAD_ERROR] = (error: ConfigError, counted: boolean) => {
    lastReloadError = error;
    if (!counted) for (const observer of table.observers) observer.reloaded?.('failed');
  };
  return router;
}

/**
 * Builds a gateway from a YAML or JSON config file, checked against the file's lines; `{ watch: true }`
 * reloads it when the file changes. See middleware/gateway-file.ts.
 */
gateway.fromFile = gatewayFromFile;

/** How long a replaced table may take to finish its requests before what only it held is closed anyway. */
const DEFAULT_DRAIN_MS = 30_000;

/** A built route table: what a reload swaps in one step. */
interface Table {
  routes: CompiledRoute[];
  /** The observability handlers (trace, metrics, access log) that wrap every route. */
  observe: Middleware[];
  observers: GatewayParts[];
  shared: SharedParts;
  caseSensitive: boolean;
  pathOptions: PathOptions;
  errorMode: ErrorMode;
  /** Requests that matched a route of this table and have not closed yet. */
  inFlight: number;
  requestEnded: () => void;
  /** Called when `inFlight` drops to 0 (set while the table is retiring). */
  drained: (() => void) | undefined;
}

type GatewayParts = ReturnType<(typeof GATEWAY_FEATURES)[number]['build']>;

/**
 * Validates `options` and builds every route's pipeline. `previous`: the shared parts of the table this one
 * replaces, taken over where unchanged. On a mistake, closes what it built and throws one ConfigError with
 * every mistake found.
 */
function buildTable(options: GatewayOptions, previous?: SharedParts): Table {
  if (!options || typeof options !== 'object') throw new ConfigError(`gateway() needs options. Example: gateway({ routes: [{ path: '/api/orders', upstream: 'http://127.0.0.1:4001' }] }).`);
  assertKnownKeys(options, GATEWAY_KEYS);
  if (!Array.isArray(options.routes)) throw new ConfigError(`"routes" must be an array. Example: routes: [{ path: '/api/orders', upstream: 'http://127.0.0.1:4001' }].`);
  const errorMode = options.onError ?? 'respond';
  if (errorMode !== 'respond' && errorMode !== 'next') throw new ConfigError(`"onError" must be 'respond' or 'next'; received ${JSON.stringify(errorMode)}.`);
  const caseSensitive = options.caseSensitive === true;
  const shared = new SharedParts(previous);
  const routes: CompiledRoute[] = [];
  // Observability wraps every route's pipeline, first: trace → logs and metrics.
  const observers: GatewayParts[] = [];
  const discard = () => {
    void Promise.all([...observers, ...routes.flatMap((route) => route.parts)].map((part) => part.close?.())).then(() => shared.discard());
  };
  try {
    for (const feature of GATEWAY_FEATURES) {
      const value = (options as unknown as Record<string, unknown>)[feature.option];
      if (value !== undefined) observers.push(feature.build(value, shared));
    }
    const observe = observers.flatMap((part) => (part.handler ? [part.handler] : []));
    // Every mistake of the table is reported at once, each with its path: a table is fixed in one round.
    const issues = new ConfigIssues();
    for (const feature of ROUTE_FEATURES) issues.collect(() => feature.prepare?.(options as unknown as Record<string, unknown>, shared));
    options.routes.forEach((route, index) => {
      issues.collect(() => compileRoute(route, `routes[${index}].`, caseSensitive, options as unknown as Record<string, unknown>, shared, routes, issues));
    });
    issues.throwIfAny();
    for (const route of routes) route.handlers.unshift(...observe);
    // Most specific first: the deepest path, then literal segments before parameters, then the longest literal prefix.
    routes.sort((a, b) => b.segments - a.segments || b.path.literals - a.path.literals || b.prefix.length - a.prefix.length);
    const seen = new Map<string, string>();
    for (const route of routes) {
      const twin = seen.get(route.key);
      if (twin !== undefined) {
        const message = `routes "${twin}" and "${route.name}" have the same path, methods and host; the second would never match.`;
        throw new ConfigError(message, [{ path: `${route.option}path`, message }]);
      }
      seen.set(route.key, route.name);
    }
    const pools = [...new Set(routes.flatMap((route) => route.parts.flatMap((part) => part.pools ?? [])))];
    for (const observer of observers) observer.watchPools?.(pools);
    const unwatch = observers.flatMap((observer) => (observer.watchRoutes ? [observer.watchRoutes(routes)] : []));
    // Closed with the table: a replaced table's routes stop reporting to the observers.
    if (unwatch.length > 0) observers.push({ close: () => unwatch.forEach((stop) => stop()) });
    const table: Table = {
      routes,
      observe,
      observers,
      shared,
      caseSensitive,
      pathOptions: { semicolons: options.allowSemicolons === true },
      errorMode,
      inFlight: 0,
      drained: undefined,
      requestEnded: () => {
        if (--table.inFlight === 0) table.drained?.();
      },
    };
    return table;
  } catch (err) {
    discard();
    throw err;
  }
}

/** Closes a table's route parts, observers and shared parts. */
async function closeTable(table: Table): Promise<void> {
  await Promise.all([...table.observers, ...table.routes.flatMap((route) => route.parts)].map((part) => part.close?.()));
  await table.shared.close();
}

/** Waits for a replaced table's requests (at most `drainMs`), then closes what `successor` did not take over. */
async function retire(old: Table, successor: Table, drainMs: number): Promise<void> {
  if (old.inFlight > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, drainMs);
      timer.unref();
      old.drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  await Promise.all([...old.observers, ...old.routes.flatMap((route) => route.parts)].map((part) => part.close?.()));
  await old.shared.closeExcept(successor.shared);
}

/** The route a (normalised or refused) target concerns; a refused path is matched as a lenient upstream would read it. */
function routeFor(table: Table, target: ReturnType<typeof normaliseTarget>, req: IncomingMessage): CompiledRoute | undefined {
  if (target.ok) return match(table, target.match ?? target.path, req);
  return match(table, target.lenient, req) ?? match(table, target.pathname, req);
}

function match(table: Table, path: string, req: IncomingMessage): CompiledRoute | undefined {
  const candidate = table.caseSensitive ? path : path.toLowerCase();
  const method = req.method ?? 'GET';
  let hostname: string | undefined;
  for (const route of table.routes) {
    const { prefix } = route;
    if (!candidate.startsWith(prefix)) continue;
    if (route.path.hasParams) {
      if (!matchesSegments(candidate, route.path)) continue;
    } else if (candidate.length !== prefix.length && candidate.charCodeAt(prefix.length) !== 47 /* '/' */) continue;
    if (route.methods && !route.methods.has(method)) continue;
    if (route.hosts) {
      hostname ??= hostnameOf(req);
      const host = hostname;
      if (!route.hosts.some((test) => test(host))) continue;
    }
    return route;
  }
  return undefined;
}

/** The path the upstream gets: the matched one, without the prefix when `stripPath`. */
function forwardPath(route: CompiledRoute, path: string, mountPath: string): string {
  return route.stripPath ? dropSegments(path, route.segments) : mountPath + path;
}

/** Builds a route's pipeline from the feature registry, phase by phase; pushes it on `routes` as soon as it holds parts to close. */
function compileRoute(route: RouteOptions, prefix: string, caseSensitive: boolean, gatewayOptions: Record<string, unknown>, shared: SharedParts, routes: CompiledRoute[], issues: ConfigIssues): CompiledRoute {
  if (!route || typeof route !== 'object') throw new ConfigError(`"${prefix.slice(0, -1)}" must be an object like { path: '/api/orders', upstream: 'http://127.0.0.1:4001' }.`);
  assertKnownKeys(route, ROUTE_KEYS, prefix);
  const path = compileRoutePath(route.path, `${prefix}path`, caseSensitive);
  const methods = route.methods === undefined ? undefined : compileMethods(route.methods, `${prefix}methods`);
  const hosts = route.host === undefined ? undefined : compileHosts(route.host, `${prefix}host`);
  const values = route as unknown as Record<string, unknown>;
  // A feature listing its own option among its gatewayOptions takes the gateway's value as the default of every route (bodyLimit).
  const valueOf = (feature: (typeof ROUTE_FEATURES)[number]) => values[feature.option] ?? (feature.gatewayOptions?.includes(feature.option) ? gatewayOptions[feature.option] : undefined);
  const features = ROUTE_FEATURES.filter((feature) => valueOf(feature) !== undefined).sort((a, b) => (PHASE_ORDER.get(a.phase) ?? 0) - (PHASE_ORDER.get(b.phase) ?? 0));
  const finals = features.filter((feature) => feature.phase === 'final' && !feature.wraps);
  const wrappers = features.filter((feature) => feature.wraps);
  const needsUpstream = wrappers.find((feature) => feature.wraps?.needsUpstream);
  if (needsUpstream && values.upstream === undefined) throw new ConfigError(`"${prefix}${needsUpstream.option}" needs "${prefix}upstream": it decides between the upstream and the app's own handler.`);
  // A wrapper without a final handler (shadow alone) wraps the app's own handler: the monolith keeps answering.
  const implicitApp = finals.length === 0 && wrappers.length > 0;
  if (implicitApp) finals.push(APP_FINAL);
  if (finals.length === 0) throw new ConfigError(`Missing "${prefix}upstream". Example: upstream: 'http://127.0.0.1:4001' (or app: true to hand the request back to the app after the route's policies).`);
  if (finals.length > 1) throw new ConfigError(`"${prefix.slice(0, -1)}" has more than one final handler (${finals.map((feature) => `"${feature.option}"`).join(', ')}); choose one.`);
  for (const feature of ROUTE_FEATURES) {
    if (values[feature.option] !== undefined) continue;
    const orphan = feature.reads?.find((key) => values[key] !== undefined);
    if (orphan) throw new ConfigError(`"${prefix}${orphan}" belongs to "${prefix}${feature.option}", which this route does not set.`);
  }

  const compiled: CompiledRoute = {
    name: route.name ?? route.path,
    prefix: path.literalPrefix,
    path,
    segments: path.segments.length,
    methods,
    hosts,
    stripPath: route.stripPath === true,
    handlers: [],
    upgradePolicies: [],
    upgrade: undefined,
    parts: [],
    controls: new Map(),
    option: prefix,
    info: {
      name: route.name ?? route.path,
      path: route.path,
      methods: methods ? [...methods] : undefined,
      hosts: route.host === undefined ? undefined : [route.host].flat(),
      // Policies in phase order, then the wrappers outermost first, then the final handler.
      features: [...features.filter((feature) => feature.phase !== 'final').map((feature) => feature.option), ...[...wrappers].reverse().map((feature) => feature.option), ...finals.map((feature) => feature.option)],
      final: finals[0].option,
      stage: stageOf(finals[0].option, wrappers.map((feature) => feature.option)),
    },
    key: `${path.shape} ${methods ? [...methods].sort().join(',') : '*'} ${route.host === undefined ? '*' : [route.host].flat().join(',')}`,
  };
  routes.push(compiled); // its parts are closed with the gateway's, also when a later feature fails to build
  const scope = { optionPrefix: prefix, routeName: compiled.name, methods: methods ? [...methods].sort() : undefined, hosts: route.host === undefined ? undefined : [route.host].flat(), route: values, gateway: gatewayOptions, shared };
  const toBuild = implicitApp ? [...features.filter((feature) => !feature.wraps), APP_FINAL, ...wrappers] : features;
  const built = toBuild.flatMap((feature) => {
    const parts = issues.collect(() => feature.build(implicitApp && feature === APP_FINAL ? true : valueOf(feature), scope));
    if (!parts) return [];
    compiled.parts.push(parts);
    if (parts.control !== undefined) compiled.controls.set(feature.option, parts.control);
    return [{ feature, parts, phase: PHASE_ORDER.get(parts.phase ?? feature.phase) ?? 0 }];
  });
  // A part may run in another phase than its feature's (a limit by IP alone, before authentication).
  built.sort((a, b) => a.phase - b.phase);
  let final: Middleware | undefined;
  for (const { feature, parts } of built) {
    if (feature.wraps) continue;
    if (feature.phase === 'final') {
      final = parts.handler;
      compiled.upgrade = parts.upgrade;
      continue;
    }
    if (parts.handler) {
      compiled.handlers.push(parts.handler);
      if (feature.upgrade.apply) compiled.upgradePolicies.push(parts.handler);
    }
  }
  // Wrappers in registry order, the first innermost: cutover(fallback(proxy)), and shadow around what answers.
  for (const { feature, parts } of built) if (feature.wraps && parts.wrapFinal && final) final = parts.wrapFinal(final);
  if (final) compiled.handlers.push(final);
  return compiled;
}

/** The migration stage a route's final handler and wrappers put it in. */
function stageOf(final: string, wrappers: string[]): RouteStage {
  if (wrappers.includes('shadow')) return 'shadow';
  if (wrappers.includes('cutover')) return 'cutover';
  return final === 'app' ? 'monolith' : 'service';
}

/**
 * Reports a table's pool ejections and recoveries on the gateway's channel (a pool shared by routes reports
 * once, naming them all); returns what stops it, for a reload.
 */
function wirePoolEvents(routes: CompiledRoute[], events: EventEmitter<GatewayEvents>): () => void {
  const routesOf = new Map<UpstreamPool, string[]>();
  for (const route of routes) {
    for (const part of route.parts) for (const pool of part.pools ?? []) routesOf.set(pool, [...(routesOf.get(pool) ?? []), route.name]);
  }
  const unwire: Array<() => void> = [];
  for (const [pool, names] of routesOf) {
    const onEject = (target: { href: string }, cooldownMs: number) => events.emit('upstream.ejected', { target: target.href, cooldownMs, routes: names });
    const onRecover = (target: { href: string }) => events.emit('upstream.recovered', { target: target.href, routes: names });
    pool.on('eject', onEject);
    pool.on('recover', onRecover);
    unwire.push(() => {
      pool.off('eject', onEject);
      pool.off('recover', onRecover);
    });
  }
  return () => {
    for (const stop of unwire) stop();
  };
}

function compileMethods(methods: unknown, option: string): Set<string> {
  if (!Array.isArray(methods) || methods.length === 0 || !methods.every((m) => typeof m === 'string' && /^[A-Za-z]+$/.test(m))) {
    throw new ConfigError(`"${option}" must be a non-empty list of HTTP methods, e.g. ['GET', 'POST']; received ${JSON.stringify(methods)}.`);
  }
  const set = new Set(methods.map((m: string) => m.toUpperCase()));
  if (set.has('GET')) set.add('HEAD');
  return set;
}

function compileHosts(host: unknown, option: string): Array<(hostname: string) => boolean> {
  const list = Array.isArray(host) ? host : [host];
  return list.map((entry) => {
    if (typeof entry !== 'string' || !/^(\*\.)?[A-Za-z0-9.-]+$/.test(entry)) {
      throw new ConfigError(`"${option}" must be a hostname like 'api.example.com' or '*.example.com'; received ${JSON.stringify(entry)}.`);
    }
    const lower = entry.toLowerCase();
    if (lower.startsWith('*.')) {
      const suffix = lower.slice(1);
      return (hostname: string) => hostname.endsWith(suffix) && hostname.length > suffix.length;
    }
    return (hostname: string) => hostname === lower;
  });
}

/** The request's hostname without port, as Express computes it (honouring `trust proxy`). */
function hostnameOf(req: IncomingMessage): string {
  const fromExpress = (req as { hostname?: string }).hostname;
  const host = fromExpress ?? req.headers.host ?? '';
  return (host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]).toLowerCase();
}

/** Runs handlers in order; an error or the last handler's `next()` ends in `done`. */
function runPipeline(handlers: Middleware[], req: IncomingMessage, res: ServerResponse, done: (err?: unknown) => void): void {
  let index = 0;
  const step = (err?: unknown): void => {
    if (err !== undefined && err !== null) return done(err);
    const handler = handlers[index++];
    if (!handler) return done();
    try {
      handler(req, res, step);
    } catch (error) {
      done(error);
    }
  };
  step();
}
