/**
 * JSON ↔ protobuf messages by the canonical proto3 JSON mapping, strictly: field names as lowerCamelCase json names
 * (the proto names are accepted on input too), int64 as decimal strings, enums by name, bytes as base64, and the
 * well-known types in their own forms (Timestamp, Duration, wrappers, Struct/Value/ListValue, FieldMask, Any,
 * Empty). A field the message does not have, a value of the wrong kind, two members of one oneof: a FieldError
 * naming the field, which the bridge answers with a 400 before anything is sent.
 *
 * Input values that came from a path or a query string are Text: a string read as the field's type (`"true"` for a
 * bool, `"7"` for an int32, a name or number for an enum).
 */
import type { Protobuf } from './protos';
import { protobuf } from './protos';
import { formatDuration, formatFieldMask, formatTimestamp, parseDuration, parseFieldMask, parseTimestamp } from './well-known';

/** A value given as text (path variable, query parameter), read as its field's type. */
export class Text {
  constructor(readonly value: string) {}
}

/** A value that does not fit the message; `path` is the field path as the client wrote it (`item.quantity`). */
export class FieldError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(path ? `"${path}" ${message}` : message);
    this.name = 'FieldError';
  }
}

export interface ToJsonOptions {
  /** Print fields at their default value (0, "", false, [], {}; null for unset messages), as grpc-gateway does. */
  emitDefaults: boolean;
}

const MAX_DEPTH = 100;
const INT32 = { min: -2147483648, max: 2147483647 };
const UINT32 = { min: 0, max: 4294967295 };
const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64 = { min: 0n, max: 2n ** 64n - 1n };
const SIGNED_32 = new Set(['int32', 'sint32', 'sfixed32']);
const UNSIGNED_32 = new Set(['uint32', 'fixed32']);
const SIGNED_64 = new Set(['int64', 'sint64', 'sfixed64']);
const UNSIGNED_64 = new Set(['uint64', 'fixed64']);
const WRAPPERS = new Set(['DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value', 'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue'].map((name) => `.google.protobuf.${name}`));

/** The json name of a field: its `json_name` option, or its name in lowerCamelCase. */
export function jsonNameOf(field: Protobuf.Field): string {
  const declared = field.options?.json_name;
  return typeof declared === 'string' ? declared : field.name.replace(/_+([a-zA-Z0-9])/g, (_match, char: string) => char.toUpperCase());
}

const indexes = new WeakMap<Protobuf.Type, Map<string, Protobuf.Field>>();

/** The field of `type` called `name` (json name or proto name). */
export function fieldNamed(type: Protobuf.Type, name: string): Protobuf.Field | undefined {
  let index = indexes.get(type);
  if (!index) {
    index = new Map();
    for (const field of type.fieldsArray) {
      index.set(field.name, field);
      index.set(jsonNameOf(field), field);
    }
    indexes.set(type, index);
  }
  return index.get(name);
}

/** JSON (with Text leaves) → the plain object `type.fromObject()` takes (proto names, Long strings, Buffers, enum numbers). */
export function fromJson(type: Protobuf.Type, json: unknown, path = '', depth = 0): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new FieldError(path, 'is nested too deeply.');
  const special = wellKnownFromJson(type, json, path, depth);
  if (special !== undefined) return special;
  if (json instanceof Text || json === null || typeof json !== 'object' || Array.isArray(json)) throw new FieldError(path, `must be a JSON object (${type.name}).`);
  const out: Record<string, unknown> = {};
  const oneofs = new Map<string, string>();
  for (const [key, value] of Object.entries(json)) {
    const where = path ? `${path}.${key}` : key;
    const field = fieldNamed(type, key);
    if (!field) throw new FieldError(where, `is not a field of ${type.fullName.slice(1)}.`);
    if (Object.prototype.hasOwnProperty.call(out, field.name)) throw new FieldError(where, `is given twice (as ${field.name} and ${jsonNameOf(field)}).`);
    // null means "not set", except for a google.protobuf.Value, where it is the JSON null.
    if (value === null && !(field.resolvedType && field.resolvedType.fullName === '.google.protobuf.Value' && !field.repeated && !field.map)) continue;
    if (field.partOf && !isSyntheticOneof(field.partOf)) {
      const taken = oneofs.get(field.partOf.name);
      if (taken) throw new FieldError(where, `cannot be set with ${taken}: both belong to the oneof ${field.partOf.name}.`);
      oneofs.set(field.partOf.name, key);
    }
    out[field.name] = fieldFromJson(field, value, where, depth);
  }
  return out;
}

