/**
 * The registry of features a gateway route can carry. gateway() builds routes from these lists alone: a
 * new feature is one file exporting a FeatureDescriptor, plus one line here. Within a phase, features run
 * in the order listed.
 */
import type { CorsOptions } from 'cors';
import type { FeatureDescriptor, GatewayFeatureDescriptor } from '../lib/pipeline';
import type { AccessLogOptions } from './access-log';
import type { AuthenticateOptions } from './authenticate';
import type { AuthorizeOptions } from './authorize';
import type { IpFilterOptions } from './ip-filter';
import type { MetricsOptions } from './metrics';
import type { PathRewrite, RouteUpstreamOptions } from './proxy';
import type { RateLimitOptions } from './rate-limit';
import type { TraceOptions } from './trace';
import type { AggregateOptions } from './aggregate';
import type { BodyLimitOptions } from './body-limit';
import type { CacheOptions } from './cache';
import type { TransformBodyOptions } from './transform-body';
import type { XmlBridgeOptions } from './xml-bridge';
import { accessLogFeature } from './access-log';
import { dashboardFeature } from './dashboard';
import type { DashboardRecorderOptions } from './dashboard';
import { aggregateFeature } from './aggregate';
import { bodyLimitFeature } from './body-limit';
import { cacheFeature } from './cache';
import { transformBodyFeature } from './transform-body';
import { xmlFeature } from './xml-bridge';
import { appHandoffFeature } from './app-handoff';
import { cutoverFeature } from './cutover';
import type { CutoverOptions } from './cutover';
import { fallbackFeature } from './fallback';
import { grpcFeature } from './grpc-bridge';
import type { GrpcBridgeOptions } from './grpc-bridge';
import type { FallbackOptions } from './fallback';
import { shadowFeature } from './shadow';
import type { ShadowOptions } from './shadow';
import { authFeature } from './authenticate';
import { authorizeFeature } from './authorize';
import { corsFeature } from './cors';
import { headersFeature } from './headers';
import type { HeadersOptions } from './headers';
import { ipFilterFeature } from './ip-filter';
import { metricsFeature } from './metrics';
import { proxyFeature } from './proxy';
import { rateLimitFeature } from './rate-limit';
import { traceFeature } from './trace';

/**
 * Route options, by phase: admit (cors, ipFilter, bodyLimit) → identify (auth) → permit (authorize) → limit
 * (rateLimit) → cache → shape the request (headers, transformBody, xml) → final (upstream, aggregate, or app),
 * wrapped by fallback, cutover and shadow.
 */
export const ROUTE_FEATURES: readonly FeatureDescriptor[] = [
  corsFeature,
  ipFilterFeature,
  bodyLimitFeature,
  authFeature,
  authorizeFeature,
  rateLimitFeature,
  cacheFeature,
  headersFeature,
  transformBodyFeature,
  xmlFeature,
  proxyFeature,
  aggregateFeature,
  grpcFeature,
  appHandoffFeature,
  // Wrappers of the final handler, innermost first: cutover(fallback(upstream)), shadow around what answers.
  fallbackFeature,
  cutoverFeature,
  shadowFeature,
];

/** Gateway options that wrap every route (observe): trace → metrics → access log. */
export const GATEWAY_FEATURES: readonly GatewayFeatureDescriptor[] = [traceFeature, metricsFeature, dashboardFeature, accessLogFeature];

