/**
 * Upstream answers as JSON values, safe to merge: only JSON media types are read, and the keys that could
 * reach an object's prototype when a value is later merged into another object (`__proto__`, `constructor`,
 * `prototype`) are dropped while parsing.
 */
import type { IncomingHttpHeaders } from 'node:http';

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** `application/json`, or a `+json` type such as `application/problem+json`. */
export function isJsonAnswer(headers: IncomingHttpHeaders): boolean {
  return JSON_TYPE.test(String(headers['content-type'] ?? ''));
}

/** The parsed value, or undefined when `body` is not JSON (or is nested too deeply to parse). */
export function parseJsonSafely(body: Buffer): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(body.toString('utf8'), dropUnsafeKeys) };
  } catch {
    return undefined;
  }
}

function dropUnsafeKeys(key: string, value: unknown): unknown {
  return UNSAFE_KEYS.has(key) ? undefined : value;
}
