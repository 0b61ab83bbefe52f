/**
 * Dot paths over parsed JSON, for transformBody()'s declarative helpers: `customer.id`, `items[0].sku`,
 * `items[*].supplierId` (`[*]`: every element of an array), `[*].id` (a body that is an array).
 *
 * Prototype-pollution safe by construction: `__proto__`, `constructor` and `prototype` cannot be written in
 * a path (refused when the path is parsed, at construction), data is read through own properties only, and
 * a wildcard walks array elements, never object keys, so no key taken from the data is ever followed.
 */

/** `[*]`: every element of an array. */
export const WILDCARD: unique symbol = Symbol('[*]');

export type Segment = string | number | typeof WILDCARD;
/** A parsed path: object keys, array indexes and wildcards, from the root. */
export type JsonPath = readonly Segment[];

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Thrown by parsePath() with what is wrong with the text. */
export class PathSyntaxError extends Error {
  override name = 'PathSyntaxError';
}

/**
 * Parses `a.b`, `a[0].b`, `a[*].b`, `[*].b`. Keys are any characters but `.`, `[` and `]`; a key cannot be
 * `__proto__`, `constructor`, `prototype`, or `*` (write `[*]` for array elements).
 */
export function parsePath(text: string): JsonPath {
  if (typeof text !== 'string' || text === '') throw new PathSyntaxError('a path cannot be empty');
  const segments: Segment[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === '[') {
      const close = text.indexOf(']', i);
      if (close === -1) throw new PathSyntaxError(`"[" at ${i} is not closed`);
      const inner = text.slice(i + 1, close);
      if (inner === '*') segments.push(WILDCARD);
      else if (/^\d+$/.test(inner) && Number.isSafeInteger(Number(inner))) segments.push(Number(inner));
      else throw new PathSyntaxError(`"[${inner}]" must be an array index like [0] or the wildcard [*]`);
      i = close + 1;
    } else {
      let end = i;
      while (end < text.length && text[end] !== '.' && text[end] !== '[' && text[end] !== ']') end++;
      const key = text.slice(i, end);
      if (key === '') throw new PathSyntaxError(`a key is missing at ${i}`);
      if (FORBIDDEN_KEYS.has(key)) throw new PathSyntaxError(`"${key}" cannot be used in a path`);
      if (key === '*') throw new PathSyntaxError('"*" is not a wildcard here: write [*] for every element of an array');
      segments.push(key);
      i = end;
    }
    if (i === text.length) break;
    if (text[i] === '.') {
      i++;
      if (i === text.length || text[i] === '.' || text[i] === '[') throw new PathSyntaxError(`a key must follow the "." at ${i - 1}`);
    } else if (text[i] !== '[') {
      throw new PathSyntaxError(`unexpected "${text[i]}" at ${i}`);
    }
  }
  return segments;
}

/** How many wildcards a path has. */
export function wildcards(path: JsonPath): number {
  return path.filter((segment) => segment === WILDCARD).length;
}

type Container = Record<string, unknown> | unknown[];

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The child of `value` at `segment`, read through own properties only; `undefined` when there is none. */
function child(value: unknown, segment: string | number): unknown {
  if (typeof segment === 'number') return Array.isArray(value) && segment < value.length ? value[segment] : undefined;
  return isObject(value) && Object.hasOwn(value, segment) ? value[segment] : undefined;
}

function has(value: unknown, segment: string | number): boolean {
  if (typeof segment === 'number') return Array.isArray(value) && segment < value.length;
  return isObject(value) && Object.hasOwn(value, segment);
}

/**
 * Calls `visit(parent, last, indexes)` for every place `path` reaches whose parent exists and has the right
 * kind (an object for a key, an array for an index or wildcard); `indexes` are the elements its wildcards
 * took. The last segment itself may be missing: `visit` decides.
 */
function visitParents(root: unknown, path: JsonPath, visit: (parent: Container, last: Segment, indexes: number[]) => void): void {
  const walk = (value: unknown, depth: number, indexes: number[]): void => {
    const segment = path[depth];
    if (depth === path.length - 1) {
      if (typeof segment === 'string' ? isObject(value) : Array.isArray(value)) visit(value as Container, segment, indexes);
      return;
    }
    if (segment === WILDCARD) {
      if (!Array.isArray(value)) return;
      // A copy: visiting may remove elements (omit of `items[*]` empties the array at the last step only).
      [...value.keys()].forEach((index) => walk(value[index], depth + 1, [...indexes, index]));
      return;
    }
    if (has(value, segment)) walk(child(value, segment), depth + 1, indexes);
  };
  walk(root, 0, []);
}