/** Route options that belong to features (the router's own are in RouteOptions). */
export interface RouteFeatureOptions {
  /**
   * Where matching requests go: a URL, the name of one of the gateway's `upstreams` (routes naming it share its
   * pool and health), or targets with load balancing, health, timeouts and retries.
   */
  upstream?: string | RouteUpstreamOptions;
  /**
   * Hand the request back to the app's own handlers once the route's policies passed, instead of forwarding it:
   * `{ path: '/admin', auth: 'staff', app: true }` puts the edge's auth in front of a route the monolith still
   * serves. A route has `upstream` or `app`.
   */
  app?: true;
  /** Rewrites the forwarded path, e.g. `{ '^/v2/orders': '/internal/orders' }`. */
  rewrite?: PathRewrite;
  /** Forward the client's Host header. Defaults to false. */
  preserveHost?: boolean;
  /** Proxy WebSocket upgrades on this route, after its IP rules, auth, authorize and rate limit (see `gateway.upgrade`). Defaults to false. */
  ws?: boolean;
  /** Set X-Forwarded-* headers. Defaults to true. */
  xForwarded?: boolean;
  /** CORS for this route (the `cors` package's options, or `true` for its defaults). Preflights are answered before auth. */
  cors?: CorsOptions | true;
  /** Client address rules, see ipFilter(). */
  ipFilter?: IpFilterOptions;
  /** Authentication: authenticate() options, or the name of a scheme in the gateway's `authSchemes`. */
  auth?: AuthenticateOptions | string;
  /** Access rules after authentication, see authorize(). The 401 challenge carries the route's auth realm. */
  authorize?: AuthorizeOptions;
  /** Header changes on the way to the upstream and back, with templates (`${consumer.id}`…), see headers(). */
  headers?: HeadersOptions;
  /** Largest request body accepted (413 problem past it), see bodyLimit(): `'1mb'`, `{ max: '1mb' }`, or `false` to turn the gateway's default off. */
  bodyLimit?: BodyLimitOptions;
  /** Response caching after auth and the rate limit, see cache(). */
  cache?: CacheOptions;
  /** JSON body shaping in both directions, see transformBody(). */
  transformBody?: TransformBodyOptions;
  /** A JSON API in front of an XML or SOAP service (or the reverse), see xmlBridge(). */
  xml?: XmlBridgeOptions;
  /** One request, several upstream calls, one shaped answer (a route with `aggregate` needs no `upstream`), see aggregate(). */
  aggregate?: AggregateOptions;
  /** Instead of `upstream`: JSON clients call a gRPC service, with the standard HTTP mapping, see grpcBridge(). */
  grpc?: GrpcBridgeOptions;
  /** Hand the request to the app's own handler when the upstream is unreachable, times out or answers a listed status, see fallback(). */
  fallback?: FallbackOptions | true;
  /** Send this share of the route's requests to the upstream, the rest to the app's own handler, see cutover(). */
  cutover?: CutoverOptions | number;
  /** Copy requests to a candidate service and compare its answers with the primary's, see shadow(). */
  shadow?: ShadowOptions;
  /** Rate limit, see rateLimit(). Counters are per route (its name, or its path and methods) unless routes share a `name`. */
  rateLimit?: RateLimitOptions;
}

/** Gateway options that belong to features. */
export interface GatewayFeatureOptions {
  /**
   * Named upstreams, as services are in Kong and KrakenD: `{ orders: { targets: […], health: {…} } }`, used by routes
   * as `upstream: 'orders'`. Every route naming one shares one pool: one health state, one set of keep-alive sockets.
   */
  upstreams?: Record<string, string | RouteUpstreamOptions>;
  /** Named authentication schemes shared by routes (`auth: 'partners'`): one key cache for all of them. */
  authSchemes?: Record<string, AuthenticateOptions>;
  /** Trace every routed request (SERVER span + upstream CLIENT spans): trace() options or `true`. */
  trace?: TraceOptions | boolean;
  /** Record metrics of every routed request: metrics() options or `true`. */
  metrics?: MetricsOptions | boolean;
  /** Write an access log line per routed request: accessLog() options or `true`. */
  accessLog?: AccessLogOptions | boolean;
  /** Record every routed request for dashboard(): `true` (the process-wide recorder it reads) or `{ recorder }`. */
  dashboard?: DashboardRecorderOptions | boolean;
  /** The largest request body of every route without its own `bodyLimit` (413 past it), see bodyLimit(). */
  bodyLimit?: BodyLimitOptions;
}
