/**
 * HTTP headers ↔ gRPC metadata. Upstream, a call carries the request id, the headers the route's policies set in
 * the upstream plan (consumer identity, `headers` transforms), the client headers the route lists, and the trace
 * context. Back, the metadata and trailer keys the route lists become response headers.
 */
import * as grpc from '@grpc/grpc-js';
import type { IncomingMessage } from 'node:http';
import { isIdentityHeader } from '../auth-headers';
import { REQUEST_ID_HEADER } from '../context';
import type { RequestContext } from '../context';

/** Metadata keys gRPC (or HTTP/2) reserves, never copied from headers. */
const RESERVED = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'content-type', 'content-length', 'user-agent', 'accept-encoding', 'http2-settings']);
const KEY = /^[0-9a-z_.-]+$/;
// Printable ASCII and spaces: what an ASCII metadata value may hold.
const VALUE = /^[\x20-\x7e]*$/;

/** True when `name` may be sent as an ASCII metadata key. */
export function isForwardableKey(name: string): boolean {
  return KEY.test(name) && !RESERVED.has(name) && !name.startsWith('grpc-') && !name.startsWith(':') && !name.endsWith('-bin');
}

/**
 * The metadata of a call: the listed client headers (`forward`, lower-case; not those the plan removes, never
 * identity headers a client sent), then the plan's headers, then the request id; `trace` (traceparent…) last.
 */
export function requestMetadata(req: IncomingMessage, context: RequestContext, forward: readonly string[], trace: Record<string, string>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  const set = (name: string, value: string) => {
    if (isForwardableKey(name) && VALUE.test(value)) metadata.set(name, value);
  };
  const plan = context.plan;
  for (const name of forward) {
    if (plan?.removeHeaders?.has(name) || isIdentityHeader(name)) continue;
    const value = req.headers[name];
    if (value !== undefined) set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  if (plan?.setHeaders) for (const [name, value] of Object.entries(plan.setHeaders)) set(name.toLowerCase(), value);
  metadata.set(REQUEST_ID_HEADER, context.requestId);
  for (const [name, value] of Object.entries(trace)) set(name, value);
  return metadata;
}

/** The listed keys of the response metadata, then of the trailers, as response headers (ASCII values only). */
export function responseHeaders(names: readonly string[], ...sources: Array<grpc.Metadata | undefined>): Record<string, string> {
  const headers: Record<string, string> = {};
  if (names.length === 0) return headers;
  for (const source of sources) {
    if (!source) continue;
    for (const name of names) {
      const values = source.get(name).filter((value): value is string => typeof value === 'string' && VALUE.test(value));
      if (values.length > 0) headers[name] = values.join(', ');
    }
  }
  return headers;
}
