/**
 * transformBody(): JSON body shaping on the way to the upstream and back, with a function of the body or the
 * declarative helpers `pick`, `omit`, `rename` and `set` over dot paths (lib/json-paths.ts), usable from a
 * config file. Only JSON bodies (application/json, *+json) are read, up to a limit; everything else passes
 * through untouched and streamed. The rewritten request body goes into the upstream plan; the answer is a
 * buffering response filter that fails closed: an answer it cannot transform is a 502, never the upstream's
 * untransformed fields.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { ByteSize } from '../lib/byte-size';
import { getConsumer } from '../lib/consumer';
import type { Consumer } from '../lib/consumer';
import { getContext, upstreamPlan } from '../lib/context';
import { ConfigError, GatewayError } from '../lib/errors';
import type { GatewayErrorCode } from '../lib/errors';
import { omitPath, parsePath, pickPaths, renamePath, setPath, wildcards } from '../lib/json-paths';
import type { JsonPath } from '../lib/json-paths';
import type { ErrorMode, FeatureDescriptor, Middleware } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { respondOrNext } from '../lib/problem';
import { readBody } from '../lib/request-body';
import { addResponseFilter } from '../lib/response-filters';
import type { FilteredResponse, ResponseFilter } from '../lib/response-filters';
import { byteSize, defineSchema, errorMode, parseOptions } from '../lib/schema';
import type { Z } from '../lib/schema';

/** What a body function gets besides the body. */
export interface TransformContext {
  /** The request as the client sent it (method, url, headers): read it, do not change it. */
  req: IncomingMessage;
  /** The consumer authenticated on the route (the route's `auth` ran first), or undefined. */
  consumer: Consumer | undefined;
  /** The request id (X-Request-Id). */
  requestId: string;
  /** The gateway route's name; undefined when the middleware is used alone. */
  route: string | undefined;
  /** The matched route's `:name` segments (`/users/:id` → `{ id: '7' }`); empty without any. */
  params: Readonly<Record<string, string>>;
  /** Response functions only: the upstream's status and headers (as the client will get them). */
  response?: { readonly status: number; readonly headers: Readonly<IncomingHttpHeaders> };
}

/**
 * Returns the body to send (or a Promise of it). Returning `undefined` sends the body it was given, so a
 * function may change it in place. Throwing a GatewayError answers with it; any other throw is a failure of
 * the gateway: 500 on requests, 502 ERR_TRANSFORM_FAILED on answers, with the cause logged.
 */
export type BodyFunction = (body: unknown, ctx: TransformContext) => unknown;

/** Declarative shaping, applied in this order: pick, omit, rename, set. Paths: `a.b`, `items[0].sku`, `items[*].sku`. */
export interface JsonShaping {
  /** Keep only these paths: `['id', 'items[*].sku']`. */
  pick?: string[];
  /** Remove these paths: `['internal.cost', 'items[*].supplierId']`. */
  omit?: string[];
  /** Move values: `{ 'customer.id': 'customerId', 'items[*].sku': 'items[*].code' }` (as many `[*]` on both sides). */
  rename?: Record<string, string>;
  /** Set values (any JSON), creating objects on the way: `{ 'meta.source': 'gateway' }`. */
  set?: Record<string, unknown>;
}

export interface TransformBodyOptions {
  /** Shapes the JSON body the upstream gets. Defaults to none. */
  request?: BodyFunction | JsonShaping;
  /** Shapes the JSON body of the upstream's 2xx answers (other statuses pass as sent). Defaults to none. */
  response?: BodyFunction | JsonShaping;
  /**
   * The largest body read, each way: `'1mb'`, `'256kb'`, or bytes. Defaults to `'1mb'`. A request over it is a
   * 413; an answer over it is a 502 (it cannot be transformed, and is never passed on untransformed).
   */
  limit?: ByteSize;
  /** Answer failures as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

const DEFAULT_LIMIT = 1024 * 1024;

function direction(z: Z) {
  const shaping = z.strictObject({
    pick: z.array(z.string()).optional(),
    omit: z.array(z.string()).optional(),
    rename: z.record(z.string(), z.string()).optional(),
    set: z.record(z.string(), z.unknown().refine(isJsonValue, { error: 'must be a JSON value: a string, number, boolean, null, array or object' })).optional(),
  });
  // The object first: a mistake inside { pick, … } is reported there rather than as "not a function".
  const transform = z.custom<BodyFunction>((value) => typeof value === 'function', { error: 'must be a function (body, ctx) => body, or { pick, omit, rename, set }.', abort: true });
  return z.union([shaping, transform]).optional();
}

export const transformBodySchema = defineSchema((z) =>
  z.strictObject(
    {
      request: direction(z),
      response: direction(z),
      limit: byteSize(z).refine((bytes) => bytes > 0, { error: 'must be more than 0 bytes' }).default(DEFAULT_LIMIT),
      onError: errorMode(z).default('respond'),
    },
    { error: 'must be an object like { request: (body, ctx) => body, response: { omit: [ … ] } }.' },
  ),
);

/** What JSON can carry (a value for `set`): no functions, undefined, NaN, dates or class instances. */
function isJsonValue(value: unknown): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isJsonValue);
  if (typeof value !== 'object' || ![Object.prototype, null].includes(Object.getPrototypeOf(value))) return false;
  return Object.values(value as object).every(isJsonValue);
}