function isSyntheticOneof(oneof: Protobuf.OneOf): boolean {
  return oneof.fieldsArray.length === 1 && oneof.name === `_${oneof.fieldsArray[0].name}`;
}

function fieldFromJson(field: Protobuf.Field, value: unknown, path: string, depth: number): unknown {
  if (field.map) {
    if (value instanceof Text || typeof value !== 'object' || value === null || Array.isArray(value)) throw new FieldError(path, 'must be a JSON object (a map).');
    const keyType = (field as unknown as Protobuf.MapField).keyType;
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const where = `${path}.${key}`;
      out[mapKey(keyType, key, where)] = singleFromJson(field, item, where, depth);
    }
    return out;
  }
  if (field.repeated) {
    const items = value instanceof Text ? [value] : value;
    if (!Array.isArray(items)) throw new FieldError(path, 'must be a JSON array.');
    return items.map((item, index) => {
      if (item === null) throw new FieldError(`${path}[${index}]`, 'cannot be null in a list.');
      return singleFromJson(field, item, `${path}[${index}]`, depth);
    });
  }
  return singleFromJson(field, value, path, depth);
}

function mapKey(keyType: string, key: string, path: string): string {
  if (keyType === 'string') return key;
  if (keyType === 'bool') {
    if (key !== 'true' && key !== 'false') throw new FieldError(path, 'must be a map key of "true" or "false".');
    return key;
  }
  return String(scalarFromJson(keyType, new Text(key), path));
}

function singleFromJson(field: Protobuf.Field, value: unknown, path: string, depth: number): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return fromJson(resolved, value, path, depth + 1);
  if (resolved instanceof protobuf.Enum) return enumFromJson(resolved, value, path);
  return scalarFromJson(field.type, value, path);
}

function enumFromJson(type: Protobuf.Enum, value: unknown, path: string): number {
  const raw = value instanceof Text ? value.value : value;
  if (typeof raw === 'string' && Object.prototype.hasOwnProperty.call(type.values, raw)) return type.values[raw];
  const number = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw) && value instanceof Text ? Number(raw) : NaN;
  if (Number.isInteger(number) && number >= INT32.min && number <= INT32.max) return number;
  const names = Object.keys(type.values);
  throw new FieldError(path, `must be one of ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''} (${type.name}); received ${describe(raw)}.`);
}

