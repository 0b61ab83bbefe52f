/**
 * A real OTLP/HTTP trace receiver on an ephemeral 127.0.0.1 port: accepts `POST /v1/traces` with JSON
 * bodies (`@opentelemetry/exporter-trace-otlp-http`) or protobuf (`-otlp-proto`; gzip accepted too), decodes
 * resourceSpans → scopeSpans → spans with ids normalised to lowercase hex, and can play a broken
 * collector: answer 503 or never answer at all. Other requests (OTLP metrics or logs) are recorded and refused.
 */
import http from 'node:http';
import protobuf from 'protobufjs';
import { gunzipSync, inflateSync } from 'node:zlib';
import type { AddressInfo, Socket } from 'node:net';

/** `accept`: 200 and record; `unavailable`: 503 without recording; `hang`: read the body and never answer. */
export type ReceiverMode = 'accept' | 'unavailable' | 'hang';

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };

export interface ReceivedEvent {
  name: string;
  attributes: Record<string, AttributeValue>;
}

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Absent for a root span. */
  parentSpanId?: string;
  traceState?: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, AttributeValue>;
  events: ReceivedEvent[];
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string };
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  /** Attributes of the span's resource (service.name…). */
  resource: Record<string, AttributeValue>;
  /** Instrumentation scope name. */
  scope: string;
}

/**
 * Jest runs test files in a vm context where dynamic `import()` fails without --experimental-vm-modules,
 * and @opentelemetry/otlp-exporter-base loads `http` and its agent with `import('http')` on the first
 * export: every export then fails ("A dynamic import callback was invoked without
 * --experimental-vm-modules"). This hands the exporter's HTTP transport the very same Node `http.request`
 * and a keep-alive agent up front, so nothing else about the exporter changes. Returns the agent:
 * destroy it when done. Throws if the exporter's internals no longer look as expected.
 */
export function useNodeHttpUnderJest(exporter: object): http.Agent {
  const seen = new Set<object>();
  const find = (value: unknown, depth: number): { _utils: unknown } | undefined => {
    if (typeof value !== 'object' || value === null || seen.has(value) || depth > 6) return undefined;
    seen.add(value);
    const candidate = value as { _utils?: unknown; _loadUtils?: unknown; _parameters?: { url?: unknown } };
    if ('_utils' in candidate && typeof candidate._loadUtils === 'function' && typeof candidate._parameters?.url === 'string') return candidate as { _utils: unknown };
    for (const key of Object.keys(value)) {
      const found = find((value as Record<string, unknown>)[key], depth + 1);
      if (found) return found;
    }
    return undefined;
  };
  const transport = find(exporter, 0);
  if (!transport) throw new Error('useNodeHttpUnderJest: no HTTP transport found inside the exporter (otlp-exporter-base internals changed?)');
  const agent = new http.Agent({ keepAlive: true });
  transport._utils = { agent, request: http.request };
  return agent;
}

export const SpanKindCode = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;
export const StatusCodeValue = { UNSET: 0, OK: 1, ERROR: 2 } as const;

