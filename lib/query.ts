/**
 * Query-string edits that keep the rest of the query byte for byte (no re-encoding): upstreams may verify
 * signatures over the raw query.
 */

/** The decoded name of one `name=value` pair of a query string, as URLSearchParams reads it. */
function queryName(pair: string): string {
  const eq = pair.indexOf('=');
  const raw = (eq === -1 ? pair : pair.slice(0, eq)).replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** `url` without the query parameters named in `names`. */
export function withoutQueryParameters(url: string, names: ReadonlySet<string>): string {
  const q = url.indexOf('?');
  if (q === -1 || names.size === 0) return url;
  const pairs = url.slice(q + 1).split('&');
  const kept = pairs.filter((pair) => !names.has(queryName(pair)));
  if (kept.length === pairs.length) return url;
  const rest = kept.join('&');
  return url.slice(0, q) + (rest ? `?${rest}` : '');
}
