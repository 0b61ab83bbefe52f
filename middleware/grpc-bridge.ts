/**
 * grpcBridge(): JSON clients call a gRPC service through the edge. The HTTP request is mapped to an RPC by the
 * proto's google.api.http annotations (as Envoy's grpc_json_transcoder and grpc-gateway read them), by the route's
 * `methods`, or by the fallback `POST /<package.Service>/<Method>`; the JSON body, path and query fill the request
 * message by the canonical proto3 JSON mapping; the answer is JSON (a server stream as NDJSON or SSE) and a failed
 * status is a problem+json with grpc-gateway's HTTP status.
 *
 * Works alone (`app.use('/api/inventory', authenticate(…), grpcBridge({ target, protos }))`) and as the route
 * option `grpc`, a final handler in place of `upstream`.
 */
import type * as grpc from '@grpc/grpc-js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendAnswer } from '../lib/aggregate/answer';
import type { ByteSize } from '../lib/byte-size';
import { getContext } from '../lib/context';
import type { RequestContext } from '../lib/context';
import type { Duration } from '../lib/duration';
import { ConfigError, GatewayError } from '../lib/errors';
import { compileBindings } from '../lib/grpc/bindings';
import type { RpcMethod } from '../lib/grpc/bindings';
import { startCall } from '../lib/grpc/call';
import { checkAddress, GrpcChannels } from '../lib/grpc/channels';
import type { ChannelSettings, ChannelTls } from '../lib/grpc/channels';
import { findBinding, pathIsBound } from '../lib/grpc/http-rule';
import type { Binding } from '../lib/grpc/http-rule';
import { FieldError, fieldToJson, toJson } from '../lib/grpc/json-mapping';
import { isForwardableKey, responseHeaders } from '../lib/grpc/metadata';
import { loadProtos, servicesOf } from '../lib/grpc/protos';
import type { Protobuf } from '../lib/grpc/protos';
import { requestObject } from '../lib/grpc/request-message';
import { statusError } from '../lib/grpc/status';
import type { CallStatus } from '../lib/grpc/status';
import { StreamWriter, streamFormat } from '../lib/grpc/stream-writer';
import { normaliseTarget, splitUrl } from '../lib/path';
import type { ErrorMode, FeatureDescriptor } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { respondOrNext } from '../lib/problem';
import { readBody } from '../lib/request-body';
import { byteSize, defineSchema, duration, errorMode, parseOptions } from '../lib/schema';
import type { Z } from '../lib/schema';
import { fingerprint } from '../lib/scope';
import type { SharedParts } from '../lib/scope';

export type { ChannelTls as GrpcTlsOptions } from '../lib/grpc/channels';

export interface GrpcHealthOptions {
  /** Eject a target after consecutive UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN or DATA_LOSS answers. Defaults to on (3 failures, `'10s'` cooldown doubling up to `'5m'`); `false` turns it off. */
  passive?: { failures?: number; cooldown?: Duration; maxCooldown?: Duration } | false;
  /** Call grpc.health.v1.Health/Check on each target; one not SERVING gets no traffic until it is. Off by default. `true` or `{ interval: '10s', timeout: '2s', service: '' }`. */
  active?: boolean | { interval?: Duration; timeout?: Duration; service?: string };
}

