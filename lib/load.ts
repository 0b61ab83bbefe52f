/**
 * Requires a dependency when a feature first needs it, not when frontdoor is imported. The OpenTelemetry
 * SDK, the Prometheus exporter, ioredis, jose, passport-jwt, pino and yaml together cost ~60 MB of memory
 * and most of a second to load; an app pays only for the features it uses.
 */
export function load<T>(id: string): T {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(id) as T;
}
