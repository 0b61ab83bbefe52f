/**
 * bodyLimit(): the largest request body a route accepts. A declared Content-Length over the limit is a 413
 * before anything is read or forwarded; a chunked body is counted as it streams (never buffered), and the
 * chunk that passes the limit ends the exchange: the upstream's request is aborted, so it never gets a
 * complete body, and the client gets the 413. After a 413 the connection closes, but only once the client had
 * time to read it: the rest of the body is read and dropped for a bounded while (see LINGER).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ByteSize } from '../lib/byte-size';
import { parseByteSize } from '../lib/byte-size';
import { ConfigError, GatewayError } from '../lib/errors';
import type { ErrorMode, FeatureDescriptor, Middleware } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { abortUpstream } from '../lib/upstream-client';
import { respondOrNext, sendProblem } from '../lib/problem';
import { consumedBody } from '../lib/request-body';
import { byteSize, defineSchema, errorMode, parseOptions } from '../lib/schema';

export interface BodyLimitSettings {
  /** The largest body accepted, in bytes or as a string: `'1mb'`, `'512kb'`. Required. */
  max: ByteSize;
  /**
   * Answer a refused body as problem+json (`'respond'`, the default) or hand the error to `next(err)`. A chunked
   * body that passes the limit once the request went on to the proxy is answered through the proxy's `onError`;
   * in front of other handlers it is answered as problem+json, since they already have the request.
   */
  onError?: ErrorMode;
}

/**
 * A size (`'1mb'`, `1048576`), or `{ max, onError }`. In a route, `false` turns the gateway's default
 * `bodyLimit` off for that route.
 */
export type BodyLimitOptions = ByteSize | BodyLimitSettings | false;

const settingsSchema = defineSchema((z) =>
  z.strictObject({ max: byteSize(z), onError: errorMode(z).default('respond') }, { error: `must be a size like '1mb', or an object like { max: '1mb' }.` }),
);

/** The whole option as a config file may write it (`'1mb'`, `{ max: '1mb' }`, `false`); bodyLimit() checks it by hand for clearer messages. */
export const bodyLimitSchema = defineSchema((z) => z.union([z.literal(false), byteSize(z), settingsSchema()]));

/**
 * How long, and how much, the rest of a refused body is read and dropped after the 413 before the connection
 * closes (whichever comes first; the client closing its side, or its body ending, ends it sooner). RFC 9112
 * §9.6: a server that closes right after its answer, with the client's body still arriving, makes its TCP stack
 * answer those bytes with a reset, and a client still writing its body then gets EPIPE/ECONNRESET instead of
 * the 413 it had not read yet. Bounded: a client streaming forever does not keep the socket.
 */
export const LINGER = { ms: 1_000, bytes: 4 * 1024 * 1024, /** how often the byte count is looked at */ checkMs: 50 } as const;

/** Refusals carry `Connection: close`: the rest of the body is not forwarded, so the connection cannot be reused. */
function tooLarge(max: number): GatewayError {
  return new GatewayError('ERR_BODY_TOO_LARGE', { detail: `The request body is larger than ${max} bytes.`, headers: { Connection: 'close' } });
}

/** Refuses `req`'s body: answers the 413 (or hands it on), then lets the connection linger once the answer is out. */
function refuse(onError: ErrorMode, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void, max: number): void {
  lingerAfterAnswer(req, res);
  respondOrNext(onError, req, res, next, tooLarge(max));
}

/**
 * Once the answer is written: when Node is closing the connection (`Connection: close`) with the body not read
 * to its end, it would destroy the socket as soon as the answer is flushed. Instead the write side alone is
 * closed (Node already did that), the rest of the body is read and dropped, and the socket is destroyed when the
 * body ends, the client closes, or LINGER runs out (the byte bound is checked every LINGER.checkMs, so it is
 * passed by what a client sends in that time). Node's pending destroy is the 'finish' listener its
 * `destroySoon()` adds; if a Node version closes differently, removing it is a no-op and the socket closes as before.
 */
function lingerAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    const socket = req.socket;
    if (req.complete || socket.destroyed || !socket.writableEnded) return;
    socket.removeListener('finish', socket.destroy);
    // Counted on the socket: Node drops a dumped body in its parser, without 'data' events.
    const readBefore = socket.bytesRead;
    const done = () => {
      clearTimeout(timer);
      clearInterval(meter);
      req.off('end', done);
      socket.off('end', done);
      socket.off('close', done);
      if (socket.destroyed) return;
      if (socket.writableFinished) socket.destroy();
      else socket.once('finish', () => socket.destroy());
    };
    const timer = setTimeout(done, LINGER.ms);
    const meter = setInterval(() => {
      if (socket.bytesRead - readBefore >= LINGER.bytes) done();
    }, LINGER.checkMs);
    timer.unref();
    meter.unref();
    req.once('end', done);
    socket.once('end', done);
    socket.once('close', done);
    req.resume();
  });
}