export interface GrpcBridgeOptions {
  /** The gRPC service's address, `'host:port'` (no scheme), e.g. `'localhost:50051'`. Use `targets` for several. */
  target?: string;
  /** Several addresses of the service, balanced round-robin, each with its own health. */
  targets?: string[];
  /** The .proto file(s) that declare the service, e.g. `['protos/inventory.proto']`. */
  protos: string | string[];
  /** Directories imports are looked up in, after each proto's own. `google/api/annotations.proto` and `http.proto` are bundled. Defaults to none. */
  includeDirs?: string[];
  /** The service(s) the route exposes, by full name (`'shop.v1.Inventory'`). Defaults to every service of `protos`. */
  service?: string | string[];
  /** Explicit bindings, for RPCs without annotations: `{ 'GET /items/:id': 'GetItem', 'POST /items': 'CreateItem' }` (POST, PUT and PATCH take the body as the whole message). */
  methods?: Record<string, string>;
  /** RPCs that have neither an annotation nor a `methods` entry answer `POST /<package.Service>/<Method>` with the message as JSON. Defaults to true. */
  unboundMethods?: boolean;
  /** Deadline of a unary call; past it the call is cancelled and the client gets a 504. Defaults to `'30s'`. */
  timeout?: Duration;
  /** Deadline of a server-streaming call. Defaults to none (0): a stream lasts until the service or the client ends it. */
  streamTimeout?: Duration;
  /** Client headers sent to the service as metadata, e.g. `['accept-language']`. Defaults to none. The request id, trace context and the headers the route's policies set (consumer identity, `headers`) are always sent. */
  forwardHeaders?: string[];
  /** Response metadata and trailer keys copied to the answer's headers, e.g. `['x-total-count']`. Defaults to none. */
  responseHeaders?: string[];
  /** Put the google.rpc.Status details a service sends with an error into the problem (`grpcDetails`). Defaults to false: they may say more than a client should see. */
  errorDetails?: boolean;
  /** Print fields at their default value (0, "", false, [], null), as grpc-gateway does. Defaults to true; false omits them, as protobuf's JSON printer does by default. */
  emitDefaults?: boolean;
  /** Largest JSON request body read. Defaults to `'1mb'`. */
  maxBodyBytes?: ByteSize;
  /** Largest gRPC message, either way. Defaults to `'4mb'` (gRPC's own default). */
  maxMessageBytes?: ByteSize;
  /** TLS to the service: `true` (system CAs), or `{ ca, cert, key, servername }` for a private CA and mTLS. Defaults to plaintext (h2c). */
  tls?: true | ChannelTls;
  /** HTTP/2 keep-alive pings on the channel: `{ time: '5m', timeout: '20s' }` (the defaults), or `false`. */
  keepAlive?: { time?: Duration; timeout?: Duration } | false;
  /** Target health: passive ejection and active grpc.health.v1 checks. */
  health?: GrpcHealthOptions;
  /** Used alone: match the path without the mount path (`app.use('/api', …)` sees `/v1/items/7`). Defaults to false, as in proxy(). In a gateway, the route's `stripPath` decides. */
  stripPath?: boolean;
  /** Answer errors as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** The middleware, with what it holds. */
export interface GrpcBridgeMiddleware {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Closes the channels (shared ones belong to the gateway). */
  close(): Promise<void>;
  /** The target pool (health, for metrics and `gw.events`). */
  readonly pool: GrpcChannels['pool'];
}

/** Defaults, in one place. */
const DEFAULTS = {
  timeout: 30_000,
  streamTimeout: 0,
  maxBodyBytes: 1024 * 1024,
  maxMessageBytes: 4 * 1024 * 1024,
  keepAliveTime: 300_000,
  keepAliveTimeout: 20_000,
  activeInterval: 10_000,
  activeTimeout: 2_000,
};
const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const pem = (z: Z) => z.custom<string | Buffer>((value) => typeof value === 'string' || Buffer.isBuffer(value), { error: 'must be PEM text or a Buffer' });
const headerList = (z: Z) => z.array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'must be a header name' }), { error: "must be a list of header names, e.g. ['accept-language']" });

