/**
 * Assertions for gateway tests that work with any runner (jest, vitest, node:test, mocha): they throw a
 * FrontdoorAssertionError whose message says what was expected and what arrived. Each has a check
 * function that returns the problems instead, which the jest matchers reuse.
 */
import { inspect, isDeepStrictEqual } from 'node:util';
import type { GatewayErrorCode } from '../errors';
import type { ReceivedRequest } from './upstream';

/** Thrown by the kit's assertions. Not named AssertionError on purpose: jest would re-render it as an `assert()` call. */
export class FrontdoorAssertionError extends Error {
  readonly expected: unknown;
  readonly actual: unknown;
  constructor(message: string, expected?: unknown, actual?: unknown) {
    super(message);
    this.name = 'FrontdoorAssertionError';
    this.expected = expected;
    this.actual = actual;
  }
}

/** A response as supertest gives it (parsed `body`, `text`), or any `{ status, headers, body }` (body as text or parsed). */
export interface ResponseLike {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body?: unknown;
  text?: string;
}

export interface ProblemExpectation {
  /** The HTTP status (also checked against the body's `status`). */
  status?: number;
  /** The problem's `code`, e.g. `'ERR_AUTH_MISSING'`. */
  code?: GatewayErrorCode | (string & {});
  /**
   * The body's `requestId`: true requires one equal to the X-Request-Id response header; a string requires that
   * value; false does not look. Defaults to: equal to X-Request-Id when the response has that header.
   */
  requestId?: boolean | string;
  /** The problem's `detail`: exact text or a pattern. */
  detail?: string | RegExp;
}

/** An RFC 9457 problem document as frontdoor writes it. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  requestId?: string;
  [member: string]: unknown;
}

/** The problems with `res` as a problem answer (empty when it is one), and its parsed body. */
export function checkProblem(res: ResponseLike, expected: ProblemExpectation = {}): { failures: string[]; body: ProblemBody | undefined } {
  const failures: string[] = [];
  if (!res || typeof res !== 'object' || typeof res.status !== 'number') return { failures: ['not a response: expected an object with `status` and `headers` (a supertest response, say)'], body: undefined };
  const headers = res.headers ?? {};
  if (expected.status !== undefined && res.status !== expected.status) failures.push(`status: expected ${expected.status}, got ${res.status}`);
  const type = String(headers['content-type'] ?? '');
  if (!type.includes('application/problem+json')) failures.push(`content-type: expected application/problem+json, got ${type ? JSON.stringify(type) : 'none'}`);
  const body = parsedBody(res);
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    failures.push('body: expected a JSON object');
    return { failures, body: undefined };
  }
  const problem = body as ProblemBody;
  if (problem.status !== res.status) failures.push(`body.status: expected ${res.status} (the response's status), got ${inspect(problem.status)}`);
  if (expected.code !== undefined && problem.code !== expected.code) failures.push(`body.code: expected ${JSON.stringify(expected.code)}, got ${inspect(problem.code)}`);
  if (expected.detail !== undefined && !matches(problem.detail, expected.detail)) failures.push(`body.detail: expected ${show(expected.detail)}, got ${inspect(problem.detail)}`);
  const header = headers['x-request-id'];
  if (typeof expected.requestId === 'string') {
    if (problem.requestId !== expected.requestId) failures.push(`body.requestId: expected ${JSON.stringify(expected.requestId)}, got ${inspect(problem.requestId)}`);
  } else if (expected.requestId === true || (expected.requestId === undefined && header !== undefined)) {
    if (typeof problem.requestId !== 'string' || !problem.requestId) failures.push(`body.requestId: expected the request id${header !== undefined ? ` ${JSON.stringify(header)}` : ''}, got ${inspect(problem.requestId)}`);
    else if (header === undefined) failures.push('x-request-id: expected the response header, got none');
    else if (problem.requestId !== header) failures.push(`body.requestId: expected ${JSON.stringify(header)} (the X-Request-Id header), got ${JSON.stringify(problem.requestId)}`);
  }
  return { failures, body: problem };
}

