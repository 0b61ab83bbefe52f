/**
 * problemHandler(): an error-handling middleware that answers frontdoor's errors, and body-parser
 * rejections (malformed JSON, too large), as RFC 9457 problem+json. Mount it after middlewares used
 * with `onError: 'next'`, or after express.json() in front of a standalone proxy(). Other errors
 * go on to the app's own error handler.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, fromBodyParserError } from '../lib/errors';
import { sendProblem } from '../lib/problem';

export function problemHandler(): (err: unknown, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  return function problemHandlerMiddleware(err, req, res, next) {
    const error = err instanceof GatewayError ? err : fromBodyParserError(err);
    if (!error) return next(err);
    sendProblem(req, res, error);
  };
}
