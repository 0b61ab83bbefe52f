/**
 * Structural differences between two JSON values, for shadow traffic: which fields of the candidate's answer
 * differ from the primary's. Pure (no I/O, no clock): rules say what to ignore (dot paths with `[*]`, the syntax
 * of lib/json-paths.ts), which arrays are compared as multisets, and how far numbers may drift. NoiseModel learns
 * the fields that differ between two runs of the same old code (Diffy's primary/secondary), so they can be
 * left out of the candidate's differences.
 */
import { parsePath, PathSyntaxError, WILDCARD } from './json-paths';
import type { JsonPath } from './json-paths';

export { PathSyntaxError };

/** One place the two values differ. `primary`/`candidate` are absent on the side where the field is missing. */
export interface Difference {
  /** Where, as text: `body.items[0].price`, `status`, `headers.content-type`. */
  path: string;
  /** `value`: same type, other value; `type`: other JSON types; `missing`: not in the candidate; `extra`: only in the candidate. */
  kind: 'value' | 'type' | 'missing' | 'extra';
  primary?: unknown;
  candidate?: unknown;
  /** The concrete place (keys and indexes, under the prefix), for redaction. */
  at: ReadonlyArray<string | number>;
}

/** The rules as an option gives them: dot paths relative to the compared value. */
export interface DiffRuleOptions {
  /** Fields never compared (with everything below them): `['updatedAt', 'items[*].id']`. */
  ignore?: readonly string[];
  /** Arrays compared without regard to order: `true` for every array, or their paths: `['items', 'items[*].tags']`. */
  unordered?: readonly string[] | boolean;
  /** Absolute tolerance for numbers: one for every number, or by path: `{ total: 0.01, 'items[*].price': 0.001 }`. */
  tolerance?: number | Readonly<Record<string, number>>;
}

/** Rules with their paths parsed (compileRules), ready for diff(). */
export interface DiffRules {
  ignore: readonly JsonPath[];
  unordered: readonly JsonPath[] | true;
  tolerance: number;
  tolerances: ReadonlyArray<{ path: JsonPath; tolerance: number }>;
}

export interface DiffOptions {
  /** Put in front of every path: `'body'` gives `body.items[0]` (and `body` for the root). */
  prefix?: string;
  /** Differences kept; the walk stops past it. Defaults to 100. */
  limit?: number;
  /** A difference for which this returns true is left out (learned noise); it does not count toward `limit`. */
  skip?: (path: string) => boolean;
}

/** Below this depth, values are compared whole (without recursion), so no input can overflow the stack. */
const MAX_DEPTH = 64;

export const NO_RULES: DiffRules = { ignore: [], unordered: [], tolerance: 0, tolerances: [] };

/** Parses the rules' paths; throws PathSyntaxError (with the offending path in the message) on a bad one. */
export function compileRules(options: DiffRuleOptions = {}): DiffRules {
  const parse = (text: string, where: string) => {
    try {
      return parsePath(text);
    } catch (err) {
      throw new PathSyntaxError(`${where} ${JSON.stringify(text)}: ${(err as Error).message}`);
    }
  };
  const tolerance = options.tolerance;
  return {
    ignore: (options.ignore ?? []).map((text) => parse(text, 'ignore')),
    unordered: options.unordered === true ? true : options.unordered ? options.unordered.map((text) => parse(text, 'unordered')) : [],
    tolerance: typeof tolerance === 'number' ? tolerance : 0,
    tolerances: typeof tolerance === 'object' && tolerance ? Object.entries(tolerance).map(([text, value]) => ({ path: parse(text, 'tolerance'), tolerance: value })) : [],
  };
}

/** Whether `pattern` names exactly the place `at` (`[*]` stands for any index). */
export function matches(pattern: JsonPath, at: ReadonlyArray<string | number>): boolean {
  if (pattern.length !== at.length) return false;
  for (let i = 0; i < at.length; i++) {
    const segment = pattern[i];
    if (segment === WILDCARD ? typeof at[i] !== 'number' : segment !== at[i]) return false;
  }
  return true;
}

/** Whether `pattern` names `at` or one of its ancestors. */
export function covers(pattern: JsonPath, at: ReadonlyArray<string | number>): boolean {
  return pattern.length <= at.length && matches(pattern, at.slice(0, pattern.length));
}

/** `['items', 0, 'id']` with prefix `body` → `body.items[0].id`. */
export function formatPath(at: ReadonlyArray<string | number>, prefix = ''): string {
  let text = prefix;
  for (const segment of at) text += typeof segment === 'number' ? `[${segment}]` : text ? `.${segment}` : segment;
  return text;
}

/** A path with its array indexes replaced by `[*]`: the field, whichever element it was in. */
export function generalise(path: string): string {
  return path.replace(/\[\d+\]/g, '[*]');
}

