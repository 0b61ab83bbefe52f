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
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ByteSize } from '../lib/byte-size';
import type { Duration } from '../lib/duration';
import { ConfigError } from '../lib/errors';
import { GrpcChannels } from '../lib/grpc/channels';
import type { ChannelTls } from '../lib/grpc/channels';
import type { ErrorMode, FeatureDescriptor } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { byteSize, defineSchema, duration, errorMode } from '../lib/schema';
import type { Z } from '../lib/schema';
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
export const DEFAULTS = {
  timeout: 30_000,
  streamTimeout: 0,
  maxBodyBytes: 1024 * 1024,
  maxMessageBytes: 4 * 1024 * 1024,
  keepAliveTime: 300_000,
  keepAliveTimeout: 20_000,
  activeInterval: 10_000,
  activeTimeout: 2_000,
};
export const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i;
export const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

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


/**
 * Creates the bridge. Its implementation (lib/grpc/bridge.ts) and @grpc/grpc-js load on the first call.
 *
 * @example
 * app.use('/api/inventory', authenticate({ jwt }), grpcBridge({ target: 'localhost:50051', protos: ['protos/inventory.proto'], service: 'shop.v1.Inventory', stripPath: true }));
 */
export function grpcBridge(options: GrpcBridgeOptions, optionPrefix = '', shared?: SharedParts): GrpcBridgeMiddleware {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createGrpcBridge } = require('../lib/grpc/bridge') as typeof import('../lib/grpc/bridge');
  return createGrpcBridge(options, optionPrefix, shared);
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
