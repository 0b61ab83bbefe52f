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
import { accessLogFeature } from './access-log';
import { appHandoffFeature } from './app-handoff';
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

/** Route options, by phase: admit (cors, ipFilter) → identify (auth) → permit (authorize) → limit (rateLimit) → final (upstream, or app). */
export const ROUTE_FEATURES: readonly FeatureDescriptor[] = [corsFeature, ipFilterFeature, authFeature, authorizeFeature, rateLimitFeature, headersFeature, proxyFeature, appHandoffFeature];

/** Gateway options that wrap every route (observe): trace → metrics → access log. */
export const GATEWAY_FEATURES: readonly GatewayFeatureDescriptor[] = [traceFeature, metricsFeature, accessLogFeature];

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
}
