/**
 * headers(): sets, appends, removes and renames headers on the way to the upstream and on the way back.
 * Values may be templates over the request: `${consumer.id}`, `${consumer.tier}`, `${requestId}`, `${ip}`,
 * `${route}`, `${env.NAME}`. Request changes go into the upstream plan (the client's request stays as
 * sent); response changes are a response filter, so answers still stream.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIdentityHeader } from '../lib/auth-headers';
import { clientAddress } from '../lib/client-address';
import { getConsumer } from '../lib/consumer';
import { getContext, planChanges } from '../lib/context';
import { ConfigError, GatewayError } from '../lib/errors';
import type { ErrorMode, FeatureDescriptor, Middleware } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { respondOrNext } from '../lib/problem';
import { addResponseFilter } from '../lib/response-filters';
import { defineSchema, errorMode, parseOptions } from '../lib/schema';
import type { Z } from '../lib/schema';

/** Changes to one direction's headers, applied in this order: remove, rename, set, append. */
export interface HeaderChanges {
  /** Headers to set, replacing what is there: `{ 'x-gateway': 'frontdoor', 'x-user': '${consumer.id}' }`. */
  set?: Record<string, string>;
  /** Values to add to a header (comma-joined after what is there). */
  append?: Record<string, string>;
  /** Headers to drop, e.g. `['x-internal-debug']`, or server fingerprints on responses: `['x-powered-by', 'server']`. */
  remove?: string[];
  /** Headers to give another name: `{ 'x-old': 'x-new' }`. */
  rename?: Record<string, string>;
}

export interface HeadersOptions {
  /** Changes to the request the upstream gets. Defaults to none. */
  request?: HeaderChanges;
  /** Changes to the answer the client gets. Defaults to none. */
  response?: HeaderChanges;
  /**
   * Let `request` set, remove or rename the gateway's identity headers (`X-Consumer-Id`, …). Defaults to false:
   * they are the gateway's own, and a change to one is refused at construction.
   */
  allowIdentityOverride?: boolean;
  /** Answer a refused value as problem+json (`'respond'`, the default) or hand it to `next(err)`. */
  onError?: ErrorMode;
}

const NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FORBIDDEN = /[\r\n\0]/;
const TEMPLATE = /\$\{(consumer\.id|consumer\.tier|requestId|ip|route|env\.[A-Za-z_][A-Za-z0-9_]*)\}/g;

function changesShape(z: Z) {
  const name = z.string().regex(NAME, { error: 'must be a header name' });
  const values = z.record(name, z.string({ error: 'must be a string' }));
  return z.strictObject({ set: values.optional(), append: values.optional(), remove: z.array(name).optional(), rename: z.record(name, name).optional() }).optional();
}

export const headersSchema = defineSchema((z) =>
  z.strictObject({ request: changesShape(z), response: changesShape(z), allowIdentityOverride: z.boolean().default(false), onError: errorMode(z).default('respond') }, { error: 'must be an object like { request: { set: { … } }, response: { remove: [ … ] } }.' }),
);

/** A value, compiled: static text, or a function of the request. */
type Value = (req: IncomingMessage) => string;

interface CompiledChanges {
  remove: string[];
  rename: Array<[string, string]>;
  set: Array<[string, Value]>;
  append: Array<[string, Value]>;
}

/**
 * @example
 * app.use('/legacy', headers({ request: { set: { 'x-consumer': '${consumer.id}' } }, response: { remove: ['x-powered-by', 'server'] } }), proxy({ target }));
 */
export function headers(options: HeadersOptions, optionPrefix = ''): Middleware {
  const config = parseOptions(headersSchema(), options, optionPrefix);
  const request = compileChanges(config.request, `${optionPrefix}request`, config.allowIdentityOverride);
  const response = compileChanges(config.response, `${optionPrefix}response`, true);
  const onError = config.onError;

  return function headersMiddleware(req, res, next) {
    const context = getContext(req, res);
    try {
      if (request) {
        const plan = planChanges(context);
        for (const name of request.remove) plan.removeHeaders.add(name);
        for (const [from, to] of request.rename) {
          const value = plan.setHeaders[from] ?? headerText(req.headers[from]);
          plan.removeHeaders.add(from);
          delete plan.setHeaders[from];
          if (value !== undefined) plan.setHeaders[to] = value;
        }
        for (const [name, value] of request.set) plan.setHeaders[name] = checked(value(req), name);
        for (const [name, value] of request.append) {
          const current = plan.setHeaders[name] ?? (plan.removeHeaders.has(name) ? undefined : headerText(req.headers[name]));
          plan.setHeaders[name] = current ? `${current}, ${checked(value(req), name)}` : checked(value(req), name);
        }
      }
      if (response) {
        // Templates are worked out now, while the request is at hand; the filter only edits headers.
        const set = response.set.map(([name, value]) => [name, checked(value(req), name)] as const);
        const append = response.append.map(([name, value]) => [name, checked(value(req), name)] as const);
        addResponseFilter(req, { headers: (answer) => applyToResponse(answer.headers, response, set, append) });
        // Headers the app already set on the response (Express's X-Powered-By) are the client's to lose too.
        for (const name of response.remove) res.removeHeader(name);
      }
    } catch (err) {
      return respondOrNext(onError, req, res, next, err);
    }
    next();
  };
}

