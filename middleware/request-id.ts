/**
 * requestId(): gives every request an id — the client's `X-Request-Id` when short and safe, otherwise a
 * new UUID — returned on the response, forwarded upstream, and present in every problem+json body.
 * proxy() and gateway() do this themselves; mount it first to have the id in your own handlers too.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getContext } from '../lib/context';

/** Creates the request-id middleware. The id is then `getContext(req).requestId`. */
export function requestId(): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  return function requestIdMiddleware(req, res, next) {
    getContext(req, res);
    next();
  };
}
