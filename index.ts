/**
 * frontdoor: composable Express middlewares that turn the edge of an existing app into an API gateway.
 * The whole public API is exported from here.
 */
export { proxy } from './middleware/proxy';
export type { ProxyOptions, ProxyMiddleware, PathRewrite, ErrorMode } from './middleware/proxy';
export { gateway } from './middleware/gateway';
export type { Gateway, GatewayEvents, GatewayOptions, RouteOptions, RouteUpstreamOptions, AttachOptions, ReloadOptions } from './middleware/gateway';
export type { FromFileOptions, FileGateway } from './middleware/gateway-file';
export { gatewayJsonSchema } from './middleware/gateway-schema';
export { requestId } from './middleware/request-id';
export { problemHandler } from './middleware/problem-handler';
export { keepRawBody } from './lib/request-body';
export { addResponseFilter } from './lib/response-filters';
export type { ResponseFilter, FilteredResponse } from './lib/response-filters';
export { loadConfig, readConfig } from './lib/config-file';
export type { ConfigFile } from './lib/config-file';
export { GatewayError, ConfigError } from './lib/errors';
export type { GatewayErrorCode } from './lib/errors';
export { sendProblem } from './lib/problem';
export type { ProblemDocument } from './lib/problem';
export { getContext } from './lib/context';
export type { RequestContext } from './lib/context';
export { UpstreamPool } from './lib/upstream-pool';
export type { UpstreamOptions, UpstreamTarget, TargetOption, HealthOptions, PassiveHealthOptions, ActiveHealthOptions, TlsOptions, AgentOptions } from './lib/upstream-pool';
export type { Duration } from './lib/duration';
export { authenticate } from './middleware/authenticate';
export type { AuthenticateOptions, JwtOptions, ApiKeyOptions, ApiKeyConsumer, MtlsOptions, IdentityHeaderOptions } from './middleware/authenticate';
export { authorize } from './middleware/authorize';
export type { AuthorizeOptions } from './middleware/authorize';
export { ipFilter } from './middleware/ip-filter';
export type { IpFilterOptions } from './middleware/ip-filter';
export { getConsumer } from './lib/consumer';
export type { Consumer, AuthScheme } from './lib/consumer';
export type { JwtAlgorithm } from './lib/jwt-keys';
export { rateLimit } from './middleware/rate-limit';
export type { RateLimitOptions, RateLimitMiddleware } from './middleware/rate-limit';
export type { Logger } from './lib/log';
export type { RedisClientLike } from './lib/redis';
export { trace } from './middleware/trace';
export type { TraceOptions } from './middleware/trace';
export { setupTelemetry } from './lib/setup-telemetry';
export type { TelemetryOptions, Telemetry } from './lib/setup-telemetry';
export { metrics, metricsHandler, MetricsRegistry, defaultMetricsRegistry } from './middleware/metrics';
export type { MetricsOptions } from './middleware/metrics';
export { accessLog } from './middleware/access-log';
export { headers } from './middleware/headers';
export type { HeadersOptions, HeaderChanges } from './middleware/headers';
export type { AccessLogOptions } from './middleware/access-log';
