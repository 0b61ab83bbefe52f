/**
 * The implementation of grpcBridge() (middleware/grpc-bridge.ts), loaded when the first bridge is built so that
 * @grpc/grpc-js and protobufjs are not loaded by apps that never route to gRPC.
 */
import type * as grpc from '@grpc/grpc-js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendAnswer } from '../aggregate/answer';
import { getContext } from '../context';
import type { RequestContext } from '../context';
import { ConfigError, GatewayError } from '../errors';
import { compileBindings } from './bindings';
import type { RpcMethod } from './bindings';
import { startCall } from './call';
import { checkAddress, GrpcChannels } from './channels';
import type { ChannelSettings } from './channels';
import { findBinding, pathIsBound } from './http-rule';
import type { Binding } from './http-rule';
import { FieldError, fieldToJson, toJson } from './json-mapping';
import { isForwardableKey, responseHeaders } from './metadata';
import { loadProtos, servicesOf } from './protos';
import type { Protobuf } from './protos';
import { requestObject } from './request-message';
import { statusError } from './status';
import type { CallStatus } from './status';
import { StreamWriter, streamFormat } from './stream-writer';
import { normaliseTarget, splitUrl } from '../path';
import { respondOrNext } from '../problem';
import { readBody } from '../request-body';
import { parseOptions } from '../schema';
import { fingerprint } from '../scope';
import type { SharedParts } from '../scope';

import { BODY_METHODS, DEFAULTS, grpcBridgeSchema, JSON_TYPE } from '../../middleware/grpc-bridge';
import type { GrpcBridgeMiddleware, GrpcBridgeOptions } from '../../middleware/grpc-bridge';

type Resolved = ReturnType<ReturnType<typeof grpcBridgeSchema>['parse']>;

/**
 * Creates the bridge.
 *
 * @example
 * app.use('/api/inventory', authenticate({ jwt }), grpcBridge({ target: 'localhost:50051', protos: ['protos/inventory.proto'], service: 'shop.v1.Inventory', stripPath: true }));
 */
export function createGrpcBridge(options: GrpcBridgeOptions, optionPrefix = '', shared?: SharedParts): GrpcBridgeMiddleware {
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

