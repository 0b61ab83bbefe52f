/**
 * The order of aggregated calls: which call waits for which (`after`). Checked once at construction: call
 * names, unknown names in `after`, cycles, and templates that read a call they do not wait for.
 */
import { ConfigError } from '../errors';
import { closest } from '../options';

/** What the graph needs to know of a call. */
export interface CallNode {
  /** The calls it starts after. */
  after: readonly string[];
  /** The calls whose results its templates read. */
  reads: readonly string[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Names that would clash with a template source, the answer's `errors` member, or an object's prototype. */
const RESERVED = new Set(['errors', 'params', 'query', 'headers', 'consumer', '__proto__', 'constructor', 'prototype']);

/** Throws a ConfigError naming the option for a call name that cannot be used. */
export function checkCallNames(names: readonly string[], option: string): void {
  for (const name of names) {
    if (!NAME.test(name)) throw new ConfigError(`"${option}.${name}": a call name starts with a letter or "_" and has letters, digits and "_" only (it is used in templates as {${name}.field}).`);
    if (RESERVED.has(name)) throw new ConfigError(`"${option}.${name}": "${name}" cannot name a call; it is ${name === 'errors' ? "the answer's member listing failed calls" : 'reserved'} (reserved: ${[...RESERVED].join(', ')}).`);
  }
}

/** Throws a ConfigError naming the option for an unknown or cyclic `after`, or a template read without `after`. */
export function checkCallGraph(calls: Readonly<Record<string, CallNode>>, option: string): void {
  const names = Object.keys(calls);
  for (const name of names) {
    calls[name].after.forEach((dependency, index) => {
      if (Object.prototype.hasOwnProperty.call(calls, dependency) && dependency !== name) return;
      if (dependency === name) throw new ConfigError(`"${option}.${name}.after[${index}]": a call cannot wait for itself.`);
      const suggestion = closest(dependency, names);
      throw new ConfigError(`"${option}.${name}.after[${index}]" names the call ${JSON.stringify(dependency)}, which does not exist.${suggestion ? ` Did you mean "${suggestion}"?` : ` Calls: ${names.join(', ')}.`}`);
    });
  }
  const cycle = findCycle(calls);
  if (cycle) throw new ConfigError(`"${option}.${cycle[0]}.after" makes a cycle: ${cycle.join(' → ')}; no call of it could ever start.`);
  for (const name of names) {
    const waited = ancestors(calls, name);
    const unread = calls[name].reads.find((read) => !waited.has(read));
    if (unread) throw new ConfigError(`"${option}.${name}" reads the result of "${unread}" in a template but does not wait for it: add after: ['${unread}'].`);
  }
}

/** Every call `name` waits for, directly or through others. */
export function ancestors(calls: Readonly<Record<string, CallNode>>, name: string): Set<string> {
  const found = new Set<string>();
  const visit = (current: string) => {
    for (const dependency of calls[current].after) {
      if (found.has(dependency)) continue;
      found.add(dependency);
      visit(dependency);
    }
  };
  visit(name);
  return found;
}

/** A cycle as a path of names that ends where it starts, or undefined. */
function findCycle(calls: Readonly<Record<string, CallNode>>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const dependency of calls[name].after) {
      const cycle = visit(dependency);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of Object.keys(calls)) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return undefined;
}