export const grpcBridgeSchema = defineSchema((z) => {
  const positive = { error: 'must be a positive integer' };
  return z.strictObject(
    {
      target: z.string({ error: "must be a gRPC address such as 'localhost:50051'" }).optional(),
      targets: z.array(z.string(), { error: "must be a list of gRPC addresses such as ['10.0.0.5:50051']" }).optional(),
      protos: z.union([z.string(), z.array(z.string()).min(1, { error: 'needs at least one .proto file' })], { error: "must be a .proto file or a list of them, e.g. ['protos/inventory.proto']" }),
      includeDirs: z.array(z.string(), { error: 'must be a list of directories' }).optional(),
      service: z.union([z.string(), z.array(z.string())], { error: "must be a service name such as 'shop.v1.Inventory', or a list of them" }).optional(),
      methods: z.record(z.string(), z.string({ error: "must be an RPC name such as 'GetItem'" }), { error: "must be an object like { 'GET /items/:id': 'GetItem' }" }).optional(),
      unboundMethods: z.boolean().optional(),
      timeout: duration(z).optional(),
      streamTimeout: duration(z).optional(),
      forwardHeaders: headerList(z).optional(),
      responseHeaders: headerList(z).optional(),
      errorDetails: z.boolean().optional(),
      emitDefaults: z.boolean().optional(),
      maxBodyBytes: byteSize(z).optional(),
      maxMessageBytes: byteSize(z).optional(),
      tls: z.union([z.literal(true), z.strictObject({ ca: pem(z).optional(), cert: pem(z).optional(), key: pem(z).optional(), servername: z.string().optional() })], { error: 'must be true or { ca, cert, key, servername }' }).optional(),
      keepAlive: z.union([z.literal(false), z.strictObject({ time: duration(z).optional(), timeout: duration(z).optional() })], { error: "must be false or { time: '5m', timeout: '20s' }" }).optional(),
      health: z
        .strictObject({
          passive: z.union([z.literal(false), z.strictObject({ failures: z.number(positive).int(positive).min(1, positive).optional(), cooldown: duration(z).optional(), maxCooldown: duration(z).optional() })]).optional(),
          active: z.union([z.boolean(), z.strictObject({ interval: duration(z).optional(), timeout: duration(z).optional(), service: z.string().optional() })]).optional(),
        })
        .optional(),
      stripPath: z.boolean().optional(),
      onError: errorMode(z).optional(),
    },
    { error: "must be an object like { target: 'localhost:50051', protos: ['inventory.proto'] }" },
  );
});

type Resolved = ReturnType<ReturnType<typeof grpcBridgeSchema>['parse']>;

/**
 * Creates the bridge.
 *
 * @example
 * app.use('/api/inventory', authenticate({ jwt }), grpcBridge({ target: 'localhost:50051', protos: ['protos/inventory.proto'], service: 'shop.v1.Inventory', stripPath: true }));
 */