type Kind = 'null' | 'array' | 'object' | 'number' | 'string' | 'boolean' | 'other';

function kindOf(value: unknown): Kind {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  const type = typeof value;
  return type === 'object' || type === 'number' || type === 'string' || type === 'boolean' ? type : 'other';
}

/**
 * The differences between `primary` and `candidate` under `rules`, at most `options.limit` of them, in the order
 * the walk meets them (object keys in the primary's order, then the candidate's extra keys).
 */
export function diff(primary: unknown, candidate: unknown, rules: DiffRules = NO_RULES, options: DiffOptions = {}): Difference[] {
  return new Walk(rules, options).run(primary, candidate);
}

class Walk {
  readonly found: Difference[] = [];
  private readonly limit: number;
  private readonly prefix: string;

  constructor(
    private readonly rules: DiffRules,
    private readonly options: DiffOptions,
  ) {
    this.limit = options.limit ?? 100;
    this.prefix = options.prefix ?? '';
  }

  run(primary: unknown, candidate: unknown): Difference[] {
    this.compare(primary, candidate, []);
    return this.found;
  }

  private get full(): boolean {
    return this.found.length >= this.limit;
  }

  private add(kind: Difference['kind'], at: Array<string | number>, primary: unknown, candidate: unknown): void {
    if (this.full) return;
    const path = formatPath(at, this.prefix);
    if (this.options.skip?.(path)) return;
    const difference: Difference = { path, kind, at: [...at] };
    if (kind !== 'extra') difference.primary = primary;
    if (kind !== 'missing') difference.candidate = candidate;
    this.found.push(difference);
  }

  private ignored(at: Array<string | number>): boolean {
    for (const pattern of this.rules.ignore) if (matches(pattern, at)) return true;
    return false;
  }

  private unordered(at: Array<string | number>): boolean {
    if (this.rules.unordered === true) return true;
    for (const pattern of this.rules.unordered) if (matches(pattern, at)) return true;
    return false;
  }

  private toleranceAt(at: Array<string | number>): number {
    for (const { path, tolerance } of this.rules.tolerances) if (matches(path, at)) return tolerance;
    return this.rules.tolerance;
  }

  private compare(a: unknown, b: unknown, at: Array<string | number>): void {
    if (this.full) return;
    const kind = kindOf(a);
    if (kind !== kindOf(b)) return this.add('type', at, a, b);
    if (at.length >= MAX_DEPTH) {
      if (!deepEqual(a, b)) this.add('value', at, '[nested too deeply to compare field by field]', '[nested too deeply to compare field by field]');
      return;
    }
    switch (kind) {
      case 'number':
        if (a !== b && !(Math.abs((a as number) - (b as number)) <= this.toleranceAt(at))) this.add('value', at, a, b);
        return;
      case 'object':
        return this.compareObjects(a as Record<string, unknown>, b as Record<string, unknown>, at);
      case 'array':
        return this.unordered(at) ? this.compareUnordered(a as unknown[], b as unknown[], at) : this.compareOrdered(a as unknown[], b as unknown[], at);
      default:
        if (a !== b) this.add('value', at, a, b);
    }
  }

  private compareObjects(a: Record<string, unknown>, b: Record<string, unknown>, at: Array<string | number>): void {
    for (const key of Object.keys(a)) {
      at.push(key);
      if (!this.ignored(at)) {
        if (Object.hasOwn(b, key)) this.compare(a[key], b[key], at);
        else this.add('missing', at, a[key], undefined);
      }
      at.pop();
    }
    for (const key of Object.keys(b)) {
      if (Object.hasOwn(a, key)) continue;
      at.push(key);
      if (!this.ignored(at)) this.add('extra', at, undefined, b[key]);
      at.pop();
    }
  }

  private compareOrdered(a: unknown[], b: unknown[], at: Array<string | number>): void {
    const length = Math.max(a.length, b.length);
    for (let index = 0; index < length && !this.full; index++) {
      at.push(index);
      if (!this.ignored(at)) {
        if (index >= b.length) this.add('missing', at, a[index], undefined);
        else if (index >= a.length) this.add('extra', at, undefined, b[index]);
        else this.compare(a[index], b[index], at);
      }
      at.pop();
    }
  }

