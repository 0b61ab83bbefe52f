/**
 * Request bodies that a body parser (express.json(), urlencoded(), text(), raw()) already consumed before
 * the proxy. The bytes the client sent are forwarded when they were kept (keepRawBody as the parser's
 * `verify`); otherwise the parsed body is re-serialised, which can change it, and the proxy says so once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { stringify } from 'node:querystring';
import { GatewayError } from './errors';

const RAW_BODY = Symbol.for('frontdoor.rawBody');
type WithRawBody = IncomingMessage & { [RAW_BODY]?: Buffer };

/**
 * Keeps the bytes a body parser read, so the gateway forwards them unchanged: pass it as the parser's
 * `verify` option. Big numbers, decimal amounts, duplicate keys and signed payloads (webhooks) arrive as sent.
 *
 * @example
 * app.use(express.json({ verify: keepRawBody }), express.urlencoded({ extended: false, verify: keepRawBody }));
 */
export function keepRawBody(req: IncomingMessage, _res: ServerResponse, buffer: Buffer): void {
  (req as WithRawBody)[RAW_BODY] = buffer;
}

export interface ConsumedBody {
  bytes: Buffer;
  /** The bytes are a re-serialisation of the parsed body, not what the client sent. */
  reserialised: boolean;
}

/**
 * Returns the bytes to forward when the request stream was already read by a body parser, or
 * undefined when the stream is untouched (then it is piped as is, never buffered).
 */
export function consumedBody(req: IncomingMessage): ConsumedBody | undefined {
  // A parser that read the stream leaves it ended; one that skipped the request leaves it untouched.
  if (!req.readableEnded) return undefined;
  const hadBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (!hadBody) return undefined;
  const raw = (req as WithRawBody)[RAW_BODY];
  if (raw) return { bytes: raw, reserialised: false };
  const body = (req as { body?: unknown }).body;
  if (Buffer.isBuffer(body)) return { bytes: body, reserialised: false };
  if (typeof body === 'string') return { bytes: Buffer.from(body), reserialised: false };
  const type = String(req.headers['content-type'] ?? '').toLowerCase();
  if (body !== undefined && (type.includes('/json') || type.includes('+json'))) return { bytes: Buffer.from(serialiseJson(body)), reserialised: true };
  if (body !== null && typeof body === 'object' && type.includes('application/x-www-form-urlencoded')) {
    return { bytes: Buffer.from(stringify(body as Record<string, string>)), reserialised: true };
  }
  throw new GatewayError('ERR_BODY_NOT_FORWARDABLE', {
    detail: 'The request body was consumed before the gateway and cannot be forwarded.',
    cause: new Error(`A middleware mounted before the proxy read the ${type || 'untyped'} request body. Mount frontdoor before it, or use express.json()/urlencoded()/text()/raw() with { verify: keepRawBody }.`),
  });
}

/** A parsed JSON body nested too deeply to serialise again (JSON.stringify recurses) is the client's fault: 400. */
function serialiseJson(body: unknown): string {
  try {
    return JSON.stringify(body);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'The JSON body is nested too deeply.', cause: err });
  }
}

/**
 * Reads the request body, up to `maxBytes`: the bytes a body parser already consumed (see consumedBody), or
 * the stream. A declared or streamed size over the limit rejects with a 413 GatewayError at once (the rest
 * is not read); a client that aborts rejects with a 400. Only for features that must see the whole body
 * (transforms, the XML bridge): everything else streams.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const tooLarge = () => new GatewayError('ERR_BODY_TOO_LARGE', { detail: `The request body is larger than ${maxBytes} bytes.` });
  let consumed: ConsumedBody | undefined;
  try {
    consumed = consumedBody(req);
  } catch (err) {
    return Promise.reject(err);
  }
  if (consumed) return consumed.bytes.length > maxBytes ? Promise.reject(tooLarge()) : Promise.resolve(consumed.bytes);
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        // Stop reading: the answer is a 413, and the rest of the body is not worth receiving.
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'The request body was not received completely.', cause: err }));
    };
    const onAborted = () => onError(new Error('request aborted'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
