/**
 * Requires a dependency when a feature first needs it, not when frontdoor is imported. The OpenTelemetry
 * SDK, the Prometheus exporter, ioredis, jose, passport-jwt, pino and yaml together cost ~50 MB of memory
 * and most of a second to load; an app pays only for the features it uses.
 */

/** The lazily loaded modules and their types: a typo or a type that does not match fails to compile. */
interface LazyModules {
  '@opentelemetry/sdk-trace': typeof import('@opentelemetry/sdk-trace');
  '@opentelemetry/context-async-hooks': typeof import('@opentelemetry/context-async-hooks');
  '@opentelemetry/resources': typeof import('@opentelemetry/resources');
  '@opentelemetry/propagator-b3': typeof import('@opentelemetry/propagator-b3');
  '@opentelemetry/propagator-jaeger': typeof import('@opentelemetry/propagator-jaeger');
  '@opentelemetry/exporter-trace-otlp-http': typeof import('@opentelemetry/exporter-trace-otlp-http');
  '@opentelemetry/exporter-trace-otlp-proto': typeof import('@opentelemetry/exporter-trace-otlp-proto');
  '@opentelemetry/exporter-prometheus': typeof import('@opentelemetry/exporter-prometheus');
  '@opentelemetry/sdk-metrics': typeof import('@opentelemetry/sdk-metrics');
  ioredis: typeof import('ioredis');
  jose: typeof import('jose');
  'passport-jwt': typeof import('passport-jwt');
  pino: typeof import('pino');
  yaml: typeof import('yaml');
  '@grpc/grpc-js': typeof import('@grpc/grpc-js');
  '@grpc/proto-loader': typeof import('@grpc/proto-loader');
}

export function load<K extends keyof LazyModules>(id: K): LazyModules[K] {
  // A plain require on purpose: synchronous, so constructors can use it; bundlers must keep these external.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(id) as LazyModules[K];
}