export function grpcBridge(options: GrpcBridgeOptions, optionPrefix = '', shared?: SharedParts): GrpcBridgeMiddleware {
  if (!options || typeof options !== 'object') throw new ConfigError(`grpcBridge() needs options. Example: grpcBridge({ target: 'localhost:50051', protos: ['inventory.proto'] }).`);
  const config = parseOptions(grpcBridgeSchema(), options, optionPrefix);
  const name = (key: string) => optionPrefix + key;
  const bindings = buildBindings(config, name);
  const root = bindings.length > 0 ? bindings[0].method.requestType.root : undefined;
  const settings = channelSettings(config, name);

  // In a gateway, routes with the same targets and channel settings share the channels (connections, health).
  let owned: GrpcChannels | undefined;
  const channels = shared
    ? shared.get('grpc channels', fingerprint(settings), settings, `"${name('target')}"`, `"${name('target')}"`, () => new GrpcChannels(settings, optionPrefix), (made) => made.close())
    : (owned = new GrpcChannels(settings, optionPrefix));

  const onError = config.onError ?? 'respond';
  const stripPath = config.stripPath === true;
  const maxBodyBytes = config.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
  const emitDefaults = config.emitDefaults !== false;
  const forward = (config.forwardHeaders ?? []).map((header) => header.toLowerCase());
  const refused = forward.find((header) => !isForwardableKey(header));
  if (refused) throw new ConfigError(`"${name('forwardHeaders')}" lists "${refused}", which gRPC reserves (or a binary -bin key): it cannot be sent as metadata.`);
  const answerHeaders = (config.responseHeaders ?? []).map((header) => header.toLowerCase());
  const unaryTimeout = config.timeout ?? DEFAULTS.timeout;
  const streamTimeout = config.streamTimeout ?? DEFAULTS.streamTimeout;
  const statusType = root ? lookupStatusType(root) : undefined;
  const toError = (status: CallStatus & { metadata?: grpc.Metadata }) => statusError(status, config.errorDetails && statusType ? errorDetails(statusType, status.metadata, emitDefaults) : undefined);

  const middleware = function grpcBridgeMiddleware(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void {
    const context = getContext(req, res);
    const fail = (err: unknown) => respondOrNext(onError, req, res, next, err);
    const target = requestTarget(req, context, stripPath);
    if ('refused' in target) return fail(new GatewayError('ERR_BAD_PATH', { detail: target.refused }));
    const match = findBinding(bindings, req.method ?? 'GET', target.path);
    if (!match) return fail(noMethod(bindings, req.method ?? 'GET', target.path));
    const { binding } = match;
    const rpc = binding.method;

    readJsonBody(req, context, binding, maxBodyBytes)
      .then((body) => {
        let request: Buffer;
        try {
          const object = requestObject(rpc.requestType, binding.body, { body, pathFields: match.pathFields, query: target.query, removeQuery: context.plan?.removeQuery });
          request = Buffer.from(rpc.requestType.encode(rpc.requestType.fromObject(object)).finish());
        } catch (err) {
          if (err instanceof FieldError) throw new GatewayError('ERR_GRPC_INVALID_ARGUMENT', { detail: err.message, cause: err });
          throw new GatewayError('ERR_GRPC_INVALID_ARGUMENT', { detail: 'The request does not fit the RPC request message.', cause: err });
        }
        const settingsOf = { channels, forward, timeout: rpc.serverStreaming ? streamTimeout : unaryTimeout, toError };
        if (rpc.serverStreaming) return streamCall(req, res, rpc, request, settingsOf, fail);
        return unaryCall(req, res, binding, request, settingsOf, fail);
      })
      .catch(fail);
  } as GrpcBridgeMiddleware;

  function unaryCall(req: IncomingMessage, res: ServerResponse, binding: Binding<RpcMethod>, request: Buffer, settingsOf: Parameters<typeof startCall>[4], fail: (err: unknown) => void): void {
    let initial: grpc.Metadata | undefined;
    let reply: Buffer | undefined;
    startCall(req, res, binding.method, request, settingsOf, {
      metadata: (received) => (initial = received),
      message: (message) => (reply = message),
      end: (error, trailers) => {
        if (error) return fail(error);
        if (!reply) return fail(new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: 'The gRPC service ended the call without a message.' }));
        let body: Buffer;
        try {
          body = Buffer.from(JSON.stringify(responseJson(binding, reply)));
        } catch (err) {
          return fail(new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: 'The gRPC service answered a message that cannot be read as its response type.', cause: err }));
        }
        const headers = { ...responseHeaders(answerHeaders, initial, trailers), 'content-type': 'application/json; charset=utf-8' };
        sendAnswer(req, res, 200, headers, body).catch(fail);
      },
    });
  }

  function streamCall(req: IncomingMessage, res: ServerResponse, rpc: RpcMethod, request: Buffer, settingsOf: Parameters<typeof startCall>[4], fail: (err: unknown) => void): void {
    const writer = new StreamWriter(req, res, streamFormat(req));
    let initial: grpc.Metadata | undefined;
    const call = startCall(req, res, rpc, request, settingsOf, {
      metadata: (received) => (initial = received),
      message: (message) => {
        writer.start(responseHeaders(answerHeaders, initial));
        let json: unknown;
        try {
          json = toJson(rpc.responseType, rpc.responseType.decode(message) as unknown as Record<string, unknown>, { emitDefaults });
        } catch {
          return;
        }
        if (!writer.message(json)) {
          call.pause();
          res.once('drain', () => call.resume());
        }
      },
      end: (error) => {
        if (!writer.hasStarted) {
          if (error) return fail(error);
          writer.start(responseHeaders(answerHeaders, initial));
        }
        writer.end(error);
      },
    });
  }

  /** The answer's JSON: the response message, or its `response_body` field. */
  function responseJson(binding: Binding<RpcMethod>, reply: Buffer): unknown {
    const type = binding.method.responseType;
    const message = type.decode(reply) as unknown as Record<string, unknown>;
    if (!binding.responseBody) return toJson(type, message, { emitDefaults });
    let current: Protobuf.Type = type;
    let value: unknown = message;
    for (const [index, step] of binding.responseBody.entries()) {
      const field = current.fields[step];
      const fieldValue = (value as Record<string, unknown> | null)?.[field.name];
      if (index === binding.responseBody.length - 1) return fieldToJson(field, fieldValue, { emitDefaults });
      if (fieldValue === null || fieldValue === undefined) return null;
      value = fieldValue;
      current = field.resolvedType as Protobuf.Type;
    }
    return null;
  }

  middleware.close = async function closeGrpcBridge(): Promise<void> {
    await owned?.close();
  };
  Object.defineProperty(middleware, 'pool', { value: channels.pool, enumerable: true });
  return middleware;
}

