/**
 * HTTP rules: which RPC a method and path call, and which request fields the path fills. Path templates follow
 * google.api.http (as Envoy's transcoder and grpc-gateway read them):
 *
 *   Template = "/" Segments [ ":" Verb ] ;  Segment = "*" | "**" | LITERAL | "{" FieldPath [ "=" Segments ] "}"
 *
 * `*` is one segment, `**` the rest of the path (last only), `{id}` is `{id=*}`; `{name=shelves/*}` binds several
 * segments. Explicit route mappings (`'GET /items/:id'`) compile to the same templates.
 */

/** One piece of a template: a literal segment, one segment (`*`) or the rest of the path (`**`). */
type Segment = { kind: 'literal'; value: string } | { kind: 'one' } | { kind: 'rest' };

/** A variable: the field path it fills and the segments it spans (`end` undefined: to the end of the path). */
interface Variable {
  field: string[];
  start: number;
  end: number | undefined;
}

export interface PathTemplate {
  /** As written, for messages. */
  source: string;
  segments: Segment[];
  verb: string | undefined;
  variables: Variable[];
}

/** How the HTTP request fills the request message (google.api.HttpRule `body`). */
export type BodyRule = { kind: 'none' } | { kind: 'all' } | { kind: 'field'; field: string[] };

/** A method and path template bound to an RPC. */
export interface Binding<M> {
  httpMethod: string;
  template: PathTemplate;
  body: BodyRule;
  /** The field of the response sent as the answer (`response_body`), when not the whole message. */
  responseBody: string[] | undefined;
  method: M;
}

