/**
 * What may be cached and for how long: the request side (whose requests may read and fill the cache) and the
 * answer side (what the upstream's status and headers allow), and conditional requests answered from a hit.
 * Pure functions of the request or the headers, so each rule is tested on its own.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { getConsumer } from '../consumer';
import { parseVary } from './key';

/** Why a request neither reads nor fills the cache. */
export type BypassReason = 'credentials' | 'range' | 'client' | 'path' | 'store';

export interface RequestRules {
  perConsumer: boolean;
  /** Request headers that make a request personal (lower-case). */
  credentialHeaders: readonly string[];
  allowClientBypass: boolean;
}

/**
 * What the cache does with a GET or HEAD: `undefined` (look it up), `'refresh'` (the client asked for a fresh
 * answer and the route allows it: go upstream, store what comes back), or why it stays out of it.
 */
export function requestDecision(req: IncomingMessage, rules: RequestRules): BypassReason | 'refresh' | undefined {
  const headers = req.headers;
  // A part of an answer is not the answer: ranges go upstream as they are.
  if (headers.range !== undefined) return 'range';
  const consumer = getConsumer(req);
  const authenticated = consumer !== undefined && consumer.scheme !== 'anonymous';
  const presents = rules.credentialHeaders.some((name) => headers[name] !== undefined);
  if (!rules.perConsumer) {
    // The classic leak: one user's answer served to the next. Without a consumer in the key, a personal request
    // neither reads nor fills a shared entry.
    if (authenticated || presents) return 'credentials';
  } else if (presents && !authenticated) {
    // Credentials the gateway did not verify (no authenticate() before the cache) cannot key an entry.
    return 'credentials';
  }
  if (rules.allowClientBypass) {
    const directives = parseCacheControl(headers['cache-control']);
    if (directives.has('no-store') || headers['x-apicache-bypass'] !== undefined) return 'client';
    if (directives.has('no-cache') || /\bno-cache\b/i.test(String(headers.pragma ?? '')) || headers['x-apicache-force-fetch'] !== undefined) return 'refresh';
  }
  return undefined;
}

/** The consumer part of a key with `perConsumer`: scheme and id, '' for anonymous requests. */
export function consumerKey(req: IncomingMessage): string {
  const consumer = getConsumer(req);
  return consumer && consumer.scheme !== 'anonymous' ? `${consumer.scheme}:${consumer.id}` : '';
}

/** Cache-Control directives, lower-case names, values unquoted (`max-age` → `'60'`, `private` → `''`). */
export function parseCacheControl(value: string | string[] | number | undefined): Map<string, string> {
  const directives = new Map<string, string>();
  if (value === undefined) return directives;
  for (const part of String(Array.isArray(value) ? value.join(',') : value).split(',')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name || directives.has(name)) continue;
    directives.set(name, eq === -1 ? '' : part.slice(eq + 1).trim().replace(/^"|"$/g, ''));
  }
  return directives;
}

export interface AnswerRules {
  statuses: ReadonlySet<number>;
  ttlMs: number;
  respectCacheControl: boolean;
}

export type AnswerDecision = { store: true; ttlMs: number; vary: string[] } | { store: false; reason: string };

/** Whether an answer may be stored, for how long, and the request headers its variants are keyed by. */
export function answerDecision(status: number, headers: OutgoingHttpHeaders, rules: AnswerRules, now = Date.now()): AnswerDecision {
  if (!rules.statuses.has(status)) return { store: false, reason: `status ${status}` };
  if (headers['set-cookie'] !== undefined) return { store: false, reason: 'Set-Cookie' };
  if (headers['content-range'] !== undefined) return { store: false, reason: 'Content-Range' };
  const directives = parseCacheControl(headers['cache-control'] as string | string[] | undefined);
  for (const directive of ['no-store', 'no-cache', 'private']) if (directives.has(directive)) return { store: false, reason: `Cache-Control: ${directive}` };
  if (/\bno-cache\b/i.test(String(headers.pragma ?? '')) && !directives.has('max-age') && !directives.has('s-maxage')) return { store: false, reason: 'Pragma: no-cache' };
  const vary = parseVary(headers.vary);
  if (vary[0] === '*') return { store: false, reason: 'Vary: *' };
  // An encoded body was chosen for this client's Accept-Encoding, said in Vary or not.
  if (headers['content-encoding'] !== undefined && !vary.includes('accept-encoding')) {
    vary.push('accept-encoding');
    vary.sort();
  }
  let ttlMs = rules.ttlMs;
  if (rules.respectCacheControl) {
    const lifetime = freshnessLifetime(directives, headers, now);
    if (lifetime !== undefined) ttlMs = Math.min(ttlMs, lifetime);
  }
  if (ttlMs <= 0) return { store: false, reason: 'already stale' };
  return { store: true, ttlMs, vary };
}

/**
 * How long the upstream says its answer stays fresh, in ms: `s-maxage` (meant for shared caches, such as this
 * one), else `max-age`, else `Expires` (RFC 9111 §4.2.1). A malformed value means stale. Undefined: it does not say.
 */
function freshnessLifetime(directives: Map<string, string>, headers: OutgoingHttpHeaders, now: number): number | undefined {
  const seconds = directives.get('s-maxage') ?? directives.get('max-age');
  if (seconds !== undefined) return /^\d+$/.test(seconds) ? Number(seconds) * 1000 : 0;
  const expires = headers.expires;
  if (expires === undefined) return undefined;
  const at = Date.parse(String(expires));
  if (Number.isNaN(at)) return 0;
  const date = headers.date === undefined ? NaN : Date.parse(String(headers.date));
  return at - (Number.isNaN(date) ? now : date);
}

/**
 * True when a conditional request can be answered 304 from the stored headers: `If-None-Match` by weak
 * comparison of entity tags (it wins over `If-Modified-Since`, RFC 9110 §13.2.2), else `If-Modified-Since`
 * against `Last-Modified`.
 */
export function notModified(request: IncomingHttpHeaders, stored: Record<string, string | string[]>): boolean {
  const ifNoneMatch = request['if-none-match'];
  if (ifNoneMatch !== undefined) {
    const etag = stored.etag;
    if (typeof etag !== 'string') return false;
    if (ifNoneMatch.trim() === '*') return true;
    const wanted = opaque(etag);
    return (ifNoneMatch.match(/(?:W\/)?"[^"]*"/g) ?? []).some((tag) => opaque(tag) === wanted);
  }
  const since = request['if-modified-since'];
  const modified = stored['last-modified'];
  if (since === undefined || typeof modified !== 'string') return false;
  const sinceMs = Date.parse(since);
  const modifiedMs = Date.parse(modified);
  return !Number.isNaN(sinceMs) && !Number.isNaN(modifiedMs) && modifiedMs <= sinceMs;
}

function opaque(tag: string): string {
  const trimmed = tag.trim();
  return trimmed.startsWith('W/') ? trimmed.slice(2) : trimmed;
}