/** The bindings of the route's services; a ConfigError names what is wrong. */
function buildBindings(config: Resolved, name: (key: string) => string): Array<Binding<RpcMethod>> {
  const protos = typeof config.protos === 'string' ? [config.protos] : config.protos;
  const root = loadProtos({ protos, includeDirs: config.includeDirs ?? [] }, name('protos'));
  const all = servicesOf(root);
  if (all.size === 0) throw new ConfigError(`"${name('protos')}" declares no service.`);
  const wanted = config.service === undefined ? [...all.keys()] : typeof config.service === 'string' ? [config.service] : config.service;
  const services = wanted.map((serviceName) => {
    const service = all.get(serviceName.replace(/^\./, ''));
    if (!service) throw new ConfigError(`"${name('service')}" names ${JSON.stringify(serviceName)}, which the protos do not declare (they declare ${[...all.keys()].join(', ')}).`);
    return service;
  });
  return compileBindings(services, { methods: config.methods, unbound: config.unboundMethods !== false }, name(''));
}

/** The channel settings, resolved: what routes share channels by. */
function channelSettings(config: Resolved, name: (key: string) => string): ChannelSettings {
  if (config.target !== undefined && config.targets !== undefined) throw new ConfigError(`Set either "${name('target')}" or "${name('targets')}", not both.`);
  const targets = config.target !== undefined ? [config.target] : config.targets;
  if (!targets || targets.length === 0) throw new ConfigError(`Missing "${name('target')}" option. Example: { target: 'localhost:50051', protos: ['inventory.proto'] }.`);
  targets.forEach((address, index) => checkAddress(address, config.target !== undefined ? name('target') : name(`targets[${index}]`)));
  const active = config.health?.active;
  const keepAlive = config.keepAlive;
  const interval = typeof active === 'object' ? active.interval ?? DEFAULTS.activeInterval : DEFAULTS.activeInterval;
  if (active && interval < 100) throw new ConfigError(`"${name('health.active.interval')}" must be at least 100 ms.`);
  return {
    targets,
    tls: config.tls === true ? {} : config.tls,
    keepAlive: keepAlive === false ? { time: 0, timeout: 0 } : { time: keepAlive?.time ?? DEFAULTS.keepAliveTime, timeout: keepAlive?.timeout ?? DEFAULTS.keepAliveTimeout },
    maxMessageBytes: config.maxMessageBytes ?? DEFAULTS.maxMessageBytes,
    passive: config.health?.passive ?? {},
    active: active ? { interval, timeout: (typeof active === 'object' ? active.timeout : undefined) ?? DEFAULTS.activeTimeout, service: (typeof active === 'object' ? active.service : undefined) ?? '' } : false,
  };
}

