/**
 * Cache keys. An entry is found by what makes two requests ask for the same answer: the method class (GET and
 * HEAD share entries), the host, the normalised path, the query with its parameters sorted (cache-busting ones
 * left out) and, with `perConsumer`, the consumer. The path comes first so that a path, or everything under a
 * prefix, can be purged by looking at keys alone.
 */
import type { IncomingMessage } from 'node:http';

/** Separates the path from the rest of a key; a normalised path never holds a control character. */
export const KEY_SEPARATOR = '\u001f';

/** The parts of a request's primary key (before Vary). */
export interface KeyParts {
  /** The normalised path, as the client sent it (before any rewrite or stripPath). */
  path: string;
  host: string;
  /** The normalised query (see normaliseQuery()). */
  query: string;
  /** `scheme:id` of the consumer with `perConsumer`, '' otherwise (and for anonymous requests). */
  consumer: string;
}

/** The primary key: path first, then the other parts as JSON (unambiguous whatever they hold). */
export function primaryKey(parts: KeyParts): string {
  return parts.path + KEY_SEPARATOR + JSON.stringify(['GET', parts.host, parts.query, parts.consumer]);
}

/** The path a key belongs to. */
export function pathOfKey(key: string): string {
  const end = key.indexOf(KEY_SEPARATOR);
  return end === -1 ? key : key.slice(0, end);
}

/** True when `path` is `target` or lies under it (segment-aware when `prefix`: `/a` covers `/a/b`, not `/ab`). */
export function pathMatches(path: string, target: string, prefix: boolean): boolean {
  if (path === target) return true;
  if (!prefix || !path.startsWith(target)) return false;
  return target.endsWith('/') || path.charCodeAt(target.length) === 47; /* '/' */
}

/**
 * The query, normalised: parameters sorted by name (the order of repeated names is kept: `a=1&a=2` may mean
 * something else than `a=2&a=1`), `ignore`d names left out, every name and value encoded one way.
 */
export function normaliseQuery(search: string, ignore: ReadonlySet<string>): string {
  if (search.length <= 1) return '';
  const pairs: Array<[string, string]> = [];
  for (const pair of new URLSearchParams(search.slice(1))) if (!ignore.has(pair[0])) pairs.push(pair);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); // Array.prototype.sort is stable
  return pairs.map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`).join('&');
}

/** The request headers an answer varies on, lower-cased and sorted; `['*']` for `Vary: *`. */
export function parseVary(value: string | string[] | number | undefined): string[] {
  if (value === undefined) return [];
  const names = new Set<string>();
  for (const part of String(value).split(',')) {
    const name = part.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names.has('*') ? ['*'] : [...names].sort();
}

/** The key of the variant of `primary` that `req` selects, given the headers the answer varies on. */
export function variantKey(primary: string, vary: readonly string[], req: IncomingMessage): string {
  const values = vary.map((name) => {
    const value = req.headers[name];
    if (value === undefined) return null;
    // Whitespace around commas and runs of spaces do not make another variant (RFC 9111 §4.1).
    return (Array.isArray(value) ? value.join(',') : value).replace(/\s*,\s*/g, ',').replace(/\s+/g, ' ').trim();
  });
  return primary + KEY_SEPARATOR + JSON.stringify(values);
}