type Transform = (body: unknown, ctx: TransformContext) => Promise<unknown>;

/**
 * @example
 * app.use('/api/orders', transformBody({
 *   request: (body, ctx) => ({ ...body, placedBy: ctx.consumer?.id }),
 *   response: { omit: ['internal.cost', 'items[*].supplierId'] },
 * }), proxy({ target: 'http://127.0.0.1:4001' }));
 */
export function transformBody(options: TransformBodyOptions, optionPrefix = ''): Middleware {
  const config = parseOptions(transformBodySchema(), options, optionPrefix);
  if (!config.request && !config.response) throw new ConfigError(`"${optionPrefix}request" or "${optionPrefix}response" is needed: transformBody() without either does nothing.`);
  const request = config.request && compile(config.request as BodyFunction | JsonShaping, `${optionPrefix}request`);
  const response = config.response && compile(config.response as BodyFunction | JsonShaping, `${optionPrefix}response`);
  const { limit, onError } = config;
  const filter = response && responseFilter(response, limit);

  return function transformBodyMiddleware(req, res, next) {
    // The answer is transformed whatever the request carried (a GET's answer too).
    if (filter) addResponseFilter(req, filter);
    if (!request || !isJson(req.headers['content-type']) || !mayHaveBody(req)) return next();
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      return respondOrNext(onError, req, res, next, new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE', { detail: `A ${encoding}-encoded JSON body cannot be transformed; send it uncompressed.` }));
    }
    readBody(req, limit)
      .then(async (bytes) => {
        if (bytes.length === 0) return; // nothing to shape
        const body = parseJson(bytes, 'ERR_BAD_REQUEST_BODY', 'The request body is not valid JSON.');
        let shaped: unknown;
        try {
          shaped = await request(body, contextOf(req));
        } catch (err) {
          throw err instanceof GatewayError ? err : new GatewayError('ERR_INTERNAL', { detail: 'The request body could not be transformed.', cause: err });
        }
        upstreamPlan(getContext(req, res)).body = serialise(shaped, () => new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'The transformed request body cannot be written as JSON.' }));
      })
      .then(
        () => next(),
        (err: unknown) => respondOrNext(onError, req, res, next, err),
      );
  };
}

/** The answer's filter: only 2xx JSON answers are buffered and transformed; the rest stream through untouched. */
function responseFilter(transform: Transform, limit: number): ResponseFilter {
  return {
    buffer: {
      maxBytes: limit,
      oversize: 'fail',
      when: (answer) => answer.status >= 200 && answer.status < 300 && answer.status !== 206 && isJson(answer.headers['content-type']),
      async body(bytes, answer, req) {
        const decoded = decode(bytes, answer, limit);
        if (decoded.length === 0) return decoded;
        const body = parseJson(decoded, 'ERR_UPSTREAM_BAD_RESPONSE', 'The upstream answered with invalid JSON.');
        let shaped: unknown;
        try {
          shaped = await transform(body, { ...contextOf(req), response: { status: answer.status, headers: answer.headers } });
        } catch (err) {
          throw err instanceof GatewayError ? err : new GatewayError('ERR_TRANSFORM_FAILED', { detail: "The upstream's answer could not be transformed.", cause: err, logCause: true });
        }
        const out = serialise(shaped, (cause) => new GatewayError('ERR_TRANSFORM_FAILED', { detail: "The transformed answer cannot be written as JSON.", cause, logCause: true }));
        // The body is new: validators and digests of the upstream's no longer describe it.
        for (const name of ['content-encoding', 'etag', 'content-md5', 'digest', 'content-digest', 'repr-digest']) delete answer.headers[name];
        return out;
      },
    },
  };
}

