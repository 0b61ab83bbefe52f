/**
 * Builds an RPC's request message from an HTTP request by its binding, as google.api.http says: the body fills the
 * whole message (`body: "*"`) or one field (`body: "item"`), path variables fill the fields they name, and query
 * parameters fill the fields neither bound (`?page_size=10&tags=a&tags=b&min_dims.width=3`; json names work too).
 * Query parameters that name no field are ignored, as grpc-gateway does; everything else that does not fit is a
 * FieldError.
 */
import type { BodyRule, PathTemplate } from './http-rule';
import { FieldError, fieldNamed, fromJson, Text } from './json-mapping';
import { protobuf } from './protos';
import type { Protobuf } from './protos';

/** Well-known message types whose JSON form is a string or a scalar, so a path or query value can fill them. */
const TEXT_MESSAGES = new Set(['Timestamp', 'Duration', 'FieldMask', 'DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value', 'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue'].map((name) => `.google.protobuf.${name}`));

/** The fields along `path` from `type`, or a reason it does not resolve. */
function resolvePath(type: Protobuf.Type, path: readonly string[]): Protobuf.Field[] | string {
  const fields: Protobuf.Field[] = [];
  let current: Protobuf.Type = type;
  for (let i = 0; i < path.length; i++) {
    const field = fieldNamed(current, path[i]);
    if (!field) return `${current.fullName.slice(1)} has no field ${path[i]}`;
    fields.push(field);
    if (i === path.length - 1) break;
    if (!(field.resolvedType instanceof protobuf.Type) || field.repeated || field.map) return `${path.slice(0, i + 1).join('.')} is not a singular message field`;
    current = field.resolvedType;
  }
  return fields;
}

/** True when a text value (path, query) can fill the field: a scalar, an enum, or a string-form well-known type. */
function takesText(field: Protobuf.Field): boolean {
  if (field.map) return false;
  return !(field.resolvedType instanceof protobuf.Type) || TEXT_MESSAGES.has(field.resolvedType.fullName);
}

/**
 * Checks a binding against its RPC's types at construction: every path variable names a singular text field,
 * the body field and the response field exist. Returns what is wrong, or undefined.
 */
export function bindingProblem(template: PathTemplate, body: BodyRule, responseBody: string[] | undefined, requestType: Protobuf.Type, responseType: Protobuf.Type): string | undefined {
  for (const variable of template.variables) {
    const fields = resolvePath(requestType, variable.field);
    if (typeof fields === 'string') return `the path variable {${variable.field.join('.')}}: ${fields}`;
    const leaf = fields[fields.length - 1];
    if (leaf.repeated || !takesText(leaf)) return `the path variable {${variable.field.join('.')}} names a field that a path segment cannot fill (a list, map or message)`;
  }
  if (body.kind === 'field') {
    const fields = resolvePath(requestType, body.field);
    if (typeof fields === 'string') return `body "${body.field.join('.')}": ${fields}`;
  }
  if (responseBody) {
    const fields = resolvePath(responseType, responseBody);
    if (typeof fields === 'string') return `response_body "${responseBody.join('.')}": ${fields}`;
  }
  return undefined;
}

export interface HttpInput {
  /** The JSON body, parsed (undefined when there is none). */
  body: unknown;
  /** Path variables: field path → decoded value. */
  pathFields: ReadonlyArray<readonly [string[], string]>;
  /** The query string, without `?`. */
  query: string;
  /** Query parameters the route's policies took (an API key): never read. */
  removeQuery: ReadonlySet<string> | undefined;
}

/** The request message's plain object (for `type.fromObject`), or a FieldError. */
export function requestObject(type: Protobuf.Type, body: BodyRule, input: HttpInput): Record<string, unknown> {
  let tree: Record<string, unknown>;
  if (body.kind === 'all') {
    if (input.body === undefined) tree = {};
    else if (input.body === null || typeof input.body !== 'object' || Array.isArray(input.body)) throw new FieldError('', `The body must be a JSON object (${type.name}).`);
    else tree = { ...(input.body as Record<string, unknown>) };
  } else {
    tree = {};
    if (body.kind === 'field' && input.body !== undefined) setAt(tree, type, body.field, input.body);
  }
  for (const [path, value] of input.pathFields) setAt(tree, type, path, new Text(value));
  if (body.kind !== 'all' && input.query !== '') fillFromQuery(tree, type, body, input);
  return fromJson(type, tree);
}

function fillFromQuery(tree: Record<string, unknown>, type: Protobuf.Type, body: BodyRule, input: HttpInput): void {
  const bound = input.pathFields.map(([path]) => path.join('.'));
  const values = new Map<string, string[]>();
  for (const [key, value] of new URLSearchParams(input.query)) {
    if (input.removeQuery?.has(key)) continue;
    const list = values.get(key);
    if (list) list.push(value);
    else values.set(key, [value]);
  }
  for (const [key, list] of values) {
    const path = key.split('.');
    const fields = resolvePath(type, path);
    // A parameter that names no field is not the message's (a cache buster, tracking): ignored, as grpc-gateway does.
    if (typeof fields === 'string') continue;
    const canonical = fields.map((field) => field.name).join('.');
    if (bound.some((name) => name === canonical || canonical.startsWith(`${name}.`))) continue;
    if (body.kind === 'field' && (canonical === body.field.join('.') || canonical.startsWith(`${body.field.join('.')}.`))) continue;
    const leaf = fields[fields.length - 1];
    if (!takesText(leaf)) throw new FieldError(key, 'is a message, list of messages or map: it cannot be set from the query string; set its fields (`a.b=…`).');
    if (leaf.repeated) setAt(tree, type, path, list.map((value) => new Text(value)));
    else if (list.length > 1) throw new FieldError(key, 'is given more than once in the query string, but holds one value.');
    else setAt(tree, type, path, new Text(list[0]));
  }
}

/** Sets `value` at the field path in the JSON tree, under proto names, replacing what the body had there under either name. */
function setAt(tree: Record<string, unknown>, type: Protobuf.Type, path: readonly string[], value: unknown): void {
  let node = tree;
  let current = type;
  for (let i = 0; i < path.length; i++) {
    const field = fieldNamed(current, path[i]);
    if (!field) throw new FieldError(path.slice(0, i + 1).join('.'), `is not a field of ${current.fullName.slice(1)}.`);
    const aliases = [...new Set([field.name, ...Object.keys(node).filter((key) => fieldNamed(current, key) === field)])];
    if (i === path.length - 1) {
      for (const alias of aliases) delete node[alias];
      node[field.name] = value;
      return;
    }
    const existing = aliases.map((alias) => node[alias]).find((item) => item !== undefined && item !== null);
    if (existing !== undefined && (typeof existing !== 'object' || Array.isArray(existing) || existing instanceof Text)) {
      throw new FieldError(path.slice(0, i + 1).join('.'), 'must be a JSON object.');
    }
    for (const alias of aliases) delete node[alias];
    const child: Record<string, unknown> = { ...((existing as Record<string, unknown> | undefined) ?? {}) };
    node[field.name] = child;
    node = child;
    current = field.resolvedType as Protobuf.Type;
  }
}
