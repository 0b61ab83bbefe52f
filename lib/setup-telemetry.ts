/**
 * setupTelemetry(): starts the OpenTelemetry SDK (NodeSDK, OTLP over HTTP by default, configured by the
 * standard OTEL_* variables) for apps that have none — and reuses the app's own when it already set one
 * up. A collector that is down, slow or refusing never crashes or slows the gateway: export is batched
 * and bounded in memory, failures are logged at most once a minute, shutdown never throws.
 */
import { trace } from '@opentelemetry/api';
import { setGlobalErrorHandler } from '@opentelemetry/core';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Duration, parseDuration } from './duration';
import { ConfigError } from './errors';
import { load } from './load';
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
  /** Flushes and stops the SDK started here (a no-op when reused), within `shutdownTimeout`. Never rejects. */
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
  const exporter = options.exporter ?? defaultExporter();

  const { NodeSDK } = sdkModule('@opentelemetry/sdk-node');
  const { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } = sdkModule('@opentelemetry/sdk-trace-base');

  const throttled = throttle(logger, 60_000);
  // Export failures surface through OpenTelemetry's global error handler: report them, never throw.
  setGlobalErrorHandler((err) => throttled(`frontdoor: trace export failed: ${(err as Error)?.message ?? err}`));

  const sdk = new NodeSDK({
    serviceName: options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? 'frontdoor',
    // The same decisions as a ratio sampler at 1 and 0, without hashing every new trace id.
    sampler: new ParentBasedSampler({ root: ratio === 1 ? new AlwaysOnSampler() : ratio === 0 ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(ratio) }),
    spanProcessors: [
      new BatchSpanProcessor(exporter, {
        maxQueueSize,
        maxExportBatchSize: Math.min(512, maxQueueSize),
        scheduledDelayMillis: options.exportInterval === undefined ? 5_000 : parseDuration(options.exportInterval, 'exportInterval'),
        exportTimeoutMillis: 10_000,
      }),
    ],
    instrumentations: [],
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return {
    reused: false,
    shutdown() {
      if (stopped) return stopped;
      const flushed = sdk.shutdown().catch((err: unknown) => throttled(`frontdoor: telemetry shutdown could not flush spans: ${(err as Error)?.message ?? err}`));
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

/**
 * The OTLP/HTTP exporter the standard variables ask for. Endpoint, headers, timeout and compression are read
 * by the exporter itself; the encoding is chosen here. gRPC is not bundled: pass `exporter` for it.
 */
function defaultExporter(): SpanExporter {
  const variable = process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = (process.env[variable] || 'http/protobuf').trim();
  if (protocol === 'http/protobuf') return new (sdkModule('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter)();
  if (protocol === 'http/json') return new (sdkModule('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter)();
  throw new ConfigError(
    `${variable}=${JSON.stringify(protocol)} is not supported by setupTelemetry(): use "http/protobuf" (the default) or "http/json"` +
      (protocol === 'grpc' ? `, or pass exporter: new OTLPTraceExporter() from @opentelemetry/exporter-trace-otlp-grpc.` : '.'),
  );
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
 * The tracing SDK and its exporters are optional peer dependencies: an app that only routes does not install
 * ~180 MB of OpenTelemetry. setupTelemetry() says what to install when they are missing.
 */
const SDK_INSTALL = 'npm install @opentelemetry/sdk-node@^0.223.0 @opentelemetry/sdk-trace-base@^2.12.0 @opentelemetry/exporter-trace-otlp-proto@^0.223.1 @opentelemetry/exporter-trace-otlp-http@^0.223.0';

function sdkModule<K extends '@opentelemetry/sdk-node' | '@opentelemetry/sdk-trace-base' | '@opentelemetry/exporter-trace-otlp-proto' | '@opentelemetry/exporter-trace-otlp-http'>(id: K): ReturnType<typeof load<K>> {
  try {
    return load(id);
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code !== 'MODULE_NOT_FOUND' || !String((err as Error).message).includes(id)) throw err;
    throw new ConfigError(`setupTelemetry() needs the OpenTelemetry SDK, an optional peer dependency that is not installed (${id} is missing). Install it with:\n  ${SDK_INSTALL}\n(trace() alone works without it, with an SDK your app sets up itself.)`);
  }
}

