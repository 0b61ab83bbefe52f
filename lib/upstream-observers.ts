/**
 * Upstream attempt results, for observers such as metrics(). An observer subscribes on the request's
 * context, so results reach only the observers of that request (no process-wide channel), and a request
 * without observers pays nothing.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestContext } from './context';
import type { UpstreamPool } from './upstream-pool';

export interface UpstreamResult {
  req: IncomingMessage;
  /** The pool the attempt went through (its targets' health is what the health gauge reports). */
  pool: UpstreamPool;
  /** The target's URL without trailing slash. */
  target: string;
  durationMs: number;
  /** The upstream's status, when it answered. */
  status?: number;
  /** Why the attempt failed (`ECONNREFUSED`, `ERR_UPSTREAM_TIMEOUT`…), when it did. */
  errorType?: string;
}

export type UpstreamObserver = (result: UpstreamResult) => void;

/** Subscribes `observer` to the results of this request's upstream attempts (each observer once). */
export function observeUpstream(context: RequestContext, observer: UpstreamObserver): void {
  const observers = (context.upstreamObservers ??= []);
  if (!observers.includes(observer)) observers.push(observer);
}

/** Reports an attempt's result to the request's observers; `result` is only built when there are some. */
export function reportUpstreamResult(context: RequestContext, result: () => UpstreamResult): void {
  const observers = context.upstreamObservers;
  if (!observers) return;
  const value = result();
  for (const observer of observers) observer(value);
}