/**
 * Asserts that `res` is an RFC 9457 problem answer (`application/problem+json`, body `status` equal to the
 * response's) with the given status and code, and the request id of the X-Request-Id header; returns the body.
 *
 * @example
 * isProblem(await request(app).post('/api/orders'), { status: 401, code: 'ERR_AUTH_MISSING' });
 */
export function isProblem(res: ResponseLike, expected: ProblemExpectation = {}): ProblemBody {
  const { failures, body } = checkProblem(res, expected);
  if (failures.length) {
    throw new FrontdoorAssertionError(`isProblem: the response is not the expected problem answer.\n${bullets(failures)}\nResponse: ${describeResponse(res)}`, expected, body);
  }
  return body as ProblemBody;
}

/** Anything that records requests: the kit's upstreams. */
export interface RecordingUpstream {
  readonly requests: readonly ReceivedRequest[];
  readonly url?: string;
}

/** What a forwarded request must look like; every field given must match. */
export interface ForwardedExpectation {
  /** Case-insensitive. */
  method?: string;
  /** The path as the upstream received it: a string is compared with the path (with the query too when it has a `?`), a RegExp is tested against path and query. */
  path?: string | RegExp;
  /** Header values (names in any case): a string or pattern the value must match, true for "present", false or null for "absent". */
  headers?: Record<string, string | RegExp | boolean | null>;
  /** The body: text (exact), a pattern, or a value its JSON must deep-equal. */
  body?: string | RegExp | Record<string, unknown> | unknown[];
  /** How many requests must match. Defaults to at least one. */
  times?: number;
}

/** Why `req` does not match (empty when it does). */
export function requestMismatches(req: ReceivedRequest, expected: ForwardedExpectation): string[] {
  const out: string[] = [];
  if (expected.method !== undefined && req.method.toUpperCase() !== expected.method.toUpperCase()) out.push(`method: expected ${expected.method.toUpperCase()}, got ${req.method}`);
  if (expected.path !== undefined) {
    const pathOk = typeof expected.path === 'string' ? (expected.path.includes('?') ? req.url : req.path) === expected.path : expected.path.test(req.url);
    if (!pathOk) out.push(`path: expected ${show(expected.path)}, got ${JSON.stringify(req.url)}`);
  }
  for (const [name, want] of Object.entries(expected.headers ?? {})) {
    const got = req.headers[name.toLowerCase()];
    const value = Array.isArray(got) ? got.join(', ') : got;
    if (want === true) {
      if (value === undefined) out.push(`header ${name}: expected present, got none`);
    } else if (want === false || want === null) {
      if (value !== undefined) out.push(`header ${name}: expected absent, got ${JSON.stringify(value)}`);
    } else if (value === undefined || !matches(value, want)) {
      out.push(`header ${name}: expected ${show(want)}, got ${value === undefined ? 'none' : JSON.stringify(value)}`);
    }
  }
  if (expected.body !== undefined) {
    const text = req.body.toString('utf8');
    if (typeof expected.body === 'string' || expected.body instanceof RegExp) {
      if (!matches(text, expected.body)) out.push(`body: expected ${show(expected.body)}, got ${preview(text)}`);
    } else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (!isDeepStrictEqual(parsed, expected.body)) out.push(`body: expected JSON ${inspect(expected.body, { depth: 4, breakLength: Infinity })}, got ${preview(text)}`);
    }
  }
  return out;
}

/** The failure message for expectForwarded (undefined when it holds) and the matching requests. */
export function checkForwarded(upstream: RecordingUpstream, expected: ForwardedExpectation = {}): { failure: string | undefined; matching: ReceivedRequest[] } {
  const requests = upstream?.requests;
  if (!Array.isArray(requests)) return { failure: 'expectForwarded: the first argument must be an upstream from startUpstream() (it has no `requests`).', matching: [] };
  const matching = requests.filter((req) => requestMismatches(req, expected).length === 0);
  const enough = expected.times === undefined ? matching.length > 0 : matching.length === expected.times;
  if (enough) return { failure: undefined, matching };
  const wanted = expected.times === undefined ? 'no request' : `${matching.length} request${matching.length === 1 ? '' : 's'} (expected ${expected.times})`;
  return { failure: `expectForwarded: ${wanted} received by ${upstream.url ?? 'the upstream'} matched ${describeExpectation(expected)}.\n${describeRequests(requests, expected)}`, matching };
}

