/**
 * Sends the aggregated answer through the request's response filters, as the proxy does with an upstream's
 * answer: header filters always (the route's `headers` changes), body filters when the body is within their
 * limit (transforms, the cache storing it).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors';
import { bufferLimit, failsOversize, FilteredResponse, responseFiltersOf } from '../response-filters';

/** Writes status, headers and body; rejects with a GatewayError when a filter fails. */
export async function sendAnswer(req: IncomingMessage, res: ServerResponse, status: number, headers: IncomingHttpHeaders, body: Buffer): Promise<void> {
  const filters = responseFiltersOf(req);
  const response: FilteredResponse = { status, headers };
  let final = body;
  if (filters) {
    for (const filter of filters) filter.headers?.(response, req);
    const limit = bufferLimit(filters);
    const bodiless = req.method === 'HEAD' || response.status === 204 || response.status === 304;
    if (limit !== undefined && !bodiless) {
      if (final.length > limit) {
        if (failsOversize(filters)) throw new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: `The aggregated answer is larger than the ${limit} bytes this route can transform.` });
      } else {
        try {
          for (const filter of filters) if (filter.buffer) final = await filter.buffer.body(final, response, req);
        } catch (err) {
          throw err instanceof GatewayError ? err : new GatewayError('ERR_INTERNAL', { detail: 'The response could not be processed.', cause: err });
        }
      }
    }
  }
  if (res.headersSent || res.destroyed) return;
  res.statusCode = response.status;
  for (const [name, value] of Object.entries(response.headers)) if (value !== undefined) res.setHeader(name, value);
  res.setHeader('Content-Length', String(final.length));
  res.end(req.method === 'HEAD' ? undefined : final);
}
