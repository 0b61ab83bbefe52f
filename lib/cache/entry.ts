/**
 * What the cache keeps: a stored answer (status, the headers worth replaying, the body) or, for an answer
 * that varies on request headers, the record naming them. Also their encoding for a shared store (JSON with
 * the body in base64: every Redis client returns strings, and a binary body must come back byte for byte).
 */
import type { OutgoingHttpHeaders } from 'node:http';

export type HeaderValue = string | string[];

export interface StoredAnswer {
  kind: 'answer';
  status: number;
  /** Lower-case names; never hop-by-hop headers, Set-Cookie, Content-Length, X-Request-Id, X-Cache or Age. */
  headers: Record<string, HeaderValue>;
  body: Buffer;
  /** When it was stored (ms since the epoch). */
  storedAt: number;
  /** When it stops being served (ms since the epoch). */
  expiresAt: number;
  /** The upstream's own `Age` when stored, in seconds: a cached answer ages on from there. */
  age: number;
}

/** Stored under the primary key of an answer that varies: the request headers its variants are keyed by. */
export interface VaryRecord {
  kind: 'vary';
  vary: string[];
  expiresAt: number;
}

export type StoredValue = StoredAnswer | VaryRecord;

/** Headers that are never replayed: they belong to one connection, one request, or the cache itself. */
const NOT_STORED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'content-length',
  'set-cookie',
  'x-request-id',
  'x-cache',
  'age',
]);

/**
 * The headers of an answer worth storing: what the final handler set, without the headers of one connection
 * or request, without `apicache-*`, and without the headers that middlewares before the cache had already set
 * with the same value (`before`): those (rate limit counts, CORS for this origin, the request id) are set again
 * for each request, by the middlewares that set them.
 */
export function storableHeaders(headers: OutgoingHttpHeaders, before: OutgoingHttpHeaders, drop: ReadonlySet<string>): Record<string, HeaderValue> {
  const kept: Record<string, HeaderValue> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || NOT_STORED.has(name) || drop.has(name) || name.startsWith('apicache-')) continue;
    const text = Array.isArray(value) ? value.map(String) : String(value);
    if (before[name] !== undefined && sameValue(before[name], text)) continue;
    kept[name] = text;
  }
  return kept;
}

function sameValue(a: OutgoingHttpHeaders[string], b: HeaderValue): boolean {
  if (Array.isArray(a) || Array.isArray(b)) return JSON.stringify([a].flat().map(String)) === JSON.stringify([b].flat());
  return String(a) === b;
}

/** Bytes an entry holds, roughly (JS strings are UTF-16): what the memory bound counts. */
export function sizeOf(key: string, value: StoredValue): number {
  let size = 200 + key.length * 2;
  if (value.kind === 'vary') return size + value.vary.join('').length * 2;
  size += value.body.length;
  for (const [name, header] of Object.entries(value.headers)) size += 32 + (name.length + (Array.isArray(header) ? header.join('').length : header.length)) * 2;
  return size;
}

/** A body that holds memory of its own: a slice of a pooled or socket buffer would keep the whole of it alive. */
export function ownBuffer(chunks: readonly Buffer[], length: number): Buffer {
  const body = Buffer.allocUnsafeSlow(length);
  let offset = 0;
  for (const chunk of chunks) offset += chunk.copy(body, offset);
  return body;
}

/** The text a shared store keeps for a value. */
export function encodeValue(value: StoredValue): string {
  if (value.kind === 'vary') return JSON.stringify({ k: 'v', v: value.vary, x: value.expiresAt });
  return JSON.stringify({ k: 'a', s: value.status, h: value.headers, b: value.body.toString('base64'), t: value.storedAt, x: value.expiresAt, a: value.age });
}

/** A value read back from a shared store; undefined for anything that is not one (a foreign or damaged key). */
export function decodeValue(text: unknown): StoredValue | undefined {
  if (typeof text !== 'string' && !Buffer.isBuffer(text)) return undefined;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(String(text)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (!raw || typeof raw !== 'object' || typeof raw.x !== 'number') return undefined;
  if (raw.k === 'v' && Array.isArray(raw.v) && raw.v.every((name) => typeof name === 'string')) return { kind: 'vary', vary: raw.v as string[], expiresAt: raw.x };
  if (raw.k !== 'a' || typeof raw.s !== 'number' || typeof raw.b !== 'string' || typeof raw.t !== 'number' || !raw.h || typeof raw.h !== 'object') return undefined;
  return { kind: 'answer', status: raw.s, headers: raw.h as Record<string, HeaderValue>, body: Buffer.from(raw.b, 'base64'), storedAt: raw.t, expiresAt: raw.x, age: typeof raw.a === 'number' ? raw.a : 0 };
}
