/**
 * Request-path normalisation. Routes are matched, and requests forwarded, on the normalised path, so
 * `..`, `%2e%2e`, encoded slashes and doubled slashes cannot make a request skip a route's policies
 * or reach a path the route does not allow.
 */
import type { IncomingMessage } from 'node:http';

export type NormalisedPath =
  | {
      ok: true;
      /** The path to forward. */
      path: string;
      /** The path to match routes on, when it differs from `path`: `path` without its `;` segment parameters. */
      match?: string;
    }
  | { ok: false; reason: string; /** best-effort decoding, used only to decide whether a route is concerned */ lenient: string };

export interface PathOptions {
  /**
   * Accept `;` path parameters (`/orders;jsessionid=1/7`). Off by default, as in Spring's firewall: Tomcat,
   * Jetty and Spring read `/admin;x/y` as `/admin/y` and `/..;/` as `..`. When on, routes are matched on the
   * segment names without their parameters (as those servers read them), and a dot segment with parameters
   * is still a dot segment.
   */
  semicolons?: boolean;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * Normalises a request pathname (no query string):
 * - percent-encoded unreserved characters are decoded (`%61` → `a`), other escapes are upper-cased;
 * - runs of slashes collapse to one;
 * - rejected: encoded `/` or `\` (`%2F`, `%5C`), a raw `\`, NUL or control characters, malformed escapes,
 *   `.` / `..` segments in any spelling, a raw `#` (a request target has no fragment, RFC 9112 §3.2), and
 *   `;` path parameters unless `options.semicolons` (see PathOptions).
 */
export function normalisePath(pathname: string, options?: PathOptions): NormalisedPath {
  // Fast path: the common, already-clean path needs no work.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
  if (!/[%;#\\\x00-\x1f\x7f]|\/\/|\/\./.test(pathname) && pathname.startsWith('/')) return { ok: true, path: pathname };
  const fail = (reason: string): NormalisedPath => ({ ok: false, reason, lenient: lenientPath(pathname) });
  if (!pathname.startsWith('/')) return fail('The path must start with "/".');
  if (pathname.includes('#')) return fail('The request target contains "#": a fragment is never sent to a server.');
  const semicolons = options?.semicolons === true;
  if (!semicolons && pathname.includes(';')) return fail('The path contains ";" (path parameters), which this gateway does not accept.');

  let decoded = '';
  for (let i = 0; i < pathname.length; i++) {
    const char = pathname[i];
    if (char === '%') {
      const hex = pathname.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return fail('The path contains a malformed percent-encoding.');
      const code = parseInt(hex, 16);
      const literal = String.fromCharCode(code);
      if (literal === '/' || literal === '\\') return fail('The path contains an encoded slash or backslash.');
      if (code < 0x20 || code === 0x7f) return fail('The path contains an encoded control character.');
      // Refused even with `semicolons`: servers disagree on whether an encoded ';' separates parameters
      // (some decode before they split), so the path could be read two ways.
      if (literal === ';') return fail('The path contains an encoded ";" (%3B), which servers read in different ways.');
      decoded += UNRESERVED.test(literal) ? literal : '%' + hex.toUpperCase();
      i += 2;
    } else if (char === '\\') {
      return fail('The path contains a backslash.');
    } else if (char < ' ' || char === '\x7f') {
      return fail('The path contains a control character.');
    } else {
      decoded += char;
    }
  }
  const collapsed = decoded.replace(/\/{2,}/g, '/');
  if (!semicolons || !collapsed.includes(';')) {
    for (const segment of collapsed.split('/')) {
      if (segment === '.' || segment === '..') return fail('The path contains a "." or ".." segment.');
    }
    return { ok: true, path: collapsed };
  }
  // A segment is named by what precedes its first ';' (`..;x` is `..`, `admin;jsessionid=1` is `admin`).
  const names = collapsed.split('/').map((segment) => {
    const semicolon = segment.indexOf(';');
    return semicolon === -1 ? segment : segment.slice(0, semicolon);
  });
  for (const name of names) {
    if (name === '.' || name === '..') return fail('The path contains a "." or ".." segment.');
  }
  return { ok: true, path: collapsed, match: names.join('/').replace(/\/{2,}/g, '/') };
}

/** A request target (path and query) checked and normalised: what routes match on and what is forwarded. */
export type NormalisedTarget = (NormalisedPath & { search: string; pathname: string });

/**
 * Splits a request URL and normalises its path. A `#` anywhere in the target is refused: http-proxy's URL
 * parser would cut it off, so the upstream would read another path than the one matched.
 */
export function normaliseTarget(url: string, options?: PathOptions): NormalisedTarget {
  const { pathname, search } = splitUrl(url);
  if (search.includes('#')) return { ok: false, reason: 'The request target contains "#": a fragment is never sent to a server.', lenient: lenientPath(pathname), search, pathname };
  // normalisePath() returns a fresh object: completed in place, one allocation per request instead of two.
  const target = normalisePath(pathname || '/', options) as NormalisedTarget;
  target.search = search;
  target.pathname = pathname;
  return target;
}

/** Drops the first `count` segments of a normalised path (`stripPath`), keeping any `;` parameters of the rest. */
export function dropSegments(path: string, count: number): string {
  if (count === 0) return path;
  let index = 0;
  for (let seen = 0; seen < count; seen++) {
    index = path.indexOf('/', index + 1);
    if (index === -1) return '/';
  }
  return path.slice(index) || '/';
}

/** Decodes everything and resolves dot segments, as a lenient upstream might: only for route lookup. */
function lenientPath(pathname: string): string {
  let decoded = pathname;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    // keep the raw form
  }
  const out: string[] = [];
  // What a lenient upstream would read: no fragment, no `;` parameters, dot segments resolved.
  const hash = decoded.indexOf('#');
  if (hash !== -1) decoded = decoded.slice(0, hash);
  for (const raw of decoded.replace(/\\/g, '/').split('/')) {
    const semicolon = raw.indexOf(';');
    const segment = semicolon === -1 ? raw : raw.slice(0, semicolon);
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return '/' + out.join('/');
}

/** Splits a request URL into pathname and the query suffix (including `?`, or ''). */
export function splitUrl(url: string): { pathname: string; search: string } {
  const q = url.indexOf('?');
  return q === -1 ? { pathname: url, search: '' } : { pathname: url.slice(0, q), search: url.slice(q) };
}

/**
 * The path a middleware is mounted at: Express's `baseUrl`, or, on connect (which keeps no mount path), what
 * was stripped from the front of `originalUrl`. On connect a middleware before it that rewrites
 * `req.url` to a suffix of the original path looks like a mount at the prefix it dropped.
 */
export function mountPathOf(req: IncomingMessage): string {
  const { baseUrl, originalUrl } = req as { baseUrl?: string; originalUrl?: string };
  if (baseUrl !== undefined) return baseUrl;
  if (!originalUrl || !req.url) return '';
  const original = splitUrl(originalUrl).pathname;
  const current = splitUrl(req.url).pathname;
  if (original.length > current.length && original.endsWith(current)) return original.slice(0, original.length - current.length);
  // connect turns a request for exactly the mount path into '/'.
  if (current === '/' && original !== '/') return original.replace(/\/$/, '');
  return '';
}
