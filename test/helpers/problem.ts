/**
 * The RFC 9457 problem answer check the suites share, as the published kit's isProblem()
 * (frontdoor-gateway/testing): status, `application/problem+json`, `status` and `code` in the body, and
 * (unless told otherwise) the body's `requestId` equal to the X-Request-Id header.
 */
import type http from 'node:http';
import { isProblem } from '../../lib/testing/assert';

/** A response from supertest (parsed body), `rawRequest` or `sendRaw` (body as text). */
export interface ProblemResponse {
  status: number;
  headers: http.IncomingHttpHeaders | Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface ExpectProblemOptions {
  /**
   * Check that the body carries a string `requestId` equal to the response's X-Request-Id header. Defaults
   * to true; false for a middleware used alone, where no request id is assigned.
   */
  requestId?: boolean;
}

/** Asserts an RFC 9457 problem answer with the given status and code (parsing a text body); returns the body. */
export function expectProblem(res: ProblemResponse, status: number, code: string, options: ExpectProblemOptions = {}): Record<string, unknown> {
  return isProblem(res, { status, code, requestId: options.requestId ?? true });
}
