/**
 * Route paths as Express users write them: literal segments, `:name` segments (one non-empty segment,
 * its value available as a parameter), and a trailing `/*`, which means what a route path already means:
 * "this prefix and everything under it". Matching is segment by segment on the normalised path.
 */
import { ConfigError } from './errors';
import { normalisePath } from './path';

export interface RoutePath {
  /** The literal part before the first `:name` segment: a fast first check. No trailing slash; '' for '/'. */
  literalPrefix: string;
  /** Every segment: a literal (compared as matched: lower-case unless case-sensitive) or a parameter name. */
  segments: Array<{ literal: string } | { param: string }>;
  /** `:name` segments exist. */
  hasParams: boolean;
  /** Literal segments: a literal outranks a parameter at the same depth. */
  literals: number;
  /** The path with parameter names erased (`/users/:/orders`): two routes with the same shape shadow each other. */
  shape: string;
}

const PARAM = /^:([A-Za-z_][A-Za-z0-9_]*)$/;
// Characters of Express's (path-to-regexp) patterns that frontdoor does not support.
const PATTERN_CHARS = /[()?+*{}[\]!$^|]/;

/** Compiles a route's `path`, throwing a ConfigError that shows the supported forms. */
export function compileRoutePath(path: unknown, option: string, caseSensitive: boolean): RoutePath {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new ConfigError(`"${option}" must be a path starting with "/"; received ${JSON.stringify(path)}.`);
  }
  const trimmed = path.endsWith('/*') ? path.slice(0, -2) || '/' : path;
  const supported = `Supported: literal segments, ":name" segments and a trailing "/*", e.g. '/api/users/:id/orders' or '/api/orders/*'.`;
  const raw = trimmed.split('/').filter(Boolean);
  const segments: RoutePath['segments'] = [];
  const names = new Set<string>();
  for (const segment of raw) {
    if (segment.startsWith(':')) {
      const name = PARAM.exec(segment)?.[1];
      if (!name) throw new ConfigError(`"${option}" has the segment ${JSON.stringify(segment)}: a parameter is ":" and a name of letters, digits and "_". ${supported}`);
      if (names.has(name)) throw new ConfigError(`"${option}" names the parameter ":${name}" twice.`);
      names.add(name);
      segments.push({ param: name });
      continue;
    }
    const bad = PATTERN_CHARS.exec(segment);
    if (bad) throw new ConfigError(`"${option}" uses the pattern character ${JSON.stringify(bad[0])} in ${JSON.stringify(path)}, which frontdoor does not support. ${supported}`);
    segments.push({ literal: segment });
  }
  const literalPath = '/' + segments.map((segment) => ('literal' in segment ? segment.literal : 'x')).join('/');
  const normalised = normalisePath(literalPath);
  if (!normalised.ok) throw new ConfigError(`"${option}" is not a normalised path: ${normalised.reason}`);
  const normalisedSegments = normalised.path.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    if ('literal' in segment) segment.literal = caseSensitive ? normalisedSegments[i] : normalisedSegments[i].toLowerCase();
  }
  const firstParam = segments.findIndex((segment) => 'param' in segment);
  const literalSegments = firstParam === -1 ? segments : segments.slice(0, firstParam);
  return {
    literalPrefix: literalSegments.map((segment) => `/${(segment as { literal: string }).literal}`).join(''),
    segments,
    hasParams: firstParam !== -1,
    literals: segments.filter((segment) => 'literal' in segment).length,
    shape: '/' + segments.map((segment) => ('literal' in segment ? segment.literal : ':')).join('/'),
  };
}

/** Whether `candidate` (normalised, lower-cased when matching is case-insensitive) is the route's path or under it. */
export function matchesSegments(candidate: string, route: RoutePath): boolean {
  let position = 0;
  for (const segment of route.segments) {
    if (candidate.charCodeAt(position) !== 47 /* '/' */) return false;
    const end = candidate.indexOf('/', position + 1);
    const value = candidate.slice(position + 1, end === -1 ? candidate.length : end);
    if ('literal' in segment ? value !== segment.literal : value === '') return false;
    position = end === -1 ? candidate.length : end;
  }
  return position === candidate.length || candidate.charCodeAt(position) === 47;
}

/** The route's parameters in `path` (already known to match), percent-decoded as Express decodes them. */
export function paramsOf(path: string, route: RoutePath): Record<string, string> {
  const values = path.split('/');
  const params: Record<string, string> = {};
  route.segments.forEach((segment, index) => {
    if (!('param' in segment)) return;
    const raw = values[index + 1] ?? '';
    try {
      params[segment.param] = decodeURIComponent(raw);
    } catch {
      params[segment.param] = raw;
    }
  });
  return params;
}
