/**
 * Request bodies that a body parser (express.json(), urlencoded(), text(), raw()) already consumed
 * are re-serialised so the upstream still receives them, with a correct Content-Length.
 */
import type { IncomingMessage } from 'node:http';
import { stringify } from 'node:querystring';
import { GatewayError } from './errors';

/**
 * Returns the bytes to forward when the request stream was already read by a body parser, or
 * undefined when the stream is untouched (then it is piped as is, never buffered).
 */
export function consumedBody(req: IncomingMessage): Buffer | undefined {
  // A parser that read the stream leaves it ended; one that skipped the request leaves it untouched.
  if (!req.readableEnded) return undefined;
  const body = (req as { body?: unknown }).body;
  const hadBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (!hadBody) return undefined;
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  const type = String(req.headers['content-type'] ?? '').toLowerCase();
  if (body !== undefined && (type.includes('/json') || type.includes('+json'))) return Buffer.from(serialiseJson(body));
  if (body !== null && typeof body === 'object' && type.includes('application/x-www-form-urlencoded')) {
    return Buffer.from(stringify(body as Record<string, string>));
  }
  throw new GatewayError(500, 'ERR_BODY_NOT_FORWARDABLE', {
    detail: 'The request body was consumed before the gateway and cannot be forwarded.',
    cause: new Error(`A middleware mounted before the proxy read the ${type || 'untyped'} request body. Mount frontdoor before it, or use express.json()/urlencoded()/text()/raw().`),
  });
}

/** A parsed JSON body nested too deeply to serialise again (JSON.stringify recurses) is the client's fault: 400. */
function serialiseJson(body: unknown): string {
  try {
    return JSON.stringify(body);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new GatewayError(400, 'ERR_BAD_REQUEST_BODY', { detail: 'The JSON body is nested too deeply.', cause: err });
  }
}
