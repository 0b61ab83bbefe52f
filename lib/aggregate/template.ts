/**
 * URL templates of aggregated calls: `/users/{consumer.id}/orders?limit={query.limit}`. Parsed once at
 * construction; at request time every value is percent-encoded for where it stands (a path segment or a query
 * value), so a `/`, `?`, `#`, `&` or `..` in a value can never change which resource is called.
 */
import { ConfigError } from '../errors';
import { closest } from '../options';

/** Where a placeholder's value comes from. */
export type Source =
  | { from: 'params' | 'query' | 'headers'; key: string }
  | { from: 'consumer'; key: 'id' | 'tier' }
  | { from: 'call'; call: string; path: string[] };

export interface Placeholder {
  /** As written, for messages: `{profile.segment}`. */
  text: string;
  source: Source;
}

/** A parsed path-and-query template. */
export interface UrlTemplate {
  path: Array<string | Placeholder>;
  /** The query string without `?`, or undefined when there is none. */
  query: Array<string | Placeholder> | undefined;
  /** The calls whose results the template reads. */
  calls: string[];
}

/** A placeholder's value at request time: undefined (or null, an object…) when there is none to use. */
export type Lookup = (source: Source) => unknown;

export type Rendered = { ok: true; url: string } | { ok: false; reason: string };

const SOURCES = ['params.<name>', 'query.<name>', 'headers.<name>', 'consumer.id', 'consumer.tier', '<call>.<field>'];
const CALL = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Characters a template's own text may not hold: they would end the target or make it ambiguous.
// eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
const FORBIDDEN = /[\s#\\\x00-\x1f\x7f{}]/;

/**
 * Parses `text` (starting with `/`). `callNames` are the calls a placeholder may name. Throws a ConfigError
 * naming `option` for an unknown placeholder, a call that does not exist, or a malformed template.
 */
export function compileTemplate(text: string, option: string, callNames: readonly string[]): UrlTemplate {
  if (typeof text !== 'string' || !text.startsWith('/')) throw new ConfigError(`"${option}" must be a path starting with "/"; received ${JSON.stringify(text)}.`);
  const q = text.indexOf('?');
  const calls = new Set<string>();
  const parse = (part: string) => tokens(part, option, callNames, calls);
  return { path: parse(q === -1 ? text : text.slice(0, q)), query: q === -1 ? undefined : parse(text.slice(q + 1)), calls: [...calls] };
}

function tokens(text: string, option: string, callNames: readonly string[], calls: Set<string>): Array<string | Placeholder> {
  const parts: Array<string | Placeholder> = [];
  let rest = text;
  while (rest !== '') {
    const open = rest.indexOf('{');
    const literal = open === -1 ? rest : rest.slice(0, open);
    if (FORBIDDEN.test(literal)) throw new ConfigError(`"${option}" has ${JSON.stringify(literal.match(FORBIDDEN)?.[0])} outside a placeholder; placeholders look like {params.id}, and the rest of a URL template is sent as written (percent-encode it yourself).`);
    if (literal) parts.push(literal);
    if (open === -1) break;
    const close = rest.indexOf('}', open);
    if (close === -1) throw new ConfigError(`"${option}" has a "{" without its "}".`);
    const inner = rest.slice(open + 1, close);
    const placeholder = { text: `{${inner}}`, source: parseSource(inner, option, callNames) };
    if (placeholder.source.from === 'call') calls.add(placeholder.source.call);
    parts.push(placeholder);
    rest = rest.slice(close + 1);
  }
  return parts;
}

function parseSource(inner: string, option: string, callNames: readonly string[]): Source {
  const dot = inner.indexOf('.');
  const head = dot === -1 ? inner : inner.slice(0, dot);
  const key = dot === -1 ? '' : inner.slice(dot + 1);
  if ((head === 'params' || head === 'query' || head === 'headers') && key) return { from: head, key: head === 'headers' ? key.toLowerCase() : key };
  if (head === 'consumer' && (key === 'id' || key === 'tier')) return { from: 'consumer', key };
  if (CALL.test(head) && callNames.includes(head) && key && key.split('.').every(Boolean)) return { from: 'call', call: head, path: key.split('.') };
  const known = ['params', 'query', 'headers', 'consumer', ...callNames];
  const suggestion = known.includes(head) ? undefined : closest(head, known);
  const hint = suggestion ? ` Did you mean {${suggestion}${key ? `.${key}` : ''}}?` : '';
  throw new ConfigError(`"${option}" uses the unknown placeholder {${inner}}.${hint} Known: ${SOURCES.map((source) => `{${source}}`).join(', ')}, where <call> is one of: ${callNames.join(', ') || 'none'}.`);
}

/**
 * Fills the template. Values are encoded with encodeURIComponent; a path segment that would come out empty or
 * as a dot segment (`.`, `..`) is refused, since either would name another resource. A placeholder without a
 * string, number or boolean value fails the render, with the reason.
 */
export function renderTemplate(template: UrlTemplate, lookup: Lookup): Rendered {
  const path = renderPath(template.path, lookup);
  if (!path.ok || template.query === undefined) return path;
  let query = '';
  for (const part of template.query) {
    if (typeof part === 'string') {
      query += part;
      continue;
    }
    const value = encoded(part, lookup);
    if (!value.ok) return value;
    query += value.url;
  }
  return { ok: true, url: `${path.url}?${query}` };
}

function renderPath(parts: ReadonlyArray<string | Placeholder>, lookup: Lookup): Rendered {
  let url = '';
  let segment = '';
  let filled: Placeholder | undefined;
  const endSegment = (): string | undefined => {
    // Only a segment a value went into is checked: the template's own text is the operator's.
    const reason = filled && (segment === '' ? `${filled.text} is empty, which would change the path` : DOT_SEGMENT.test(segment) ? `${filled.text} would make the path segment "${segment}"` : undefined);
    segment = '';
    filled = undefined;
    return reason;
  };
  for (const part of parts) {
    if (typeof part === 'string') {
      const pieces = part.split('/');
      for (let i = 0; i < pieces.length; i++) {
        if (i > 0) {
          const reason = endSegment();
          if (reason) return { ok: false, reason };
          url += '/';
        }
        segment += pieces[i];
        url += pieces[i];
      }
      continue;
    }
    const value = encoded(part, lookup);
    if (!value.ok) return value;
    segment += value.url;
    url += value.url;
    filled = part;
  }
  const reason = endSegment();
  return reason ? { ok: false, reason } : { ok: true, url };
}

const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

function encoded(placeholder: Placeholder, lookup: Lookup): Rendered {
  const value = lookup(placeholder.source);
  if (value === undefined || value === null) return { ok: false, reason: `${placeholder.text} has no value` };
  if (typeof value !== 'string' && typeof value !== 'boolean' && !(typeof value === 'number' && Number.isFinite(value))) {
    return { ok: false, reason: `${placeholder.text} is not a string or a number` };
  }
  try {
    return { ok: true, url: encodeURIComponent(String(value)) };
  } catch {
    // A lone UTF-16 surrogate has no UTF-8 encoding.
    return { ok: false, reason: `${placeholder.text} cannot be encoded in a URL` };
  }
}

/** The value at `path` in `value`, by own properties only (never `__proto__` or an inherited member). */
export function valueAt(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || !Object.prototype.hasOwnProperty.call(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}
