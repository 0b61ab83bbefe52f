/**
 * Upstream attempt results, for observers such as metrics(): one emitter for every proxy, emitting only
 * when someone listens, so the hot path pays nothing without observers.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';

export interface UpstreamResult {
  req: IncomingMessage;
  /** The target's URL without trailing slash. */
  target: string;
  durationMs: number;
  /** The upstream's status, when it answered. */
  status?: number;
  /** Why the attempt failed (`ECONNREFUSED`, `ERR_UPSTREAM_TIMEOUT`…), when it did. */
  errorType?: string;
}

export const upstreamEvents = new EventEmitter<{ result: [UpstreamResult] }>();
upstreamEvents.setMaxListeners(0);

export function emitUpstreamResult(result: () => UpstreamResult): void {
  if (upstreamEvents.listenerCount('result') > 0) upstreamEvents.emit('result', result());
}
