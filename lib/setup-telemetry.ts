/**
 * setupTelemetry(): starts OpenTelemetry tracing (OTLP over HTTP by default, configured by the standard
 * OTEL_* variables) for apps that have none — and reuses the app's own when it already set one up. A
 * collector that is down, slow or refusing never crashes or slows the gateway: export is batched and
 * bounded in memory, failures are logged at most once a minute, shutdown never throws.
 *
 * It composes the parts NodeSDK (@opentelemetry/sdk-node) would start for traces — the trace SDK's
 * TracerProvider, an AsyncLocalStorage context manager, the OTEL_PROPAGATORS propagator, the detected
 * resource — and nothing else: NodeSDK requires every exporter it knows at import (gRPC, Zipkin, metrics,
 * logs, Prometheus: ~45 MB of memory) and starts a metrics and a logs pipeline by default.
 */
import { context, diag, DiagConsoleLogger, propagation, trace, TextMapPropagator } from '@opentelemetry/api';
import {
  CompositePropagator,
  diagLogLevelFromString,
  getBooleanFromEnv,
  getNumberFromEnv,
  getStringFromEnv,
  getStringListFromEnv,
  setGlobalErrorHandler,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import type { ResourceDetector } from '@opentelemetry/resources';
import type { SpanExporter, SpanLimits } from '@opentelemetry/sdk-trace';
import { Duration, parseDuration } from './duration';
import { ConfigError } from './errors';
import { load } from './load';
import { FRONTDOOR_TRACER, PresetIdGenerator, SamplingPlan, setSamplingPlan } from './telemetry';
import { consoleLogger, Logger } from './log';
import { assertKnownKeys } from './options';

export interface TelemetryOptions {
  /** `service.name` of the spans. Defaults to `OTEL_SERVICE_NAME`, else `'frontdoor'`. */
  serviceName?: string;
  /** Share of new traces sampled (0–1); a caller's sampling decision is followed (parent-based). Defaults to `OTEL_TRACES_SAMPLER_ARG`, else 1. */
  sampleRatio?: number;
  /**
   * Where spans go. Defaults to OTLP over HTTP at `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` (default
   * http://localhost:4318), encoded as `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` says: `http/protobuf` (the
   * OpenTelemetry default) or `http/json`.
   */
  exporter?: SpanExporter;
  /** Most spans held for export; beyond it new spans are dropped, never buffered without bound. Defaults to 2048. */
  maxQueueSize?: number;
  /** Delay between batch exports. Defaults to `'5s'`. */
  exportInterval?: Duration;
  /** Where export failures are reported (at most once a minute). Defaults to the console. */
  logger?: Logger;
  /**
   * Longest time shutdown() waits for the last spans to be flushed; past it, they are dropped and shutdown
   * resolves, so a pod's termination grace period is not spent on a dead collector. Defaults to `'2s'`.
   */
  shutdownTimeout?: Duration;
}

export interface Telemetry {
  /** True when the app had already registered a tracer provider, which frontdoor then uses as is. */
  readonly reused: boolean;
  /** Flushes and stops the tracing started here (a no-op when reused), within `shutdownTimeout`. Never rejects. */
  shutdown(): Promise<void>;
}

const KNOWN = ['serviceName', 'sampleRatio', 'exporter', 'maxQueueSize', 'exportInterval', 'logger', 'shutdownTimeout'];

export function setupTelemetry(options: TelemetryOptions = {}): Telemetry {
  assertKnownKeys(options, KNOWN);
  const logger = options.logger ?? consoleLogger;
  if (hasTracerProvider()) return { reused: true, shutdown: async () => undefined };

  const envRatio = process.env.OTEL_TRACES_SAMPLER_ARG === undefined ? undefined : Number(process.env.OTEL_TRACES_SAMPLER_ARG);
  const ratio = options.sampleRatio ?? envRatio ?? 1;
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw new ConfigError(`"sampleRatio" must be a number from 0 to 1; received ${JSON.stringify(options.sampleRatio ?? process.env.OTEL_TRACES_SAMPLER_ARG)}.`);
  const maxQueueSize = options.maxQueueSize ?? 2048;
  if (!Number.isInteger(maxQueueSize) || maxQueueSize < 1) throw new ConfigError(`"maxQueueSize" must be a positive integer.`);
  const shutdownTimeout = options.shutdownTimeout === undefined ? 2_000 : parseDuration(options.shutdownTimeout, 'shutdownTimeout');
  const exportInterval = options.exportInterval === undefined ? 5_000 : parseDuration(options.exportInterval, 'exportInterval');
  const protocol = options.exporter ? undefined : otlpProtocol();
  // The specification's switch for all signals, honoured as NodeSDK does: nothing is started (or loaded).
  if (getBooleanFromEnv('OTEL_SDK_DISABLED')) return { reused: false, shutdown: async () => undefined };

  const logLevel = getStringFromEnv('OTEL_LOG_LEVEL');
  if (logLevel !== undefined) diag.setLogger(new DiagConsoleLogger(), { logLevel: diagLogLevelFromString(logLevel) });

  // Everything is built before anything is registered: a refused configuration leaves the globals untouched.
  const { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, RandomIdGenerator, TraceIdRatioBasedSampler, TracerProvider } = sdkModule('@opentelemetry/sdk-trace');
  const { AsyncLocalStorageContextManager } = sdkModule('@opentelemetry/context-async-hooks');
  const propagator = propagatorFromEnv(logger);
  const exporter = options.exporter ?? otlpExporter(protocol as OtlpProtocol);
  // The same decisions as a ratio sampler at 1 and 0, without hashing every new trace id.
  const sampler = new ParentBasedSampler({ root: ratio === 1 ? new AlwaysOnSampler() : ratio === 0 ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(ratio) });
  const ids = new PresetIdGenerator(new RandomIdGenerator());
  const plan: SamplingPlan = { sampler, ids, otherTracers: false };
  /** Notices tracers other than frontdoor's: their spans need the request's span active to nest under it. */
  class GatewayTracerProvider extends TracerProvider {
    override getTracer(...args: Parameters<InstanceType<typeof TracerProvider>['getTracer']>) {
      if (args[0] !== FRONTDOOR_TRACER) plan.otherTracers = true;
      return super.getTracer(...args);
    }
  }
  const provider = new GatewayTracerProvider({
    resource: resourceFor(options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? 'frontdoor', logger),
    sampler,
    idGenerator: ids,
    spanLimits: spanLimitsFromEnv(),
    spanProcessors: [
      new BatchSpanProcessor({ exporter, maxQueueSize, maxExportBatchSize: Math.min(512, maxQueueSize), scheduledDelayMillis: exportInterval, exportTimeoutMillis: 10_000 }),
    ],
  });

  const throttled = throttle(logger, 60_000);
  // Export failures surface through OpenTelemetry's global error handler: report them, never throw.
  setGlobalErrorHandler((err) => throttled(`frontdoor: trace export failed: ${(err as Error)?.message ?? err}`));
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  if (propagator) propagation.setGlobalPropagator(propagator);
  trace.setGlobalTracerProvider(provider);
  setSamplingPlan(plan);

  let stopped: Promise<void> | undefined;
  return {
    reused: false,
    shutdown() {
      if (stopped) return stopped;
      const flushed = provider.shutdown().catch((err: unknown) => throttled(`frontdoor: telemetry shutdown could not flush spans: ${(err as Error)?.message ?? err}`));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          throttled(`frontdoor: telemetry shutdown gave up flushing spans after ${shutdownTimeout} ms (is the collector down?); the rest are dropped.`);
          resolve();
        }, shutdownTimeout);
        timer.unref();
      });
      stopped = Promise.race([flushed, late]).finally(() => clearTimeout(timer));
      return stopped;
    },
  };
}