/**
 * Asserts that the upstream received a request matching `expected` (exactly `times` of them when given);
 * returns the last one that matched. The failure lists what the upstream did receive and what differs.
 *
 * @example
 * expectForwarded(orders, { method: 'POST', path: '/api/orders', headers: { 'x-consumer-id': 'alice', authorization: false } });
 */
export function expectForwarded(upstream: RecordingUpstream, expected: ForwardedExpectation = {}): ReceivedRequest {
  const { failure, matching } = checkForwarded(upstream, expected);
  if (failure) throw new FrontdoorAssertionError(failure, expected, summary(upstream));
  return matching[matching.length - 1];
}

/**
 * Asserts that no request matching `expected` reached the upstream (with no expectation: no request at all),
 * e.g. after a 401 the service saw nothing.
 */
export function expectNotForwarded(upstream: RecordingUpstream, expected: Omit<ForwardedExpectation, 'times'> = {}): void {
  const { failure } = checkForwarded(upstream, { ...expected, times: 0 });
  if (failure) throw new FrontdoorAssertionError(failure.replace(/^expectForwarded/, 'expectNotForwarded'), expected, summary(upstream));
}

/** What a failure reports as `actual`: the requests as `METHOD url` lines (runners print `actual` in full). */
function summary(upstream: RecordingUpstream): string[] | undefined {
  return Array.isArray(upstream?.requests) ? upstream.requests.map((req) => `${req.method} ${req.url}`) : undefined;
}

function parsedBody(res: ResponseLike): unknown {
  const body = res.body;
  const emptyObject = body && typeof body === 'object' && !Buffer.isBuffer(body) && Object.keys(body).length === 0;
  // supertest leaves `body` as {} for types it does not parse; the text is then in `text`.
  const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : (body === undefined || emptyObject) && typeof res.text === 'string' ? res.text : undefined;
  if (text === undefined) return body;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function matches(value: string | undefined, want: string | RegExp): boolean {
  if (typeof value !== 'string') return false;
  return typeof want === 'string' ? value === want : want.test(value);
}

function show(value: string | RegExp): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function preview(text: string): string {
  return text.length === 0 ? 'an empty body' : JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

function bullets(lines: string[]): string {
  return lines.map((line) => `  - ${line}`).join('\n');
}

function describeResponse(res: ResponseLike): string {
  if (!res || typeof res !== 'object') return inspect(res);
  const type = res.headers?.['content-type'];
  const body = parsedBody(res);
  const text = typeof body === 'string' ? body : body === undefined ? res.text ?? '' : JSON.stringify(body);
  return `${res.status} ${type ?? '(no content-type)'}\n  ${text.length > 500 ? `${text.slice(0, 500)}…` : text || '(empty body)'}`;
}

function describeExpectation(expected: ForwardedExpectation): string {
  const { times: _times, ...rest } = expected;
  return Object.keys(rest).length ? inspect(rest, { depth: 4, breakLength: Infinity }) : 'any request';
}

/** The requests received, each with what differs from the expectation (the last 10 when there are more). */
function describeRequests(requests: readonly ReceivedRequest[], expected: ForwardedExpectation): string {
  if (requests.length === 0) return 'It received no requests.';
  const shown = requests.slice(-10);
  const skipped = requests.length - shown.length;
  const lines = shown.map((req, index) => {
    const why = requestMismatches(req, expected);
    const head = `  ${skipped + index + 1}. ${req.method} ${req.url}`;
    return why.length ? `${head}\n${why.map((line) => `       ${line}`).join('\n')}` : `${head}  (matches)`;
  });
  return `It received ${requests.length} request${requests.length === 1 ? '' : 's'}${skipped ? ` (the last 10 shown)` : ''}:\n${lines.join('\n')}`;
}
