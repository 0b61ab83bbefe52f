/**
 * accessLog(): one structured JSON line per request through pino — time, request id, trace id,
 * method, route, path, status, duration, upstream target, consumer id, bytes — with credentials
 * redacted. Pass your own pino logger to log where your app logs.
 */
import type { Logger as PinoLogger } from 'pino';
import { redactCredentials } from '../lib/auth-headers';
import { clientAddress } from '../lib/client-address';
import { getContext, onResponseClose } from '../lib/context';
import { ConfigError } from '../lib/errors';
import { load } from '../lib/load';
import type { GatewayFeatureDescriptor, Middleware } from '../lib/pipeline';
import { defineSchema, parseOptions } from '../lib/schema';

export interface AccessLogOptions {
  /** A pino logger (or child) to write to. Defaults to a new pino logger on stdout. */
  logger?: PinoLogger;
  /** Level of the lines. Defaults to `'info'`. */
  level?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /**
   * Include request headers (`req.headers`), with credentials redacted: `Authorization`, `Cookie`,
   * `Proxy-Authorization`, `X-Api-Key` and every header an authenticate() scheme reads keys from. Defaults to false.
   */
  headers?: boolean;
  /** Include the query string in `path` (it may carry tokens). Defaults to false. */
  query?: boolean;
  /** More fields to redact, as pino paths, e.g. `['req.headers["x-session"]']`. Defaults to none. */
  redact?: string[];
  /**
   * How the default logger (no `logger` given) writes to stdout. `false`: as pino does by default, without
   * blocking — lines that arrive while a write is under way go out together in the next one, and what is
   * still waiting is written before the process exits (a normal exit, `process.exit()`, an uncaught exception,
   * `frontdoor serve`'s shutdown on SIGTERM); a process killed outright (SIGKILL, the OOM killer) loses the
   * lines not yet written: those of the responses that closed while the last write was under way.
   * `true`: one blocking write per line, so every line of a closed response is out even then; on a slow
   * stdout the event loop waits for it. Not allowed with `logger`: set your logger's destination instead.
   * Defaults to false.
   */
  sync?: boolean;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

/** The options of accessLog(). */
export const accessLogSchema = defineSchema((z) =>
  z.strictObject(
    {
      logger: z
        .custom<PinoLogger>((value) => !!value && typeof value === 'object' && typeof (value as PinoLogger).child === 'function' && LEVELS.every((level) => typeof (value as PinoLogger)[level] === 'function'), {
          error: 'must be a pino logger (or a child of one).',
        })
        .optional(),
      level: z.enum(LEVELS, { error: `must be one of ${LEVELS.map((level) => `'${level}'`).join(', ')}.` }).default('info'),
      headers: z.boolean({ error: 'must be true or false' }).default(false),
      query: z.boolean({ error: 'must be true or false' }).default(false),
      redact: z.array(z.string({ error: 'must be a pino path, e.g. \'req.headers["x-session"]\'' }), { error: 'must be a list of pino paths, e.g. [\'req.headers["x-session"]\'].' }).default([]),
      sync: z.boolean({ error: 'must be true or false' }).optional(),
    },
    { error: 'must be an object of accessLog() options, e.g. { logger: pino() }.' },
  ),
);

/**
 * @example
 * app.use(accessLog({ logger: pino({ level: 'info' }) }));
 */
export function accessLog(options: AccessLogOptions = {}, optionPrefix = ''): Middleware {
  const config = parseOptions(accessLogSchema(), options, optionPrefix);
  const { headers: withHeaders, query: withQuery, level } = config;
  // Credential headers are redacted when the headers are copied (the list grows with each authenticate(),
  // which pino's fixed paths could not follow); pino only redacts the caller's own paths.
  const redact = config.redact.length ? { paths: config.redact, censor: '[redacted]' } : undefined;
  if (config.logger && config.sync !== undefined) {
    throw new ConfigError(`"${optionPrefix}sync" applies to the default logger only; with "${optionPrefix}logger", set your logger's destination instead, e.g. pino(pino.destination({ sync: true })).`);
  }
  const logger = config.logger ? (redact ? config.logger.child({}, { redact }) : config.logger) : defaultLogger(config.sync ?? false, redact);

  return function accessLogMiddleware(req, res, next) {
    const context = getContext(req, res);
    // One line per request, by whichever accessLog() comes first.
    if (context.observed?.accessLog) return next();
    (context.observed ??= {}).accessLog = true;
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    // As the client sent them: proxy() rewrites req.headers for the upstream later.
    const headers = withHeaders ? redactCredentials(req.headers) : undefined;
    onResponseClose(context, res, function writeAccessLog() {
      const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
      const q = url.indexOf('?');
      const spanContext = context.span?.spanContext();
      const consumer = (req as { user?: { id?: string } }).user;
      const line: Record<string, unknown> = {
        requestId: context.requestId,
        traceId: spanContext?.traceId,
        ip: clientAddress(req),
        method: req.method,
        route: context.route ?? (req as { route?: { path?: string } }).route?.path,
        path: withQuery || q === -1 ? url : url.slice(0, q),
        status: res.writableFinished ? res.statusCode : undefined,
        aborted: res.writableFinished ? undefined : true,
        durationMs: Math.round((performance.now() - context.startedAt) * 1000) / 1000,
        upstream: context.upstream,
        consumer: consumer?.id,
        error: context.errorCode,
        cache: context.cache,
        cutover: context.cutover,
        fallback: context.fallback,
        bytesIn: Number(req.headers['content-length'] ?? 0) || undefined,
        bytesOut: socket.bytesWritten - bytesBefore,
      };
      if (headers) line.req = { headers };
      logger[level](line, 'request');
    });
    next();
  };
}

/**
 * pino on stdout. pino's own default destination is already asynchronous (a SonicBoom on fd 1 that pino
 * flushes synchronously on exit, or process.stdout when something patched its write()); it is kept as is,
 * and `sync: true` asks for a blocking SonicBoom instead.
 */
function defaultLogger(sync: boolean, redact: { paths: string[]; censor: string } | undefined): PinoLogger {
  const pino = load('pino');
  const options = redact ? { redact } : {};
  return sync ? pino(options, pino.destination({ dest: 1, sync: true })) : pino(options);
}

/** The gateway option `accessLog`: accessLog() options or `true`; one line per routed request. */
export const accessLogFeature: GatewayFeatureDescriptor = {
  option: 'accessLog',
  phase: 'observe',
  schemas: defineSchema((z) => ({ option: z.union([z.boolean(), accessLogSchema()]) })),
  upgrade: { apply: false, reason: 'An upgrade has no HTTP response whose end could be observed; upgrades are not traced, counted or logged yet.' },
  build: (value) => (value ? { handler: accessLog(value === true ? {} : (value as AccessLogOptions), 'accessLog.') } : {}),
};
