/**
 * Request-path normalisation. Routes are matched, and requests forwarded, on the normalised path, so
 * `..`, `%2e%2e`, encoded slashes and doubled slashes cannot make a request skip a route's policies
 * or reach a path the route does not allow.
 */

export type NormalisedPath =
  | { ok: true; path: string }
  | { ok: false; reason: string; /** best-effort decoding, used only to decide whether a route is concerned */ lenient: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * Normalises a request pathname (no query string):
 * - percent-encoded unreserved characters are decoded (`%61` → `a`), other escapes are upper-cased;
 * - runs of slashes collapse to one;
 * - rejected: encoded `/` or `\` (`%2F`, `%5C`), a raw `\`, NUL or control characters, malformed escapes,
 *   and `.` / `..` segments in any spelling.
 */
export function normalisePath(pathname: string): NormalisedPath {
  // Fast path: the common, already-clean path needs no work.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
  if (!/%|\/\/|\/\.|\\|[\x00-\x1f\x7f]/.test(pathname) && pathname.startsWith('/')) return { ok: true, path: pathname };
  const fail = (reason: string): NormalisedPath => ({ ok: false, reason, lenient: lenientPath(pathname) });
  if (!pathname.startsWith('/')) return fail('The path must start with "/".');

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
  for (const segment of collapsed.split('/')) {
    if (segment === '.' || segment === '..') return fail('The path contains a "." or ".." segment.');
  }
  return { ok: true, path: collapsed };
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
  for (const segment of decoded.replace(/\\/g, '/').split('/')) {
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