/** A function or declarative shaping, as one async transform. */
function compile(spec: BodyFunction | JsonShaping, option: string): Transform {
  if (typeof spec === 'function') {
    return async (body, ctx) => {
      const result = await spec(body, ctx);
      return result === undefined ? body : result;
    };
  }
  const path = (text: string, where: string): JsonPath => {
    try {
      return parsePath(text);
    } catch (err) {
      throw new ConfigError(`"${option}.${where}" is not a valid path (${(err as Error).message}). Paths look like 'a.b', 'items[0].sku' or 'items[*].sku'.`);
    }
  };
  const pick = spec.pick?.map((text, index) => path(text, `pick[${index}]`));
  const omit = (spec.omit ?? []).map((text, index) => path(text, `omit[${index}]`));
  const rename = Object.entries(spec.rename ?? {}).map(([from, to]) => {
    const pair = [path(from, `rename[${JSON.stringify(from)}]`), path(to, `rename[${JSON.stringify(from)}]`)] as const;
    if (wildcards(pair[0]) !== wildcards(pair[1])) throw new ConfigError(`"${option}.rename[${JSON.stringify(from)}]" renames to ${JSON.stringify(to)}: both paths need as many [*].`);
    return pair;
  });
  const set = Object.entries(spec.set ?? {}).map(([target, value]) => [path(target, `set[${JSON.stringify(target)}]`), value] as const);
  return async (body) => {
    const shaped = pick ? pickPaths(body, pick) : body;
    for (const target of omit) omitPath(shaped, target);
    for (const [from, to] of rename) renamePath(shaped, from, to);
    for (const [target, value] of set) setPath(shaped, target, value);
    return shaped;
  };
}

function contextOf(req: IncomingMessage): TransformContext {
  const context = getContext(req);
  return { req, consumer: getConsumer(req), requestId: context.requestId, route: context.route, params: context.params ?? {} };
}

/** application/json and the structured `+json` types (application/vnd.api+json, application/problem+json…). */
function isJson(type: string | string[] | undefined): boolean {
  const value = (Array.isArray(type) ? type[0] : type)?.split(';')[0].trim().toLowerCase();
  return value === 'application/json' || (value !== undefined && value.startsWith('application/') && value.endsWith('+json'));
}

function mayHaveBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0 || (req as { body?: unknown }).body !== undefined;
}

/**
 * Parses JSON as UTF-8 (RFC 8259), a leading BOM allowed. A `__proto__` key is dropped: JSON.parse makes it a
 * harmless own property, but a function that copies the body with Object.assign() would set a prototype.
 */
function parseJson(bytes: Buffer, code: GatewayErrorCode, detail: string): unknown {
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  try {
    return text.includes('__proto__') || text.includes('\\u') ? JSON.parse(text, dropProtoKey) : JSON.parse(text);
  } catch (err) {
    throw new GatewayError(code, { detail, cause: err });
  }
}

function dropProtoKey(key: string, value: unknown): unknown {
  return key === '__proto__' ? undefined : value;
}

function serialise(value: unknown, failure: (cause: unknown) => GatewayError): Buffer {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw failure(err); // a cycle, a BigInt, or nesting too deep to write
  }
  // undefined (a function or symbol) has no JSON form: send null rather than an empty body.
  return Buffer.from(text ?? 'null');
}

/** An answer in a content coding is decoded to be read (and sent uncoded), within the limit. */
function decode(bytes: Buffer, answer: FilteredResponse, limit: number): Buffer {
  const coding = String(answer.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (coding === 'identity' || bytes.length === 0) return bytes;
  const decoders: Record<string, (input: Buffer, options: { maxOutputLength: number }) => Buffer> = { gzip: gunzipSync, 'x-gzip': gunzipSync, deflate: inflateSync, br: brotliDecompressSync };
  const decoder = decoders[coding];
  if (!decoder) throw new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: `The upstream's ${coding}-encoded answer cannot be transformed.` });
  try {
    return decoder(bytes, { maxOutputLength: limit });
  } catch (err) {
    throw new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: `The upstream's ${coding}-encoded answer could not be decoded within ${limit} bytes.`, cause: err });
  }
}

/** The route option `transformBody`: in the "shape the request" phase, after auth, so functions see the consumer. */
export const transformBodyFeature: FeatureDescriptor = {
  option: 'transformBody',
  phase: 'shapeRequest',
  schemas: defineSchema(() => ({ option: transformBodySchema() })),
  upgrade: { apply: false, reason: 'A WebSocket handshake has no JSON body to shape, and the frames after it are not HTTP bodies.' },
  build: (value, scope) => ({ handler: transformBody(withGatewayErrors(value as TransformBodyOptions, `${scope.optionPrefix}transformBody`), `${scope.optionPrefix}transformBody.`) }),
};
