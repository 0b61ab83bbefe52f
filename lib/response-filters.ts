/**
 * Response filters: what a route's features (or your own middleware) do to the upstream's answer before the
 * client gets it. A filter registers on the request; the proxy streams the answer as usual and lets header
 * filters edit the status and headers on the way. Only when a filter asks for the body does the proxy buffer
 * it, up to the filter's limit: a larger answer streams through unchanged and the body filters are skipped.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { getContext } from './context';
import type { GatewayError } from './errors';

/** The upstream's answer as a filter sees it; filters change it in place. */
export interface FilteredResponse {
  status: number;
  headers: IncomingHttpHeaders;
}

export interface ResponseFilter {
  /**
   * Refuses the answer before any of it reaches the client, by returning the error to fail the request with:
   * the answer is drained (its connection goes back to the pool) and the final handler fails with that error.
   * fallback() uses it to hand a 503 from the new service to the monolith. Runs before `headers`.
   */
  divert?(response: FilteredResponse, req: IncomingMessage): GatewayError | undefined;
  /**
   * True for a 5xx answer that is the service's way to report a business error, not a failure of the target: a
   * SOAP Fault travels as HTTP 500. Such answers do not count against the target's passive health.
   */
  expected?(response: FilteredResponse, req: IncomingMessage): boolean;
  /** Edits the status and headers (hop-by-hop headers are already gone). Runs for every answer, streamed or not. */
  headers?(response: FilteredResponse, req: IncomingMessage): void;
  /**
   * Asks for the whole body, up to `maxBytes`, and returns the body to send instead (the Content-Length is set
   * for it). A body over `maxBytes` streams through unchanged and `body()` is not called.
   */
  buffer?: {
    maxBytes: number;
    /**
     * What to do with an answer over `maxBytes`: `'stream'` it through unchanged (the default: the filter is
     * an optimisation), or `'fail'` with a 502 ERR_UPSTREAM_BAD_RESPONSE, for filters whose change the client
     * relies on (a format conversion, a field that must be removed). Counted on declared and streamed bytes.
     */
    oversize?: 'stream' | 'fail';
    /**
     * Asks for the body of some answers only (a content type the filter converts), once the header filters
     * ran; the others stream through untouched, as if the filter did not buffer. Defaults to every answer.
     */
    when?(response: FilteredResponse, req: IncomingMessage): boolean;
    body(body: Buffer, response: FilteredResponse, req: IncomingMessage): Buffer | Promise<Buffer>;
  };
}

const FILTERS = Symbol.for('frontdoor.responseFilters');
type WithFilters = IncomingMessage & { [FILTERS]?: ResponseFilter[] };

/**
 * Registers a filter on the upstream's answer to this request. Filters run in reverse order of adding, as
 * layers of an onion: the request passed the route's features in phase order, the answer passes them back
 * in reverse, so the last added (closest to the upstream: xml's XML → JSON) runs first, and transformBody,
 * added before it, shapes the JSON it made.
 */
export function addResponseFilter(req: IncomingMessage, filter: ResponseFilter): void {
  getContext(req);
  ((req as WithFilters)[FILTERS] ??= []).unshift(filter);
}

/** The request's filters, if any. */
export function responseFiltersOf(req: IncomingMessage): readonly ResponseFilter[] | undefined {
  return (req as WithFilters)[FILTERS];
}

/** The smallest body limit among the filters that want the body, or undefined when none does. */
export function bufferLimit(filters: readonly ResponseFilter[] | undefined): number | undefined {
  let limit: number | undefined;
  for (const filter of filters ?? []) if (filter.buffer) limit = Math.min(limit ?? Infinity, filter.buffer.maxBytes);
  return limit;
}

/** True when the proxy must handle the answer itself: a filter wants bodies, or may refuse answers. */
export function selfHandled(filters: readonly ResponseFilter[] | undefined): boolean {
  return (filters ?? []).some((filter) => filter.buffer !== undefined || filter.divert !== undefined);
}

/** True when a filter that wants the body must not let an oversized answer through unchanged. */
export function failsOversize(filters: readonly ResponseFilter[] | undefined): boolean {
  return (filters ?? []).some((filter) => filter.buffer?.oversize === 'fail');
}

/** The filters that want this answer's body: those with a `buffer` whose `when` (if any) agrees. */
export function bodyFilters(filters: readonly ResponseFilter[], response: FilteredResponse, req: IncomingMessage): ResponseFilter[] {
  return filters.filter((filter) => filter.buffer !== undefined && (filter.buffer.when?.(response, req) ?? true));
}