export interface BindingMatch<M> {
  binding: Binding<M>;
  /** Field path (dotted) → value, percent-decoded. */
  pathFields: Array<[string[], string]>;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LITERAL = /^[A-Za-z0-9\-._~!$&'()+,;=@%]+$/;

/** Parses a path template; throws an Error saying what is wrong (the caller names the option). */
export function parseTemplate(source: string): PathTemplate {
  if (typeof source !== 'string' || !source.startsWith('/')) throw new Error(`the path template ${JSON.stringify(source)} must start with "/"`);
  let body = source.slice(1);
  let verb: string | undefined;
  // The verb follows the last ':' outside braces.
  let depth = 0;
  for (let i = body.length - 1; i >= 0; i--) {
    const char = body[i];
    if (char === '}') depth += 1;
    else if (char === '{') depth -= 1;
    else if (char === ':' && depth === 0) {
      verb = body.slice(i + 1);
      body = body.slice(0, i);
      if (!LITERAL.test(verb)) throw new Error(`the verb of ${JSON.stringify(source)} is not a literal`);
      break;
    } else if (char === '/' && depth === 0) break;
  }
  const segments: Segment[] = [];
  const variables: Variable[] = [];
  const parts = splitOutsideBraces(body, source);
  for (const part of parts) {
    if (part.startsWith('{')) {
      if (!part.endsWith('}')) throw new Error(`${JSON.stringify(source)} has an unclosed "{"`);
      const inner = part.slice(1, -1);
      const eq = inner.indexOf('=');
      const fieldPath = (eq === -1 ? inner : inner.slice(0, eq)).split('.');
      if (!fieldPath.every((name) => IDENT.test(name))) throw new Error(`${JSON.stringify(source)} has a variable whose field path is not valid: ${JSON.stringify(inner)}`);
      if (variables.some((variable) => variable.field.join('.') === fieldPath.join('.'))) throw new Error(`${JSON.stringify(source)} binds ${fieldPath.join('.')} twice`);
      const start = segments.length;
      const pattern = eq === -1 ? ['*'] : inner.slice(eq + 1).split('/');
      for (const piece of pattern) segments.push(segmentOf(piece, source, true));
      const spansRest = segments[segments.length - 1].kind === 'rest';
      variables.push({ field: fieldPath, start, end: spansRest ? undefined : segments.length });
      continue;
    }
    segments.push(segmentOf(part, source, false));
  }
  const restAt = segments.findIndex((segment) => segment.kind === 'rest');
  if (restAt !== -1 && restAt !== segments.length - 1) throw new Error(`${JSON.stringify(source)} has "**" before its last segment`);
  return { source, segments, verb, variables };
}

function splitOutsideBraces(body: string, source: string): string[] {
  if (body === '') return [];
  const parts: string[] = [];
  let current = '';
  let depth = 0;
  for (const char of body) {
    if (char === '{') {
      if (depth > 0) throw new Error(`${JSON.stringify(source)} nests variables`);
      depth = 1;
    } else if (char === '}') depth = 0;
    if (char === '/' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += char;
  }
  if (depth !== 0) throw new Error(`${JSON.stringify(source)} has an unclosed "{"`);
  parts.push(current);
  return parts;
}

function segmentOf(piece: string, source: string, inVariable: boolean): Segment {
  if (piece === '*') return { kind: 'one' };
  if (piece === '**') return { kind: 'rest' };
  if (piece === '' || !LITERAL.test(piece) || (piece.includes('{') && !inVariable)) throw new Error(`${JSON.stringify(source)} has an empty or invalid segment ${JSON.stringify(piece)}`);
  return { kind: 'literal', value: piece };
}

/** Turns an Express-style path (`/items/:id`, `/files/*`) into a template (`/items/{id}`, `/files/**`). */
export function expressToTemplate(path: string): string {
  return path
    .split('/')
    .map((segment) => (segment.startsWith(':') ? `{${segment.slice(1)}}` : segment === '*' ? '**' : segment))
    .join('/');
}

/**
 * Matches `path` (normalised, without query; segments still percent-encoded) against `template`. Returns the
 * variables' values, or undefined.
 */
export function matchTemplate(template: PathTemplate, path: string): Array<[string[], string]> | undefined {
  let rest = path.slice(1);
  if (template.verb !== undefined) {
    const suffix = `:${template.verb}`;
    if (!rest.endsWith(suffix)) return undefined;
    rest = rest.slice(0, -suffix.length);
  }
  const segments = rest === '' ? [] : rest.split('/');
  const { segments: expected } = template;
  const open = expected.length > 0 && expected[expected.length - 1].kind === 'rest';
  if (open ? segments.length < expected.length - 1 : segments.length !== expected.length) return undefined;
  for (let i = 0; i < expected.length; i++) {
    const want = expected[i];
    if (want.kind === 'rest') break;
    if (want.kind === 'one') {
      if (segments[i] === '') return undefined;
      continue;
    }
    if (decode(segments[i]) !== want.value) return undefined;
  }
  const values: Array<[string[], string]> = [];
  for (const variable of template.variables) {
    const taken = segments.slice(variable.start, variable.end);
    // One segment is decoded whole; several keep their slashes as separators.
    values.push([variable.field, taken.map(decode).join('/')]);
  }
  return values;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * The binding list, most specific first: a verb before none, then more literal segments, then fixed length
 * before `**`; otherwise in the order given (annotations, then `methods`, then the fallback).
 */
export function orderBindings<M>(bindings: Array<Binding<M>>): Array<Binding<M>> {
  const score = (binding: Binding<M>) => {
    const { segments, verb } = binding.template;
    return [verb === undefined ? 1 : 0, -segments.filter((segment) => segment.kind === 'literal').length, segments.some((segment) => segment.kind === 'rest') ? 1 : 0];
  };
  return bindings
    .map((binding, index) => ({ binding, index, key: score(binding) }))
    .sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.key[2] - b.key[2] || a.index - b.index)
    .map((entry) => entry.binding);
}

/** The first binding of `bindings` (ordered) for the method and path. */
export function findBinding<M>(bindings: ReadonlyArray<Binding<M>>, httpMethod: string, path: string): BindingMatch<M> | undefined {
  for (const binding of bindings) {
    if (binding.httpMethod !== httpMethod) continue;
    const pathFields = matchTemplate(binding.template, path);
    if (pathFields) return { binding, pathFields };
  }
  return undefined;
}

/** True when some binding's template matches the path with another method (a 405 rather than a 404). */
export function pathIsBound<M>(bindings: ReadonlyArray<Binding<M>>, path: string): string[] {
  return [...new Set(bindings.filter((binding) => matchTemplate(binding.template, path) !== undefined).map((binding) => binding.httpMethod))];
}
