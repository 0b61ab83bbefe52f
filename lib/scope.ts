/**
 * Parts that routes of one gateway share — rate limiters by counter name, named auth schemes, later caches
 * and pools — looked up by name and compared by a fingerprint of their resolved options. Two routes naming
 * one part with different options is a construction error; `'1m'` and `60000` are the same once resolved,
 * and functions or clients are compared by identity.
 */
import { ConfigError } from './errors';

interface Entry {
  fingerprint: string;
  owner: string;
  value: unknown;
  close?: () => Promise<void> | void;
}

export class SharedParts {
  private readonly entries = new Map<string, Entry>();
  /** Keys of entries taken over from `previous` (they stay open when the previous table is retired). */
  private readonly adopted = new Set<string>();

  /**
   * `previous`: the parts of the table this one replaces (a reload). A part asked for with the same name and
   * fingerprint is taken over instead of created, so rate-limit counters, key caches, pools with their target
   * health, and cache entries survive a reload that did not change them.
   */
  constructor(private readonly previous?: SharedParts) {}

  /**
   * The part of `kind` called `name`: created by `create` the first time, returned again when the
   * fingerprint matches. `describe` names the option in the error when it does not.
   */
  get<T>(kind: string, name: string, resolved: unknown, owner: string, describe: string, create: () => T, close?: (value: T) => Promise<void> | void): T {
    const key = `${kind}\u0000${name}`;
    const print = fingerprint(resolved);
    const entry = this.entries.get(key);
    if (entry) {
      if (entry.fingerprint !== print) {
        throw new ConfigError(`${describe} shares the ${kind} ${JSON.stringify(name)} with ${entry.owner} but with other options; give it its own name or the same options.`);
      }
      return entry.value as T;
    }
    const inherited = this.previous?.entries.get(key);
    if (inherited && inherited.fingerprint === print) {
      this.entries.set(key, { ...inherited, owner });
      this.adopted.add(key);
      return inherited.value as T;
    }
    const value = create();
    this.entries.set(key, { fingerprint: print, owner, value, close: close ? () => close(value) : undefined });
    return value;
  }

  /** A part created earlier, if any. */
  find<T>(kind: string, name: string): T | undefined {
    return this.entries.get(`${kind}\u0000${name}`)?.value as T | undefined;
  }

  /** Closes every part (each once). */
  async close(): Promise<void> {
    const closing = [...this.entries.values()].map((entry) => entry.close?.());
    this.entries.clear();
    await Promise.all(closing);
  }

  /** For a table that failed to build: closes what it created; what it took over still serves the previous table. */
  async discard(): Promise<void> {
    const closing = [...this.entries].filter(([key]) => !this.adopted.has(key)).map(([, entry]) => entry.close?.());
    this.entries.clear();
    await Promise.all(closing);
  }

  /** Closes the parts that `successor` did not take over: what only this (retired) table used. */
  async closeExcept(successor: SharedParts): Promise<void> {
    const closing = [...this.entries].filter(([key]) => !successor.adopted.has(key) || successor.entries.get(key)?.value !== this.entries.get(key)?.value).map(([, entry]) => entry.close?.());
    this.entries.clear();
    await Promise.all(closing);
  }

  /** How many parts were taken over from the previous table (for the reload log line). */
  get carriedOver(): number {
    return this.adopted.size;
  }
}

const identities = new WeakMap<object, number>();
let nextIdentity = 1;

/** Identity of a function or a non-plain object (a client, a logger): equal only to itself. */
function identityOf(value: object): string {
  let id = identities.get(value);
  if (id === undefined) {
    id = nextIdentity++;
    identities.set(value, id);
  }
  return `#${id}`;
}

/** A stable fingerprint: plain objects with sorted keys, functions and class instances by identity. */
export function fingerprint(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null || typeof value !== 'object') return typeof value === 'function' ? identityOf(value) : JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(fingerprint).join(',')}]`;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return identityOf(value);
  const keys = Object.keys(value).filter((key) => (value as Record<string, unknown>)[key] !== undefined).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${fingerprint((value as Record<string, unknown>)[key])}`).join(',')}}`;
}
