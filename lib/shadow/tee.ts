/**
 * A copy of the request body for shadow traffic, kept up to a limit while the primary reads it. The copy never
 * reads the stream itself and never changes its flow: it watches the chunks the stream hands to whoever
 * consumes it (the proxy piping it upstream, a body parser in the app), by observing the request's own
 * `emit('data')`. A listener of ours would switch the stream to flowing mode and could lose data for an app that
 * attaches its reader later. Past the limit the copy is dropped at once and nothing more is kept.
 */
import type { IncomingMessage } from 'node:http';
import { getContext } from '../context';
import { consumedBody } from '../request-body';

export type TeeOutcome = { ok: true; body: Buffer | undefined } | { ok: false; reason: 'requestTooLarge' | 'requestUnavailable' };

export interface Tee {
  /** Settles once the body is whole, over the limit, or lost; never rejects. */
  readonly result: Promise<TeeOutcome>;
  /** Gives up waiting (the primary answered and never read the body): settles as unavailable. */
  cancel(): void;
}

const settled = (outcome: TeeOutcome): Tee => ({ result: Promise.resolve(outcome), cancel: () => undefined });

/** Starts copying `req`'s body (what the upstream should get: the route's rewritten body, if any). */
export function teeRequestBody(req: IncomingMessage, maxBytes: number): Tee {
  // A body the route's features rewrote (transformBody, xml) is what the primary upstream gets too.
  const planned = getContext(req).plan?.body;
  if (planned) return settled(planned.length > maxBytes ? { ok: false, reason: 'requestTooLarge' } : { ok: true, body: planned });
  let consumed;
  try {
    consumed = consumedBody(req);
  } catch {
    return settled({ ok: false, reason: 'requestUnavailable' }); // parsed into something that cannot be sent again
  }
  if (consumed) return settled(consumed.bytes.length > maxBytes ? { ok: false, reason: 'requestTooLarge' } : { ok: true, body: consumed.bytes });
  const declared = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (req.readableEnded || (!chunked && (declared === undefined || Number(declared) === 0))) return settled({ ok: true, body: undefined });
  if (Number(declared) > maxBytes) return settled({ ok: false, reason: 'requestTooLarge' });
  return watch(req, maxBytes);
}

function watch(req: IncomingMessage, maxBytes: number): Tee {
  const chunks: Buffer[] = [];
  let size = 0;
  let finish!: (outcome: TeeOutcome) => void;
  const result = new Promise<TeeOutcome>((resolve) => (finish = resolve));
  const original = req.emit;
  let done = false;

  const stop = (outcome: TeeOutcome) => {
    if (done) return;
    done = true;
    chunks.length = 0; // a whole body was copied into the outcome already
    // Put the request's emit back, unless someone wrapped it after us (then ours stays, inert).
    if (req.emit === observed) req.emit = original;
    finish(outcome);
  };

  const observed = function observedEmit(this: IncomingMessage, event: string | symbol, ...args: unknown[]): boolean {
    if (!done) {
      if (event === 'data') {
        const chunk = args[0];
        const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
        size += buffer.length;
        if (size > maxBytes) stop({ ok: false, reason: 'requestTooLarge' });
        else chunks.push(buffer);
      } else if (event === 'end') {
        stop({ ok: true, body: Buffer.concat(chunks, size) });
      } else if (event === 'aborted' || event === 'error' || event === 'close') {
        stop({ ok: false, reason: 'requestUnavailable' });
      }
    }
    return original.call(this, event, ...args);
  } as IncomingMessage['emit'];
  req.emit = observed;

  return { result, cancel: () => stop({ ok: false, reason: 'requestUnavailable' }) };
}