export interface OtlpReceiver {
  /** `http://127.0.0.1:PORT` (append `/v1/traces` for the exporter). */
  url: string;
  port: number;
  /** Every span received while accepting, in arrival order. */
  spans: ReceivedSpan[];
  /** Content type of each export request decoded, in order of arrival. */
  readonly contentTypes: string[];
  /** POST /v1/traces requests received in any mode (export attempts, retries included). */
  readonly exportRequests: number;
  /** `METHOD /path` of every request that was not an OTLP trace export (metrics, logs…), answered 404. */
  readonly otherRequests: string[];
  /** Requests received while hanging that are still unanswered. */
  readonly hanging: number;
  mode: ReceiverMode;
  /** Resolves with the spans once `predicate(spans)` holds; rejects after `timeoutMs` listing what arrived. */
  waitForSpans(predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  /** Resolves once at least `count` export requests arrived. */
  waitForExportRequests(count: number, timeoutMs?: number): Promise<void>;
  /**
   * Answers every request left hanging with `status` (400 by default: not retryable), so an exporter that
   * was stuck on this receiver settles instead of retrying against a closed port after the test.
   */
  answerHanging(status?: number): void;
  /** Stops listening and destroys every connection (hung ones included). */
  close(): Promise<void>;
}

export interface StartOtlpReceiverOptions {
  /** Bind to a known port (e.g. one a collector URL already points at). Defaults to an ephemeral port. */
  port?: number;
  mode?: ReceiverMode;
}

/** Trace and span ids arrive as hex (OTLP/JSON) or base64 (protobuf-JSON mapping): always returns lowercase hex. */
export function normaliseId(id: unknown, bytes: 8 | 16): string | undefined {
  if (typeof id !== 'string' || id === '') return undefined;
  if (id.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(id)) return id.toLowerCase();
  const decoded = Buffer.from(id, 'base64');
  if (decoded.length !== bytes) throw new Error(`OTLP receiver: id ${JSON.stringify(id)} is neither ${bytes * 2} hex chars nor ${bytes} base64 bytes`);
  return decoded.toString('hex');
}

type Json = Record<string, unknown>;

function decodeValue(value: unknown): AttributeValue {
  const v = (value ?? {}) as Json;
  if ('stringValue' in v) return v.stringValue as string;
  if ('boolValue' in v) return v.boolValue as boolean;
  // int64 is a string in OTLP/JSON (or a number, or { low, high } with longBits).
  if ('intValue' in v) {
    const int = v.intValue as unknown;
    if (typeof int === 'object' && int !== null) {
      const { low, high } = int as { low: number; high: number };
      return high * 2 ** 32 + (low >>> 0);
    }
    return Number(int);
  }
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('bytesValue' in v) return String(v.bytesValue);
  if ('arrayValue' in v) return (((v.arrayValue as Json)?.values as unknown[]) ?? []).map(decodeValue);
  if ('kvlistValue' in v) return decodeAttributes((v.kvlistValue as Json)?.values);
  return null;
}

function decodeAttributes(list: unknown): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of (Array.isArray(list) ? list : []) as Json[]) out[String(kv.key)] = decodeValue(kv.value);
  return out;
}

function decodeKind(kind: unknown): number {
  if (typeof kind === 'number') return kind;
  const names = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'];
  const index = names.indexOf(String(kind));
  return index === -1 ? 0 : index;
}

function decodeStatusCode(code: unknown): number {
  if (typeof code === 'number') return code;
  const index = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'].indexOf(String(code));
  return index === -1 ? 0 : index;
}

/**
 * The OTLP trace messages a receiver needs (opentelemetry/proto trace/v1 and collector/trace/v1, field numbers
 * as published); fields left out (links, flags, schema URLs) are skipped when decoding.
 */
const OTLP_TRACE_PROTO = `
syntax = "proto3";
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
message InstrumentationScope { string name = 1; string version = 2; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
  SpanKind kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; repeated Event events = 11; Status status = 15;
}
enum SpanKind { SPAN_KIND_UNSPECIFIED = 0; SPAN_KIND_INTERNAL = 1; SPAN_KIND_SERVER = 2; SPAN_KIND_CLIENT = 3; SPAN_KIND_PRODUCER = 4; SPAN_KIND_CONSUMER = 5; }
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Status { string message = 2; StatusCode code = 3; }
enum StatusCode { STATUS_CODE_UNSET = 0; STATUS_CODE_OK = 1; STATUS_CODE_ERROR = 2; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7; }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
`;
let exportRequestType: protobuf.Type | undefined;

/** Decodes a protobuf ExportTraceServiceRequest into its protobuf-JSON mapping, which decodeTraces() reads. */
export function decodeProtobufTraces(body: Uint8Array): unknown {
  exportRequestType ??= protobuf.parse(OTLP_TRACE_PROTO).root.lookupType('ExportTraceServiceRequest');
  return exportRequestType.toObject(exportRequestType.decode(body), { longs: String, enums: String, bytes: String });
}

