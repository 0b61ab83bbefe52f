/**
 * Captures the answer a final handler writes — the proxy, aggregate, the app's own handlers, any of them — by
 * wrapping the response's writeHead, write and end, as apicache does. The answer still streams to the client as
 * it is written; the body is kept aside only while it may be stored, and never beyond `maxBytes`.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { getContext, onResponseClose } from '../context';
import { ownBuffer } from './entry';

export interface CaptureHooks {
  /**
   * The head is about to be written, with the final status and headers (lower-case names, those passed to
   * writeHead included). May change the response's headers. Returns whether the body is worth keeping.
   */
  head(status: number, headers: OutgoingHttpHeaders): boolean;
  /** The answer ended: its body when it was kept whole; undefined when it was too big, or the response closed before it ended. */
  done(body: Buffer | undefined): void;
}

type Chunk = string | Buffer | Uint8Array;

export function captureAnswer(req: IncomingMessage, res: ServerResponse, maxBytes: number, hooks: CaptureHooks): void {
  const original = { writeHead: res.writeHead, write: res.write, end: res.end };
  let headWritten = false;
  let keeping = true;
  let size = 0;
  const chunks: Buffer[] = [];

  const keep = (chunk: unknown, encoding: unknown) => {
    if (!keeping || chunk === undefined || chunk === null || typeof chunk === 'function') return;
    // Chunks are held as written until the answer ends, then copied into one buffer of its own (ownBuffer).
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buffer.length;
    if (size > maxBytes) {
      // Too big to store: it streams through, and nothing of it is kept.
      keeping = false;
      chunks.length = 0;
      return;
    }
    chunks.push(buffer);
  };

  res.writeHead = function capturedWriteHead(this: ServerResponse, statusCode: number, ...rest: unknown[]) {
    if (headWritten) return (original.writeHead as (...args: unknown[]) => ServerResponse).call(this, statusCode, ...rest);
    headWritten = true;
    const reason = typeof rest[0] === 'string' ? rest[0] : undefined;
    const given = typeof rest[0] === 'string' ? rest[1] : rest[0];
    // Headers passed to writeHead are set first, so the hook sees (and may change) the head as it will go out.
    if (given) setAll(this, given);
    keeping = hooks.head(statusCode, this.getHeaders());
    const declared = Number(this.getHeader('content-length'));
    if (declared > maxBytes) keeping = false;
    if (!keeping) chunks.length = 0;
    return reason === undefined ? original.writeHead.call(this, statusCode) : (original.writeHead as (...args: unknown[]) => ServerResponse).call(this, statusCode, reason);
  } as ServerResponse['writeHead'];

  res.write = function capturedWrite(this: ServerResponse, chunk: Chunk, ...rest: unknown[]) {
    const result = (original.write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    keep(chunk, rest[0]);
    return result;
  } as ServerResponse['write'];

  let finished = false;
  const finish = (complete: boolean) => {
    if (finished) return;
    finished = true;
    hooks.done(complete && keeping && headWritten ? ownBuffer(chunks, size) : undefined);
    chunks.length = 0;
  };

  res.end = function capturedEnd(this: ServerResponse, ...args: unknown[]) {
    const result = (original.end as (...args: unknown[]) => ServerResponse).apply(this, args);
    keep(args[0], args[1]);
    // The handler has written the whole answer: it is stored now, not once the client has read it, so the
    // requests waiting for it are served at once. (A handler whose upstream failed mid-body never ends the
    // response: it destroys it, and the answer is dropped below.)
    finish(true);
    return result;
  } as ServerResponse['end'];

  onResponseClose(getContext(req), res, function answerClosed() {
    finish(false);
  });
}

/** Sets headers given to writeHead: an object, or a raw list (`[name, value, name, value]` or pairs). */
function setAll(res: ServerResponse, given: unknown): void {
  if (Array.isArray(given)) {
    const grouped = new Map<string, string[]>();
    const add = (name: unknown, value: unknown) => {
      const key = String(name).toLowerCase();
      grouped.set(key, [...(grouped.get(key) ?? []), ...[value].flat().map(String)]);
    };
    if (Array.isArray(given[0])) for (const [name, value] of given as unknown[][]) add(name, value);
    else for (let i = 0; i + 1 < given.length; i += 2) add(given[i], given[i + 1]);
    for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? values[0] : values);
    return;
  }
  if (typeof given === 'object') {
    for (const [name, value] of Object.entries(given as Record<string, unknown>)) {
      if (value !== undefined) res.setHeader(name, value as string | number | string[]);
    }
  }
}