/** The path (normalised, no query) the bindings match, and the query: the plan's in a gateway, the request's alone. */
function requestTarget(req: IncomingMessage, context: RequestContext, stripPath: boolean): { path: string; query: string } | { refused: string } {
  let url = context.plan?.url;
  if (url === undefined) {
    const own = stripPath ? req.url ?? '/' : (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
    const target = normaliseTarget(own);
    if (!target.ok) return { refused: target.reason };
    url = target.path + target.search;
  }
  const { pathname, search } = splitUrl(url);
  return { path: pathname, query: search.replace(/^\?/, '') };
}

/** 404, with the methods the path does take (`Allow`) when it is bound to others. */
function noMethod(bindings: ReadonlyArray<Binding<RpcMethod>>, method: string, path: string): GatewayError {
  const others = pathIsBound(bindings, path);
  if (others.length > 0) {
    return new GatewayError('ERR_GRPC_NO_METHOD', { detail: `${method} is not mapped to an RPC on this path; it takes ${others.join(', ')}.`, headers: { Allow: others.join(', ') } });
  }
  return new GatewayError('ERR_GRPC_NO_METHOD', { detail: `No RPC is mapped to ${method} on this path.` });
}

/** The JSON body, when the binding reads one: parsed, or a 400/413/415 GatewayError. */
async function readJsonBody(req: IncomingMessage, context: RequestContext, binding: Binding<RpcMethod>, maxBytes: number): Promise<unknown> {
  if (binding.body.kind === 'none' || !BODY_METHODS.has(req.method ?? 'GET')) return undefined;
  const bytes = context.plan?.body ?? (await readBody(req, maxBytes));
  if (bytes.length === 0) return undefined;
  const type = context.plan?.setHeaders?.['content-type'] ?? req.headers['content-type'];
  if (type !== undefined && !JSON_TYPE.test(type)) throw new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE', { detail: `This route takes a JSON body (application/json); received ${type.split(';')[0]}.` });
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'The request body is not valid JSON.', cause: err });
  }
}

function lookupStatusType(root: Protobuf.Root): Protobuf.Type | undefined {
  try {
    return root.lookupType('google.rpc.Status');
  } catch {
    return undefined;
  }
}

/** The google.rpc.Status details a service put in its trailers, as JSON (Any types the protos lack keep their bytes). */
function errorDetails(statusType: Protobuf.Type, trailers: grpc.Metadata | undefined, emitDefaults: boolean): unknown[] | undefined {
  const raw = trailers?.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return undefined;
  try {
    const status = toJson(statusType, statusType.decode(raw) as unknown as Record<string, unknown>, { emitDefaults }) as { details?: unknown[] };
    return status.details;
  } catch {
    return undefined;
  }
}

/**
 * The route option `grpc`: a final handler in place of `upstream`. Routes whose targets and channel settings are
 * the same share one set of channels (connections and target health), kept across reloads that leave them unchanged.
 */
export const grpcFeature: FeatureDescriptor = {
  option: 'grpc',
  phase: 'final',
  // `stripPath` is the route's own option there (the bindings match the path the route forwards).
  schemas: defineSchema(() => ({ option: grpcBridgeSchema().omit({ stripPath: true }) })),
  upgrade: { apply: false, reason: 'A gRPC route answers JSON requests with RPCs; there is no WebSocket upstream to hand an upgrade to.' },
  build(value, scope) {
    const option = `${scope.optionPrefix}grpc`;
    if (value && typeof value === 'object' && (value as GrpcBridgeOptions).stripPath !== undefined) {
      throw new ConfigError(`"${option}.stripPath" belongs to the route: set "stripPath" next to "path" (the bindings match the path the route forwards).`);
    }
    const middleware = grpcBridge(withGatewayErrors(value as GrpcBridgeOptions, option), `${option}.`, scope.shared);
    return { handler: middleware, pools: [middleware.pool], close: () => middleware.close() };
  },
};