  /**
   * Order ignored: elements equal under the rules pair up first (by a canonical key); what is left pairs up in
   * the order it came, so one changed element is one set of field differences, not a missing and an extra.
   */
  private compareUnordered(a: unknown[], b: unknown[], at: Array<string | number>): void {
    const keysA = a.map((value, index) => this.canonical(value, [...at, index], at.length + 1));
    const waiting = new Map<string, number[]>();
    b.forEach((value, index) => {
      const key = this.canonical(value, [...at, index], at.length + 1);
      const list = waiting.get(key);
      if (list) list.push(index);
      else waiting.set(key, [index]);
    });
    const leftA: number[] = [];
    keysA.forEach((key, index) => {
      const list = waiting.get(key);
      if (list && list.length > 0) list.shift();
      else leftA.push(index);
    });
    const leftB = [...waiting.values()].flat().sort((x, y) => x - y);
    const pairs = Math.max(leftA.length, leftB.length);
    for (let i = 0; i < pairs && !this.full; i++) {
      if (i >= leftB.length) {
        at.push(leftA[i]);
        if (!this.ignored(at)) this.add('missing', at, a[leftA[i]], undefined);
      } else if (i >= leftA.length) {
        at.push(leftB[i]);
        if (!this.ignored(at)) this.add('extra', at, undefined, b[leftB[i]]);
      } else {
        at.push(leftA[i]);
        if (!this.ignored(at)) this.compare(a[leftA[i]], b[leftB[i]], at);
      }
      at.pop();
    }
  }

  /** A text equal for two values that are equal under the rules (ignored fields out, unordered arrays sorted). */
  private canonical(value: unknown, at: Array<string | number>, depth: number): string {
    if (depth >= MAX_DEPTH) return `#deep:${Math.random()}`; // never pairs up by key; compared whole instead
    switch (kindOf(value)) {
      case 'array': {
        const parts = (value as unknown[]).map((element, index) => (this.ignored([...at, index]) ? '' : this.canonical(element, [...at, index], depth + 1)));
        if (this.unordered(at)) parts.sort();
        return `[${parts.join(',')}]`;
      }
      case 'object': {
        const keys = Object.keys(value as object).sort();
        const parts: string[] = [];
        for (const key of keys) {
          if (this.ignored([...at, key])) continue;
          parts.push(`${JSON.stringify(key)}:${this.canonical((value as Record<string, unknown>)[key], [...at, key], depth + 1)}`);
        }
        return `{${parts.join(',')}}`;
      }
      default:
        return JSON.stringify(value) ?? 'undefined';
    }
  }
}

/** Structural equality without recursion (for values nested past MAX_DEPTH). */
export function deepEqual(a: unknown, b: unknown): boolean {
  const stack: Array<[unknown, unknown]> = [[a, b]];
  while (stack.length > 0) {
    const [x, y] = stack.pop()!;
    if (x === y) continue;
    const kind = kindOf(x);
    if (kind !== kindOf(y)) return false;
    if (kind === 'array') {
      const xs = x as unknown[];
      const ys = y as unknown[];
      if (xs.length !== ys.length) return false;
      for (let i = 0; i < xs.length; i++) stack.push([xs[i], ys[i]]);
    } else if (kind === 'object') {
      const keys = Object.keys(x as object);
      if (keys.length !== Object.keys(y as object).length) return false;
      for (const key of keys) {
        if (!Object.hasOwn(y as object, key)) return false;
        stack.push([(x as Record<string, unknown>)[key], (y as Record<string, unknown>)[key]]);
      }
    } else if (!(kind === 'number' && Number.isNaN(x) && Number.isNaN(y))) {
      return false;
    }
  }
  return true;
}

/**
 * Fields that differ between two answers of the same old code (the primary and a secondary) are noise: a
 * timestamp, a generated id, a random order. The model keeps them by generalised path (`items[*].id`), up to
 * `maxFields`; a difference at or below a noisy field is noise too.
 */
export class NoiseModel {
  private readonly fields = new Map<string, number>();

  constructor(private readonly maxFields = 500) {}

  /** Records the differences between primary and secondary of one request. */
  learn(differences: readonly Difference[]): void {
    for (const difference of differences) {
      const field = generalise(difference.path);
      const seen = this.fields.get(field);
      if (seen !== undefined) this.fields.set(field, seen + 1);
      else if (this.fields.size < this.maxFields) this.fields.set(field, 1);
    }
  }

  /** Whether the field at `path` (concrete or generalised), or one of its ancestors, was seen differing. */
  isNoise(path: string): boolean {
    if (this.fields.size === 0) return false;
    const field = generalise(path);
    if (this.fields.has(field)) return true;
    // Ancestors: cut at each `.` and `[` (a noisy `meta` covers `meta.requestedAt`).
    for (let i = field.length - 1; i > 0; i--) {
      if ((field[i] === '.' || field[i] === '[') && this.fields.has(field.slice(0, i))) return true;
    }
    return false;
  }

  /** The noisy fields and how often each differed, most frequent first. */
  list(): Array<{ path: string; count: number }> {
    return [...this.fields].map(([path, count]) => ({ path, count })).sort((x, y) => y.count - x.count || x.path.localeCompare(y.path));
  }

  clear(): void {
    this.fields.clear();
  }
}