function applyToResponse(target: IncomingHttpHeaders, changes: CompiledChanges, set: ReadonlyArray<readonly [string, string]>, append: ReadonlyArray<readonly [string, string]>): void {
  for (const name of changes.remove) delete target[name];
  for (const [from, to] of changes.rename) {
    if (target[from] === undefined) continue;
    target[to] = target[from];
    delete target[from];
  }
  for (const [name, value] of set) target[name] = value;
  for (const [name, value] of append) {
    const current = headerText(target[name]);
    target[name] = current ? `${current}, ${value}` : value;
  }
}

function compileChanges(changes: HeaderChanges | undefined, option: string, identityAllowed: boolean): CompiledChanges | undefined {
  if (!changes) return undefined;
  const lower = (name: string) => name.toLowerCase();
  const compiled: CompiledChanges = {
    remove: (changes.remove ?? []).map(lower),
    rename: Object.entries(changes.rename ?? {}).map(([from, to]) => [lower(from), lower(to)]),
    set: Object.entries(changes.set ?? {}).map(([name, value]) => [lower(name), compileValue(value, `${option}.set.${name}`)]),
    append: Object.entries(changes.append ?? {}).map(([name, value]) => [lower(name), compileValue(value, `${option}.append.${name}`)]),
  };
  if (!identityAllowed) {
    const touched = [...compiled.remove, ...compiled.rename.flat(), ...compiled.set.map(([name]) => name), ...compiled.append.map(([name]) => name)];
    const identity = touched.find(isIdentityHeader);
    if (identity) throw new ConfigError(`"${option}" changes "${identity}", an identity header the gateway sets itself. Set "allowIdentityOverride: true" if that is really meant.`);
  }
  return compiled;
}

function compileValue(value: string, option: string): Value {
  if (!value.includes('${')) {
    if (FORBIDDEN.test(value)) throw new ConfigError(`"${option}" contains CR, LF or NUL, which a header value cannot carry.`);
    return () => value;
  }
  const unknown = value.replace(TEMPLATE, '').match(/\$\{[^}]*\}/);
  if (unknown) throw new ConfigError(`"${option}" uses the unknown template ${unknown[0]}. Known: \${consumer.id}, \${consumer.tier}, \${requestId}, \${ip}, \${route}, \${env.NAME}.`);
  const env = [...value.matchAll(TEMPLATE)].map((match) => match[1]).filter((key) => key.startsWith('env.')).map((key) => key.slice(4));
  const missing = env.find((name) => process.env[name] === undefined);
  if (missing) throw new ConfigError(`"${option}" uses \${env.${missing}}, which is not set.`);
  return (req) =>
    value.replace(TEMPLATE, (_match, key: string) => {
      if (key === 'consumer.id') return getConsumer(req)?.id ?? '';
      if (key === 'consumer.tier') return getConsumer(req)?.tier ?? '';
      if (key === 'requestId') return getContext(req).requestId;
      if (key === 'ip') return clientAddress(req);
      if (key === 'route') return getContext(req).route ?? '';
      return process.env[key.slice(4)] ?? '';
    });
}

/** A templated value that came out with CR, LF or NUL is refused: it never reaches a header. */
function checked(value: string, name: string): string {
  if (FORBIDDEN.test(value)) throw new GatewayError('ERR_BAD_HEADER_VALUE', { detail: `The value for the header ${name} would contain a line break or NUL.` });
  return value;
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The route option `headers`: in the "shape the request" phase, after auth, so templates see the consumer. */
export const headersFeature: FeatureDescriptor = {
  option: 'headers',
  phase: 'shapeRequest',
  schemas: defineSchema(() => ({ option: headersSchema() })),
  upgrade: { apply: false, reason: 'A WebSocket handshake is proxied with the identity and forwarding headers only; header transforms apply to HTTP requests.' },
  build: (value, scope) => ({ handler: headers(withGatewayErrors(value as HeadersOptions, `${scope.optionPrefix}headers`), `${scope.optionPrefix}headers.`) }),
};
