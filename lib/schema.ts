/**
 * Option schemas. Each middleware declares its options once, with zod: the declaration gives the
 * validation (every mistake, with its full option path and a "did you mean" hint for unknown keys), and
 * the resolved config (durations in ms, defaults filled in). zod is loaded when the first schema is used,
 * not when frontdoor is imported.
 */
import ms from 'ms';
import type * as Zod from 'zod';
import { toBytes } from './byte-size';
import { ConfigError, ConfigIssue } from './errors';
import { closest } from './options';

export type Z = typeof Zod;
export type Schema<T = unknown> = Zod.ZodType<T>;

let zod: Z | undefined;

/** Declares a schema (or a set of them), built with zod on first use and kept. */
export function defineSchema<T>(build: (z: Z) => T): () => T {
  let built: T | undefined;
  return () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    zod ??= require('zod') as Z;
    built ??= build(zod);
    return built;
  };
}

/** The duration schemas made by duration(), so a config file's bare numbers can be found (durationsWithoutUnit). */
const DURATIONS = new WeakSet<object>();

/** A duration: ms as a number or a string like `'30s'`; resolves to ms. */
export function duration(z: Z) {
  const schema = z.union([z.number(), z.string()]).transform((value, ctx) => {
    const parsed = typeof value === 'number' ? value : ms(value as ms.StringValue);
    if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0) {
      ctx.addIssue({ code: 'custom', message: `must be a duration in ms or a string like '30s' or '1m'; received ${JSON.stringify(value)}.` });
      return z.NEVER;
    }
    return parsed;
  });
  DURATIONS.add(schema);
  return schema;
}

/**
 * The option paths where `value` gives a duration as a bare number. Code may say `timeout: 5000`; a file
 * should say `5s`, since `timeout: 10` meant as seconds would be 10 ms and time every request out.
 */
export function durationsWithoutUnit(schema: Zod.ZodType, value: unknown, path = ''): string[] {
  if (DURATIONS.has(schema)) return typeof value === 'number' ? [path] : [];
  const def = schema._zod.def as Def;
  const wrapped = innerOf(def);
  if (wrapped) return durationsWithoutUnit(wrapped, value, path);
  switch (def.type) {
    case 'union': {
      // The first branch that accepts the value is the one it was meant for.
      const branch = (def.options ?? []).find((option) => option.safeParse(value).success);
      return branch ? durationsWithoutUnit(branch, value, path) : [];
    }
  }
  if (!value || typeof value !== 'object') return [];
  const join = (key: string | number) => (typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key);
  if (def.type === 'object' && def.shape) {
    return Object.entries(value).flatMap(([key, item]) => (def.shape?.[key] ? durationsWithoutUnit(def.shape[key], item, join(key)) : []));
  }
  if (def.type === 'array' && def.element && Array.isArray(value)) return value.flatMap((item, index) => durationsWithoutUnit(def.element as Zod.ZodType, item, join(index)));
  if (def.type === 'record' && def.valueType) return Object.entries(value).flatMap(([key, item]) => durationsWithoutUnit(def.valueType as Zod.ZodType, item, join(key)));
  return [];
}