/** The values `path` reaches, each with the elements its wildcards took. */
export function valuesAt(root: unknown, path: JsonPath): Array<{ value: unknown; indexes: number[] }> {
  const found: Array<{ value: unknown; indexes: number[] }> = [];
  visitParents(root, path, (parent, last, indexes) => {
    if (last === WILDCARD) (parent as unknown[]).forEach((value, index) => found.push({ value, indexes: [...indexes, index] }));
    else if (has(parent, last)) found.push({ value: child(parent, last), indexes });
  });
  return found;
}

/** Removes what `path` reaches (a key, an array element, or every element for a trailing `[*]`). Changes `root`. */
export function omitPath(root: unknown, path: JsonPath): void {
  visitParents(root, path, (parent, last) => {
    if (last === WILDCARD) (parent as unknown[]).length = 0;
    else if (typeof last === 'number') {
      if (last < (parent as unknown[]).length) (parent as unknown[]).splice(last, 1);
    } else delete (parent as Record<string, unknown>)[last];
  });
}

/**
 * Sets `value` (a copy per place) where `path` reaches, creating missing objects and arrays on the way; a
 * wildcard sets in every existing element. Data of another kind in the way (a string where an object is
 * needed) is left alone. Changes `root`; a path cannot replace the root itself.
 */
export function setPath(root: unknown, path: JsonPath, value: unknown): void {
  const walk = (current: unknown, depth: number): void => {
    const segment = path[depth];
    const last = depth === path.length - 1;
    if (segment === WILDCARD) {
      if (!Array.isArray(current)) return;
      for (let index = 0; index < current.length; index++) {
        if (last) current[index] = structuredClone(value);
        else walk(current[index], depth + 1);
      }
      return;
    }
    if (typeof segment === 'number' ? !Array.isArray(current) : !isObject(current)) return;
    const container = current as Record<string | number, unknown>;
    if (last) {
      container[segment] = structuredClone(value);
      return;
    }
    if (!has(current, segment) || container[segment] === null || container[segment] === undefined) {
      const next = path[depth + 1];
      container[segment] = typeof next === 'string' ? {} : [];
    }
    walk(container[segment], depth + 1);
  };
  walk(root, 0);
}

/**
 * Moves what `from` reaches to `to`. Wildcards pair up in order: `items[*].sku` → `items[*].code` renames
 * the key in each element (the paths must have as many wildcards: checked by the caller at construction).
 */
export function renamePath(root: unknown, from: JsonPath, to: JsonPath): void {
  const found = valuesAt(root, from);
  if (found.length === 0) return;
  omitPath(root, from);
  for (const { value, indexes } of found) {
    let taken = 0;
    const concrete = to.map((segment) => (segment === WILDCARD ? indexes[taken++] : segment));
    setPath(root, concrete, value);
  }
}

/**
 * A new value with only what the paths reach, in the same places (arrays walked by `[*]` keep their length;
 * an element where nothing was found is an empty object). Values are shared with `root`, not copied.
 */
export function pickPaths(root: unknown, paths: readonly JsonPath[]): unknown {
  let result: unknown;
  for (const path of paths) result = pickInto(root, result, path, 0);
  return result === undefined ? (Array.isArray(root) ? [] : {}) : result;
}

function pickInto(source: unknown, target: unknown, path: JsonPath, depth: number): unknown {
  if (depth === path.length) return source;
  const segment = path[depth];
  if (segment === WILDCARD) {
    if (!Array.isArray(source)) return target;
    const array = Array.isArray(target) ? target : source.map(() => ({}));
    source.forEach((element, index) => {
      array[index] = pickInto(element, array[index], path, depth + 1);
    });
    return array;
  }
  if (!has(source, segment)) return target;
  if (typeof segment === 'number') {
    const array = Array.isArray(target) ? target : [];
    array[segment] = pickInto(child(source, segment), array[segment], path, depth + 1);
    return array;
  }
  const object = isObject(target) ? target : {};
  object[segment] = pickInto(child(source, segment), object[segment], path, depth + 1);
  return object;
}