/**
 * @example
 * app.use('/api/uploads', bodyLimit('10mb'), proxy({ target: 'http://127.0.0.1:4001' }));
 * app.use('/api/orders', bodyLimit({ max: '64kb' }), proxy({ target: 'http://127.0.0.1:4002' }));
 */
export function bodyLimit(options: BodyLimitOptions, optionPrefix = ''): Middleware {
  if (options === false) return function noBodyLimit(_req, _res, next) {
    next();
  };
  const name = optionPrefix ? optionPrefix.slice(0, -1) : 'bodyLimit';
  const settings = options !== null && typeof options === 'object' ? parseOptions(settingsSchema(), options, optionPrefix) : { max: parseByteSize(options, name), onError: 'respond' as const };
  const { max, onError } = settings;

  return function bodyLimitMiddleware(req, res, next) {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > max) return refuse(onError, req, res, next, max);
    if (req.readableEnded) {
      // A body parser before us read it: its size is known.
      let size = 0;
      try {
        size = consumedBody(req)?.bytes.length ?? 0;
      } catch {
        // Not forwardable: the proxy says so; the size is not this middleware's business then.
      }
      if (size > max) return respondOrNext(onError, req, res, next, tooLarge(max));
    } else if (req.headers['transfer-encoding'] !== undefined) {
      // Without Content-Length the size is known only by counting (with one, Node's parser holds the body to it).
      countAsItStreams(req, res, max);
    }
    next();
  };
}

/**
 * Counts the body's bytes once something reads it, without reading it ourselves (a 'data' listener added now
 * would start the flow before the proxy is connected, and the bytes would be lost). The counter goes on just
 * before the first reader's listener, so it sees each chunk first.
 */
function countAsItStreams(req: IncomingMessage, res: ServerResponse, max: number): void {
  let size = 0;
  const stop = () => {
    req.off('newListener', arm);
    req.off('data', count);
  };
  const count = (chunk: Buffer) => {
    size += chunk.length;
    if (size <= max) return;
    stop();
    const err = tooLarge(max);
    lingerAfterAnswer(req, res);
    // Streaming to an upstream: the upstream client aborts that request and answers through its error path.
    if (abortUpstream(req, err)) return;
    // Another reader (the app's own handlers): it hears no more of the body, not even its end (it would answer
    // a request already answered), and the 413 is sent here.
    req.unpipe();
    for (const event of ['data', 'readable', 'end'] as const) req.removeAllListeners(event);
    req.pause();
    sendProblem(req, res, err);
  };
  function arm(event: string | symbol): void {
    if (event !== 'data' && event !== 'readable') return;
    req.off('newListener', arm);
    req.on('data', count);
  }
  if (req.readableFlowing) req.on('data', count);
  else req.on('newListener', arm);
  res.once('close', stop);
}

/**
 * The route option `bodyLimit`, and the gateway option of the same name: the default of every route without
 * its own (`false` in a route turns it off there). In admit, before authentication: a huge body is refused
 * before anything else runs.
 */
export const bodyLimitFeature: FeatureDescriptor = {
  option: 'bodyLimit',
  gatewayOptions: ['bodyLimit'],
  phase: 'admit',
  schemas: defineSchema(() => ({ option: bodyLimitSchema(), gateway: { bodyLimit: bodyLimitSchema() } })),
  upgrade: { apply: false, reason: 'A WebSocket handshake has no request body; what follows it is frames of the upstream protocol, not an HTTP body.' },
  prepare(gateway) {
    // The gateway's default is checked once here, with its own name, rather than once per route inheriting it.
    if (gateway.bodyLimit !== undefined) bodyLimit(inRoute(gateway.bodyLimit, 'bodyLimit'), 'bodyLimit.');
  },
  build(value, scope) {
    if (scope.route.bodyLimit === undefined) {
      try {
        return { handler: bodyLimit(inRoute(value, 'bodyLimit'), 'bodyLimit.') };
      } catch (err) {
        if (err instanceof ConfigError) return {}; // reported by prepare()
        throw err;
      }
    }
    return { handler: bodyLimit(inRoute(value, `${scope.optionPrefix}bodyLimit`), `${scope.optionPrefix}bodyLimit.`) };
  },
};

/** A route's (or the gateway's) value as settings, with the gateway answering errors. */
function inRoute(value: unknown, option: string): BodyLimitOptions {
  if (value === false) return false;
  if (value === null || typeof value !== 'object') return { max: parseByteSize(value, option), onError: 'next' };
  return withGatewayErrors(value as BodyLimitSettings, option);
}