type OtlpProtocol = 'http/protobuf' | 'http/json';

/**
 * The OTLP/HTTP encoding the standard variables ask for; checked before anything is loaded. gRPC is not
 * bundled: pass `exporter` for it.
 */
function otlpProtocol(): OtlpProtocol {
  const variable = process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = (process.env[variable] || 'http/protobuf').trim();
  if (protocol === 'http/protobuf' || protocol === 'http/json') return protocol;
  throw new ConfigError(
    `${variable}=${JSON.stringify(protocol)} is not supported by setupTelemetry(): use "http/protobuf" (the default) or "http/json"` +
      (protocol === 'grpc' ? `, or pass exporter: new OTLPTraceExporter() from @opentelemetry/exporter-trace-otlp-grpc.` : '.'),
  );
}

/** Only the encoding in use is loaded. Endpoint, headers, timeout and compression are read by the exporter itself. */
function otlpExporter(protocol: OtlpProtocol): SpanExporter {
  if (protocol === 'http/json') return new (sdkModule('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter)();
  return new (sdkModule('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter)();
}

/**
 * NodeSDK's resource: the SDK's defaults, what the detectors find (env, process and host unless
 * OTEL_NODE_RESOURCE_DETECTORS names others: `all`, `none`, or a list of env, host, os, process,
 * serviceinstance), then `service.name`.
 */
function resourceFor(serviceName: string, logger: Logger) {
  const resources = sdkModule('@opentelemetry/resources');
  const byName: Record<string, ResourceDetector> = {
    host: resources.hostDetector,
    os: resources.osDetector,
    serviceinstance: resources.serviceInstanceIdDetector,
    process: resources.processDetector,
    env: resources.envDetector,
  };
  let detectors = [resources.envDetector, resources.processDetector, resources.hostDetector];
  const names = getStringFromEnv('OTEL_NODE_RESOURCE_DETECTORS') ? (getStringListFromEnv('OTEL_NODE_RESOURCE_DETECTORS') ?? []) : undefined;
  if (names?.includes('all')) detectors = Object.values(byName);
  else if (names?.includes('none')) detectors = [];
  else if (names) {
    const unknown = names.filter((name) => !(name in byName));
    if (unknown.length) logger.warn(`frontdoor: OTEL_NODE_RESOURCE_DETECTORS names unknown detectors (${unknown.join(', ')}); known: all, none, ${Object.keys(byName).join(', ')}. They are ignored.`);
    detectors = names.filter((name) => name in byName).map((name) => byName[name]);
  }
  return resources
    .defaultResource()
    .merge(resources.detectResources({ detectors }))
    .merge(resources.resourceFromAttributes({ 'service.name': serviceName }));
}

/**
 * The propagator OTEL_PROPAGATORS names (tracecontext, baggage, b3, b3multi, jaeger; `none` registers
 * none), W3C Trace Context and Baggage when unset. B3 and Jaeger are loaded only when named.
 */
function propagatorFromEnv(logger: Logger): TextMapPropagator | undefined {
  const names = [...new Set(getStringListFromEnv('OTEL_PROPAGATORS') ?? ['tracecontext', 'baggage'])];
  if (names.includes('none')) return undefined;
  const factories: Record<string, () => TextMapPropagator> = {
    tracecontext: () => new W3CTraceContextPropagator(),
    baggage: () => new W3CBaggagePropagator(),
    b3: () => new (propagatorModule('@opentelemetry/propagator-b3', 'b3').B3Propagator)(),
    b3multi: () => {
      const { B3InjectEncoding, B3Propagator } = propagatorModule('@opentelemetry/propagator-b3', 'b3multi');
      return new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
    },
    jaeger: () => new (propagatorModule('@opentelemetry/propagator-jaeger', 'jaeger').JaegerPropagator)(),
  };
  const unknown = names.filter((name) => !(name in factories));
  if (unknown.length) logger.warn(`frontdoor: OTEL_PROPAGATORS names unknown propagators (${unknown.join(', ')}); known: ${Object.keys(factories).join(', ')}, none. They are ignored.`);
  const propagators = names.filter((name) => name in factories).map((name) => factories[name]());
  if (propagators.length === 0) return undefined;
  return propagators.length === 1 ? propagators[0] : new CompositePropagator({ propagators });
}

/** Span limits from OTEL_SPAN_* and OTEL_ATTRIBUTE_* (the trace SDK's defaults where unset), as NodeSDK reads them. */
function spanLimitsFromEnv(): SpanLimits {
  return {
    attributeCountLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT') ?? getNumberFromEnv('OTEL_ATTRIBUTE_COUNT_LIMIT'),
    attributeValueLengthLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT') ?? getNumberFromEnv('OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT'),
    eventCountLimit: getNumberFromEnv('OTEL_SPAN_EVENT_COUNT_LIMIT'),
    linkCountLimit: getNumberFromEnv('OTEL_SPAN_LINK_COUNT_LIMIT'),
    attributePerEventCountLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_PER_EVENT_COUNT_LIMIT'),
    attributePerLinkCountLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_PER_LINK_COUNT_LIMIT'),
  };
}

/** True when some SDK registered a real tracer provider behind the API's proxy. */
function hasTracerProvider(): boolean {
  const provider = trace.getTracerProvider() as { getDelegate?: () => object };
  const delegate = provider.getDelegate?.() ?? provider;
  return delegate.constructor.name !== 'NoopTracerProvider';
}

/** Logs at most one message per `interval`, saying how many were suppressed in between. */
function throttle(logger: Logger, interval: number): (message: string) => void {
  let last = 0;
  let suppressed = 0;
  return (message) => {
    const now = Date.now();
    if (now - last < interval) {
      suppressed += 1;
      return;
    }
    logger.warn(suppressed ? `${message} (${suppressed} similar messages suppressed)` : message);
    last = now;
    suppressed = 0;
  };
}

/**
 * The trace SDK and its exporters are optional peer dependencies: an app that only routes does not install
 * them. setupTelemetry() says what to install when they are missing.
 */
const SDK_INSTALL =
  'npm install @opentelemetry/sdk-trace@^2.12.0 @opentelemetry/context-async-hooks@^2.12.0 @opentelemetry/resources@^2.12.0 @opentelemetry/exporter-trace-otlp-proto@^0.223.1 @opentelemetry/exporter-trace-otlp-http@^0.223.0';

type SdkModule =
  | '@opentelemetry/sdk-trace'
  | '@opentelemetry/context-async-hooks'
  | '@opentelemetry/resources'
  | '@opentelemetry/exporter-trace-otlp-proto'
  | '@opentelemetry/exporter-trace-otlp-http';

function sdkModule<K extends SdkModule>(id: K): ReturnType<typeof load<K>> {
  return loadOr(id, `setupTelemetry() needs the OpenTelemetry trace SDK, an optional peer dependency that is not installed (${id} is missing). Install it with:\n  ${SDK_INSTALL}\n(trace() alone works without it, with an SDK your app sets up itself.)`);
}

function propagatorModule<K extends '@opentelemetry/propagator-b3' | '@opentelemetry/propagator-jaeger'>(id: K, name: string): ReturnType<typeof load<K>> {
  return loadOr(id, `OTEL_PROPAGATORS names "${name}", whose propagator is not installed (${id} is missing). Install it with:\n  npm install ${id}@^2.12.0`);
}

function loadOr<K extends Parameters<typeof load>[0]>(id: K, message: string): ReturnType<typeof load<K>> {
  try {
    return load(id);
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code !== 'MODULE_NOT_FOUND' || !String((err as Error).message).includes(id)) throw err;
    throw new ConfigError(message);
  }
}
