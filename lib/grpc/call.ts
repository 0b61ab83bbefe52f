/**
 * One gRPC call of the bridge, unary or server-streaming, through the route's channels: a target picked by the
 * pool, the metadata (request id, plan headers, forwarded headers, traceparent of a CLIENT span), the deadline,
 * cancellation when the client goes away, passive health and one upstream result for metrics().
 */
import * as grpc from '@grpc/grpc-js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getContext, onResponseClose } from '../context';
import { GatewayError } from '../errors';
import { endUpstreamSpan, spanEvent, startUpstreamSpan } from '../telemetry';
import { noHealthyUpstream } from '../upstream-errors';
import { reportUpstreamResult } from '../upstream-observers';
import type { RpcMethod } from './bindings';
import type { GrpcChannels } from './channels';
import { requestMetadata } from './metadata';
import { statusName } from './status';
import type { CallStatus } from './status';

export interface CallSettings {
  channels: GrpcChannels;
  /** Client headers sent as metadata. */
  forward: readonly string[];
  /** Deadline of the call (ms); 0 for none. */
  timeout: number;
  /** Turns a failed status into the client's problem (with details when the route says so). */
  toError: (status: CallStatus & { metadata?: grpc.Metadata }) => GatewayError;
}

/** What the call reports while it runs. */
export interface CallHandlers {
  /** The service's response metadata (headers). */
  metadata?(metadata: grpc.Metadata): void;
  /** A message (the one of a unary call, or each of a stream). Returning false pauses a stream until `resume()`. */
  message(message: Buffer): void;
  /** The call ended: `error` undefined for OK; `trailers` the status metadata. Never called for a cancelled call. */
  end(error: GatewayError | undefined, trailers: grpc.Metadata | undefined): void;
}

export interface RunningCall {
  pause(): void;
  resume(): void;
}

const identity = (message: Buffer) => message;

/** Starts the call, or throws a GatewayError (503) when no target is healthy. */
export function startCall(req: IncomingMessage, res: ServerResponse, rpc: RpcMethod, request: Buffer, settings: CallSettings, handlers: CallHandlers): RunningCall {
  const context = getContext(req, res);
  const channel = settings.channels.pick(req);
  const pool = settings.channels.pool;
  if (!channel) throw noHealthyUpstream(pool);
  const { target, client } = channel;
  const trial = target.state === 'ejected';
  const startedAt = performance.now();
  const trace: Record<string, string> = {};
  const span = startUpstreamSpan(req, target.url, 'POST', 0, trace, rpc.path);
  span?.setAttributes({ 'rpc.system': 'grpc', 'rpc.service': rpc.service, 'rpc.method': rpc.name });
  span?.updateName(`${rpc.service}/${rpc.name}`);
  const metadata = requestMetadata(req, context, settings.forward, trace);
  const options: grpc.CallOptions = settings.timeout > 0 ? { deadline: Date.now() + settings.timeout } : {};

  let cancelled = false;
  let ended = false;
  const finish = (status: grpc.StatusObject) => {
    if (ended) return;
    ended = true;
    const clientGone = cancelled && status.code === grpc.status.CANCELLED;
    if (settings.channels.report(target, clientGone ? 'cancelled' : status.code, trial)) {
      spanEvent(req, 'frontdoor.upstream.ejected', { 'frontdoor.upstream': target.href });
    }
    span?.setAttribute('rpc.grpc.status_code', status.code);
    const error = status.code === grpc.status.OK ? undefined : settings.toError(status);
    endUpstreamSpan(span, { errorType: clientGone ? 'cancelled' : error ? statusName(status.code) : undefined });
    reportUpstreamResult(context, () => ({ req, pool, target: target.href, durationMs: performance.now() - startedAt, ...(clientGone ? { errorType: 'cancelled' } : { status: error?.status ?? 200 }) }));
    if (!clientGone) handlers.end(error, status.metadata);
  };

  let call: grpc.ClientUnaryCall | grpc.ClientReadableStream<Buffer>;
  if (rpc.serverStreaming) {
    const stream = client.makeServerStreamRequest<Buffer, Buffer>(rpc.path, identity, identity, request, metadata, options);
    stream.on('data', (message: Buffer) => handlers.message(message));
    // The error is the status too; 'status' carries it with its trailers.
    stream.on('error', () => undefined);
    call = stream;
  } else {
    call = client.makeUnaryRequest<Buffer, Buffer>(rpc.path, identity, identity, request, metadata, options, (err, message) => {
      // grpc-js calls back before it emits 'status': the message is handed over first, the end follows.
      if (!err && message) handlers.message(message);
    });
  }
  call.on('metadata', (received: grpc.Metadata) => handlers.metadata?.(received));
  call.on('status', finish);
  // A client that goes away cancels the call: the service sees CANCELLED and can stop working.
  onResponseClose(context, res, () => {
    if (ended || res.writableFinished) return;
    cancelled = true;
    call.cancel();
  });
  return {
    pause: () => (call as grpc.ClientReadableStream<Buffer>).pause?.(),
    resume: () => (call as grpc.ClientReadableStream<Buffer>).resume?.(),
  };
}