/** A size: bytes as a number or a string like `'1mb'`; resolves to bytes. */
export function byteSize(z: Z) {
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    const parsed = toBytes(value);
    if (parsed === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be a size in bytes or a string like '1mb' or '512kb'; received ${JSON.stringify(value)}.` });
      return z.NEVER;
    }
    return parsed;
  });
}

/** What to do with an error; in a route table the gateway decides (see lib/pipeline.ts withGatewayErrors). */
export function errorMode(z: Z) {
  return z.enum(['respond', 'next'], { error: `must be 'respond' or 'next'.` });
}

/** A function, checked only for being one (its signature is TypeScript's business). */
export function fn<T extends (...args: never[]) => unknown>(z: Z, shape: string) {
  return z.custom<T>((value) => typeof value === 'function', { error: `must be a function ${shape}.` });
}

/**
 * Validates `value` against `schema` and returns the resolved config. Every issue is reported, each with
 * its option path (`optionPrefix` + the path inside), in one ConfigError whose `issues` carry them as data.
 */
export function parseOptions<T extends Zod.ZodType>(schema: T, value: unknown, optionPrefix = '', what = 'options'): Zod.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = describeIssues(schema, value, result.error.issues, optionPrefix);
  throw new ConfigError(issues.length === 1 ? issues[0].message : `invalid ${what}:\n${issues.map((issue) => `- ${issue.message}`).join('\n')}`, issues);
}

function describeIssues(schema: Zod.ZodType, input: unknown, issues: readonly Zod.core.$ZodIssue[], prefix: string, base: PropertyKey[] = []): ConfigIssue[] {
  const described: ConfigIssue[] = [];
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === 'invalid_union') {
      // Report the branch the value was meant for: the one that did not fail on its type at this very path.
      const branches = issue.errors.filter((branch) => !branch.some((inner) => inner.path.length === 0 && inner.code === 'invalid_type'));
      if (branches.length > 0) {
        described.push(...describeIssues(schema, input, branches.sort((a, b) => a.length - b.length)[0], prefix, path));
        continue;
      }
    }
    const name = optionName(prefix, path);
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(schema, path);
      for (const key of issue.keys) {
        const full = optionName(prefix, [...path, key]);
        const suggestion = closest(key, known);
        described.push({ path: full, message: `received an unsupported option "${full}".${suggestion ? ` Did you mean "${optionName(prefix, [...path, suggestion])}"?` : known.length ? ` Supported: ${known.join(', ')}.` : ''}` });
      }
      continue;
    }
    const received = valueAt(input, path);
    // Schemas phrase their own errors ("must be …"); zod's defaults ("Invalid input") are framed as such.
    const text = /^(must|needs|is|has|cannot) /.test(issue.message) ? issue.message : `is not valid (${issue.message.replace(/\.$/, '')})`;
    const message = text.endsWith('.') ? text : `${text}${received === undefined ? '' : `; received ${safeJson(received)}`}.`;
    described.push({ path: name, message: `"${name || 'options'}" ${message}` });
  }
  return described;
}

function optionName(prefix: string, path: PropertyKey[]): string {
  let name = prefix.endsWith('.') ? prefix.slice(0, -1) : prefix;
  for (const key of path) name += typeof key === 'number' ? `[${key}]` : name ? `.${String(key)}` : String(key);
  return name;
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (!value || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function safeJson(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

type Def = { type: string; shape?: Record<string, Zod.ZodType>; innerType?: Zod.ZodType; in?: Zod.ZodType; options?: Zod.ZodType[]; element?: Zod.ZodType; valueType?: Zod.ZodType };

/** The schema a wrapper (optional, nullable, default, prefault, readonly, or a pipe's input) stands for; undefined for others. */
function innerOf(def: Def): Zod.ZodType | undefined {
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
      return def.innerType;
    case 'pipe':
      return def.in;
  }
  return undefined;
}

/** The keys an object schema accepts at `path`, looking through optional, default, pipe, union, array and record. */
function knownKeys(schema: Zod.ZodType, path: PropertyKey[]): string[] {
  const candidates = objectsAt(schema, path);
  return [...new Set(candidates.flatMap((object) => Object.keys((object._zod.def as Def).shape ?? {})))];
}

function objectsAt(schema: Zod.ZodType, path: PropertyKey[]): Zod.ZodType[] {
  const def = schema._zod.def as Def;
  const wrapped = innerOf(def);
  if (wrapped) return objectsAt(wrapped, path);
  if (def.type === 'union') return (def.options ?? []).flatMap((option) => objectsAt(option, path));
  if (path.length === 0) return def.type === 'object' ? [schema] : [];
  const [head, ...rest] = path;
  if (def.type === 'object' && typeof head === 'string' && def.shape?.[head]) return objectsAt(def.shape[head], rest);
  if (def.type === 'array' && typeof head === 'number' && def.element) return objectsAt(def.element, rest);
  if (def.type === 'record' && def.valueType) return objectsAt(def.valueType, rest);
  return [];
}