/** A scalar by its proto type; numbers may come as JSON numbers or strings, as the mapping allows. */
function scalarFromJson(type: string, value: unknown, path: string): unknown {
  const text = value instanceof Text;
  const raw = text ? value.value : value;
  switch (type) {
    case 'string':
      if (typeof raw !== 'string') throw new FieldError(path, `must be a string; received ${describe(raw)}.`);
      return raw;
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (text && (raw === 'true' || raw === 'false')) return raw === 'true';
      throw new FieldError(path, `must be true or false; received ${describe(raw)}.`);
    case 'bytes': {
      if (typeof raw !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(raw)) throw new FieldError(path, `must be base64 text; received ${describe(raw)}.`);
      return Buffer.from(raw.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    }
    case 'double':
    case 'float':
      return floatFromJson(raw, type, path);
  }
  if (SIGNED_32.has(type) || UNSIGNED_32.has(type)) {
    const range = SIGNED_32.has(type) ? INT32 : UINT32;
    const number = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+(\.0*)?$|^-?\d+(\.\d+)?[eE][+-]?\d+$/.test(raw.trim()) && raw.trim() === raw ? Number(raw) : NaN;
    if (!Number.isInteger(number) || number < range.min || number > range.max) throw new FieldError(path, `must be an integer from ${range.min} to ${range.max} (${type}); received ${describe(raw)}.`);
    return number;
  }
  if (SIGNED_64.has(type) || UNSIGNED_64.has(type)) {
    const range = SIGNED_64.has(type) ? INT64 : UINT64;
    let big: bigint | undefined;
    if (typeof raw === 'number' && Number.isSafeInteger(raw)) big = BigInt(raw);
    else if (typeof raw === 'string' && /^-?\d{1,20}$/.test(raw)) big = BigInt(raw);
    if (big === undefined || big < range.min || big > range.max) throw new FieldError(path, `must be an integer from ${range.min} to ${range.max} (${type}), as a string for large values; received ${describe(raw)}.`);
    return big.toString();
  }
  throw new FieldError(path, `has the type ${type}, which the bridge cannot map.`);
}

function floatFromJson(raw: unknown, type: string, path: string): number {
  if (typeof raw === 'number') return raw;
  if (raw === 'NaN') return NaN;
  if (raw === 'Infinity') return Infinity;
  if (raw === '-Infinity') return -Infinity;
  if (typeof raw === 'string' && raw.trim() === raw && raw !== '' && Number.isFinite(Number(raw))) return Number(raw);
  throw new FieldError(path, `must be a number (${type}); received ${describe(raw)}.`);
}

/** The JSON forms of the well-known types, or undefined for any other type. */
function wellKnownFromJson(type: Protobuf.Type, json: unknown, path: string, depth: number): Record<string, unknown> | undefined {
  const name = type.fullName;
  if (!name.startsWith('.google.protobuf.')) return undefined;
  const raw = json instanceof Text ? json.value : json;
  const wrap = <T>(convert: () => T): T => {
    try {
      return convert();
    } catch (err) {
      if (err instanceof FieldError) throw err;
      throw new FieldError(path, `${(err as Error).message}; received ${describe(raw)}.`);
    }
  };
  if (WRAPPERS.has(name)) return { value: scalarFromJson(type.fields.value.type, json, path) };
  switch (name) {
    case '.google.protobuf.Timestamp':
      if (typeof raw !== 'string') throw new FieldError(path, `must be an RFC 3339 timestamp string; received ${describe(raw)}.`);
      return wrap(() => ({ ...parseTimestamp(raw) }));
    case '.google.protobuf.Duration':
      if (typeof raw !== 'string') throw new FieldError(path, `must be a duration string such as "1.5s"; received ${describe(raw)}.`);
      return wrap(() => ({ ...parseDuration(raw) }));
    case '.google.protobuf.FieldMask':
      if (typeof raw !== 'string') throw new FieldError(path, `must be a field mask string such as "displayName,price"; received ${describe(raw)}.`);
      return wrap(() => ({ paths: parseFieldMask(raw) }));
    case '.google.protobuf.Struct':
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || json instanceof Text) throw new FieldError(path, 'must be a JSON object.');
      return structFromJson(type, raw as Record<string, unknown>, path, depth);
    case '.google.protobuf.ListValue':
      if (!Array.isArray(raw)) throw new FieldError(path, 'must be a JSON array.');
      return listFromJson(type, raw, path, depth);
    case '.google.protobuf.Value':
      return valueFromJson(type, raw, path, depth);
    case '.google.protobuf.Any':
      return anyFromJson(type, raw, path, depth);
  }
  return undefined;
}

/**
 * The field of a well-known type by its json name: protobufjs's bundled struct.proto names Value's fields in
 * camelCase (`nullValue`), googleapis' in snake_case (`null_value`); both have the same json name.
 */
