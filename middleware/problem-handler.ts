/**
 * problemHandler(): an error-handling middleware that answers every error as RFC 9457 problem+json:
 * frontdoor's own errors, body-parser rejections (malformed JSON, too large) with their 4xx, and any other
 * error as a generic 500 whose cause is logged, never shown. Mount it last, after middlewares used with
 * `onError: 'next'` and after your routes; an error handler of your own mounted before it still sees
 * errors first.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fromBodyParserError, GatewayError } from '../lib/errors';
import { sendProblem } from '../lib/problem';

export function problemHandler(): (err: unknown, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  return function problemHandlerMiddleware(err, req, res, next) {
    // Express's own handler would render an HTML page; once the response has started only it can end it.
    if (res.headersSent) return next(err);
    sendProblem(req, res, err instanceof GatewayError ? err : fromBodyParserError(err) ?? err);
  };
}