/** Decodes an ExportTraceServiceRequest (OTLP/JSON, or protobuf after decodeProtobufTraces) into flat spans. */
export function decodeTraces(body: unknown): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of ((body as Json)?.resourceSpans as Json[]) ?? []) {
    const resource = decodeAttributes((resourceSpans.resource as Json | undefined)?.attributes);
    for (const scopeSpans of (resourceSpans.scopeSpans as Json[]) ?? []) {
      const scope = String((scopeSpans.scope as Json | undefined)?.name ?? '');
      for (const span of (scopeSpans.spans as Json[]) ?? []) {
        const status = (span.status ?? {}) as Json;
        spans.push({
          traceId: normaliseId(span.traceId, 16) ?? '',
          spanId: normaliseId(span.spanId, 8) ?? '',
          parentSpanId: normaliseId(span.parentSpanId, 8),
          traceState: typeof span.traceState === 'string' && span.traceState !== '' ? span.traceState : undefined,
          name: String(span.name),
          kind: decodeKind(span.kind),
          attributes: decodeAttributes(span.attributes),
          events: ((span.events as Json[]) ?? []).map((event) => ({ name: String(event.name), attributes: decodeAttributes(event.attributes) })),
          status: { code: decodeStatusCode(status.code), ...(typeof status.message === 'string' && status.message ? { message: status.message } : {}) },
          startTimeUnixNano: String(span.startTimeUnixNano),
          endTimeUnixNano: String(span.endTimeUnixNano),
          resource,
          scope,
        });
      }
    }
  }
  return spans;
}

function decompress(body: Buffer, encoding: string | undefined): Buffer {
  if (encoding === 'gzip') return gunzipSync(body);
  if (encoding === 'deflate') return inflateSync(body);
  return body;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startOtlpReceiver(options: StartOtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const sockets = new Set<Socket>();
  const hung = new Set<http.ServerResponse>();
  const state = { exportRequests: 0 };
  const contentTypes: string[] = [];
  const otherRequests: string[] = [];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/v1/traces') {
        otherRequests.push(`${req.method} ${req.url}`);
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
        return;
      }
      state.exportRequests += 1;
      if (receiver.mode === 'hang') {
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      }
      if (receiver.mode === 'unavailable') {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{}');
        return;
      }
      const contentType = String(req.headers['content-type'] ?? '').split(';')[0].trim();
      const isJson = contentType === 'application/json';
      if (!isJson && contentType !== 'application/x-protobuf') {
        res.writeHead(415, { 'content-type': 'text/plain' });
        res.end('this receiver decodes OTLP/JSON and OTLP/protobuf');
        return;
      }
      let decoded: ReceivedSpan[];
      try {
        const raw = decompress(Buffer.concat(chunks), req.headers['content-encoding']);
        decoded = decodeTraces(isJson ? JSON.parse(raw.toString('utf8')) : decodeProtobufTraces(raw));
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(String(err));
        return;
      }
      contentTypes.push(contentType);
      spans.push(...decoded);
      // An empty ExportTraceServiceResponse, in the request's encoding: full success.
      res.writeHead(200, { 'content-type': contentType });
      res.end(isJson ? '{}' : '');
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const receiver: OtlpReceiver = {
    url: `http://127.0.0.1:${port}`,
    port,
    spans,
    contentTypes,
    otherRequests,
    get exportRequests() {
      return state.exportRequests;
    },
    get hanging() {
      return hung.size;
    },
    mode: options.mode ?? 'accept',
    async waitForSpans(predicate, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(spans)) {
        if (Date.now() > deadline) {
          const seen = spans.map((s) => `${s.name} [${s.traceId}/${s.spanId}]`).join(', ') || 'none';
          throw new Error(`OTLP receiver: expected spans did not arrive within ${timeoutMs} ms; received: ${seen}`);
        }
        await sleep(20);
      }
      return spans;
    },
    async waitForExportRequests(count, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (state.exportRequests < count) {
        if (Date.now() > deadline) throw new Error(`OTLP receiver: ${state.exportRequests} export requests within ${timeoutMs} ms, expected ${count}`);
        await sleep(20);
      }
    },
    answerHanging(status = 400) {
      for (const res of hung) {
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end('released by the test');
      }
      hung.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  return receiver;
}