function wk(type: Protobuf.Type, jsonName: string): Protobuf.Field {
  const field = fieldNamed(type, jsonName);
  if (!field) throw new Error(`${type.fullName} has no field ${jsonName}`);
  return field;
}

function structFromJson(structType: Protobuf.Type, object: Record<string, unknown>, path: string, depth: number): Record<string, unknown> {
  const entries = wk(structType, 'fields');
  const valueType = entries.resolvedType as Protobuf.Type;
  const fields: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(object)) fields[key] = valueFromJson(valueType, item, path ? `${path}.${key}` : key, depth + 1);
  return { [entries.name]: fields };
}

function listFromJson(listType: Protobuf.Type, items: unknown[], path: string, depth: number): Record<string, unknown> {
  const values = wk(listType, 'values');
  return { [values.name]: items.map((item, index) => valueFromJson(values.resolvedType as Protobuf.Type, item, `${path}[${index}]`, depth + 1)) };
}

function valueFromJson(valueType: Protobuf.Type, value: unknown, path: string, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new FieldError(path, 'is nested too deeply.');
  const key = (name: string) => wk(valueType, name).name;
  if (value === null) return { [key('nullValue')]: 0 };
  if (typeof value === 'number') return { [key('numberValue')]: value };
  if (typeof value === 'string') return { [key('stringValue')]: value };
  if (typeof value === 'boolean') return { [key('boolValue')]: value };
  if (Array.isArray(value)) return { [key('listValue')]: listFromJson(wk(valueType, 'listValue').resolvedType as Protobuf.Type, value, path, depth) };
  if (typeof value === 'object') return { [key('structValue')]: structFromJson(wk(valueType, 'structValue').resolvedType as Protobuf.Type, value as Record<string, unknown>, path, depth) };
  throw new FieldError(path, `is not a JSON value; received ${describe(value)}.`);
}

function anyFromJson(anyType: Protobuf.Type, raw: unknown, path: string, depth: number): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FieldError(path, 'must be a JSON object with "@type".');
  const { '@type': typeUrl, ...rest } = raw as Record<string, unknown>;
  if (typeof typeUrl !== 'string' || !typeUrl.includes('/')) throw new FieldError(`${path}.@type`, 'must be a type URL such as "type.googleapis.com/shop.v1.Item".');
  const inner = lookupType(anyType, typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  if (!inner) throw new FieldError(`${path}.@type`, `names ${JSON.stringify(typeUrl)}, a type the route's protos do not define.`);
  const body = inner.fullName.startsWith('.google.protobuf.') && inner.fullName !== '.google.protobuf.Empty' ? (rest as { value?: unknown }).value : rest;
  const message = inner.fromObject(fromJson(inner, body, path, depth + 1));
  return { [wk(anyType, 'typeUrl').name]: typeUrl, value: Buffer.from(inner.encode(message).finish()) };
}

function lookupType(from: Protobuf.Type, name: string): Protobuf.Type | undefined {
  try {
    return from.root.lookupType(name);
  } catch {
    return undefined;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

// ---- message → JSON ----

/** A decoded message → canonical JSON (a value JSON.stringify prints as the mapping says). */
export function toJson(type: Protobuf.Type, message: Record<string, unknown>, options: ToJsonOptions, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new Error('The message is nested too deeply.');
  const special = wellKnownToJson(type, message, options, depth);
  if (special !== NOT_SPECIAL) return special;
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const present = Object.prototype.hasOwnProperty.call(message, field.name);
    const value = message[field.name];
    const name = jsonNameOf(field);
    // Oneof members and proto3 `optional` fields have presence: printed when set, whatever their value.
    if (field.partOf) {
      if (present && value !== null && value !== undefined) out[name] = singleToJson(field, value, options, depth);
      continue;
    }
    if (field.map || field.repeated) {
      const json = fieldToJson(field, value, options, depth);
      if ((json as unknown[] | Record<string, unknown>) && (options.emitDefaults || Object.keys(json as object).length > 0)) out[name] = json;
      continue;
    }
    if (field.resolvedType instanceof protobuf.Type) {
      if (value !== null && value !== undefined) out[name] = singleToJson(field, value, options, depth);
      else if (options.emitDefaults) out[name] = null;
      continue;
    }
    const json = singleToJson(field, value, options, depth);
    if (options.emitDefaults || !isDefault(value)) out[name] = json;
  }
  return out;
}

/** A field's value (a list, a map or a single value) as JSON; unset messages are null. */
export function fieldToJson(field: Protobuf.Field, value: unknown, options: ToJsonOptions, depth = 0): unknown {
  if (field.map) {
    const keyType = (field as unknown as Protobuf.MapField).keyType;
    return Object.fromEntries(Object.entries((value as Record<string, unknown> | undefined) ?? {}).map(([key, item]) => [mapKeyText(keyType, key), singleToJson(field, item, options, depth)]));
  }
  if (field.repeated) return ((value as unknown[] | undefined) ?? []).map((item) => singleToJson(field, item, options, depth));
  if (value === null || (value === undefined && field.resolvedType instanceof protobuf.Type)) return null;
  return singleToJson(field, value, options, depth);
}

/** A scalar or enum at its proto3 default: 0, "", false, empty bytes, a zero Long. */
function isDefault(value: unknown): boolean {
  if (value === undefined || value === null || value === 0 || value === '' || value === false) return true;
  if (value instanceof Uint8Array || Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return (value as { low?: number }).low === 0 && (value as { high?: number }).high === 0;
  return false;
}

/** protobufjs keys 64-bit map entries by an 8-character hash of the bits: printed as the decimal number. */
function mapKeyText(keyType: string, key: string): string {
  if (!SIGNED_64.has(keyType) && !UNSIGNED_64.has(keyType)) return key;
  if (/^-?\d+$/.test(key)) return key;
  return longText(protobuf.util.LongBits.fromHash(key).toLong(UNSIGNED_64.has(keyType)), UNSIGNED_64.has(keyType));
}

function singleToJson(field: Protobuf.Field, value: unknown, options: ToJsonOptions, depth: number): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return toJson(resolved, value as Record<string, unknown>, options, depth + 1);
  if (resolved instanceof protobuf.Enum) {
    if (resolved.fullName === '.google.protobuf.NullValue') return null;
    return resolved.valuesById[value as number] ?? value;
  }
  return scalarToJson(field.type, value);
}

function scalarToJson(type: string, value: unknown): unknown {
  if (SIGNED_64.has(type) || UNSIGNED_64.has(type)) return longText(value, UNSIGNED_64.has(type));
  if (type === 'bytes') return Buffer.from((value as Uint8Array | undefined) ?? []).toString('base64');
  if (type === 'double' || type === 'float') {
    const number = (value as number | undefined) ?? 0;
    if (Number.isNaN(number)) return 'NaN';
    if (number === Infinity) return 'Infinity';
    if (number === -Infinity) return '-Infinity';
    return type === 'float' ? shortestFloat32(number) : number;
  }
  if (type === 'bool') return value === true;
  if (type === 'string') return (value as string | undefined) ?? '';
  return (value as number | undefined) ?? 0;
}

/** An int64 as decoded (a Long, or a number when long.js is absent) as its decimal string. */
function longText(value: unknown, unsigned: boolean): string {
  if (value === undefined || value === null) return '0';
  if (typeof value === 'number') return String(value);
  const long = value as { low: number; high: number; toString(): string };
  if (typeof long.low === 'number' && typeof long.high === 'number') {
    const big = (BigInt(long.high >>> 0) << 32n) | BigInt(long.low >>> 0);
    return (unsigned ? big : BigInt.asIntN(64, big)).toString();
  }
  return String(value);
}

/** A float32 printed with the fewest digits that read back as the same float32 (0.1, not 0.10000000149011612). */
function shortestFloat32(value: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

const NOT_SPECIAL = Symbol('not a well-known type');

function wellKnownToJson(type: Protobuf.Type, message: Record<string, unknown>, options: ToJsonOptions, depth: number): unknown {
  const name = type.fullName;
  if (!name.startsWith('.google.protobuf.')) return NOT_SPECIAL;
  if (WRAPPERS.has(name)) return scalarToJson(type.fields.value.type, message.value);
  const seconds = () => BigInt(longText(message.seconds, false));
  switch (name) {
    case '.google.protobuf.Timestamp':
      return formatTimestamp(Number(seconds()), (message.nanos as number | undefined) ?? 0);
    case '.google.protobuf.Duration':
      return formatDuration(seconds(), (message.nanos as number | undefined) ?? 0);
    case '.google.protobuf.FieldMask':
      return formatFieldMask((message.paths as string[] | undefined) ?? []);
    case '.google.protobuf.Struct':
      return structToJson(type, message, depth);
    case '.google.protobuf.ListValue':
      return listToJson(type, message, depth);
    case '.google.protobuf.Value':
      return valueToJson(type, message, depth);
    case '.google.protobuf.Any':
      return anyToJson(type, message, options, depth);
  }
  return NOT_SPECIAL;
}

function structToJson(structType: Protobuf.Type, message: Record<string, unknown>, depth: number): Record<string, unknown> {
  const entries = wk(structType, 'fields');
  const fields = (message[entries.name] as Record<string, Record<string, unknown>> | undefined) ?? {};
  return Object.fromEntries(Object.entries(fields).map(([key, item]) => [key, valueToJson(entries.resolvedType as Protobuf.Type, item, depth + 1)]));
}

function listToJson(listType: Protobuf.Type, message: Record<string, unknown>, depth: number): unknown[] {
  const values = wk(listType, 'values');
  return ((message[values.name] as Array<Record<string, unknown>> | undefined) ?? []).map((item) => valueToJson(values.resolvedType as Protobuf.Type, item, depth + 1));
}

function valueToJson(valueType: Protobuf.Type, value: Record<string, unknown>, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new Error('The message is nested too deeply.');
  const get = (name: string) => {
    const key = wk(valueType, name).name;
    return Object.prototype.hasOwnProperty.call(value, key) && value[key] !== null && value[key] !== undefined ? value[key] : undefined;
  };
  const number = get('numberValue');
  if (number !== undefined) {
    if (!Number.isFinite(number)) throw new Error('A google.protobuf.Value holds NaN or Infinity, which JSON cannot carry.');
    return number;
  }
  const text = get('stringValue') ?? get('boolValue');
  if (text !== undefined) return text;
  const struct = get('structValue');
  if (struct !== undefined) return structToJson(wk(valueType, 'structValue').resolvedType as Protobuf.Type, struct as Record<string, unknown>, depth);
  const list = get('listValue');
  if (list !== undefined) return listToJson(wk(valueType, 'listValue').resolvedType as Protobuf.Type, list as Record<string, unknown>, depth);
  return null;
}

function anyToJson(anyType: Protobuf.Type, message: Record<string, unknown>, options: ToJsonOptions, depth: number): unknown {
  const typeUrl = (message[wk(anyType, 'typeUrl').name] as string | undefined) ?? '';
  if (typeUrl === '') return {};
  const inner = lookupType(anyType, typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  if (!inner) return { '@type': typeUrl, value: Buffer.from((message.value as Uint8Array | undefined) ?? []).toString('base64') };
  const decoded = inner.decode((message.value as Uint8Array | undefined) ?? new Uint8Array()) as unknown as Record<string, unknown>;
  const json = toJson(inner, decoded, options, depth + 1);
  const special = inner.fullName.startsWith('.google.protobuf.') && inner.fullName !== '.google.protobuf.Empty';
  return special ? { '@type': typeUrl, value: json } : { '@type': typeUrl, ...(json as Record<string, unknown>) };
}
