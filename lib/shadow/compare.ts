/**
 * Comparing two answers to the same request for shadow traffic: the status, the selected headers, and the
 * body — structurally when both are JSON (lib/diff.ts, with the route's rules), by bytes otherwise. Compressed
 * bodies are decoded first (within the size limit), so two encoders' different bytes are not a difference.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import { isJsonAnswer, parseJsonSafely } from '../aggregate/json';
import { diff } from '../diff';
import type { Difference, DiffRules } from '../diff';

/** An answer as captured (the primary's) or read (the candidate's, the secondary's). */
export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders | OutgoingHttpHeaders;
  body: Buffer;
}

/** An answer ready to compare: decoded, its JSON parsed once. */
export interface PreparedAnswer {
  status: number;
  /** The selected headers, normalised (lower-case names; Content-Type by media type). */
  headers: Record<string, string>;
  body: Buffer;
  json?: { value: unknown };
}

export interface CompareConfig {
  /** Header names (lower-case) to compare. */
  headers: readonly string[];
  rules: DiffRules;
  /** Differences kept per comparison. */
  limit: number;
  /** Largest decoded body. */
  maxBytes: number;
}

const decoders: Record<string, (input: Buffer, options: { maxOutputLength: number }) => Promise<Buffer>> = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress),
};

/** Decodes and parses an answer; undefined when its encoding is unknown or it decodes past `maxBytes`. */
export async function prepareAnswer(answer: RawAnswer, config: CompareConfig): Promise<PreparedAnswer | undefined> {
  let body = answer.body;
  const encoding = text(answer.headers['content-encoding'])?.trim().toLowerCase();
  if (encoding && encoding !== 'identity' && body.length > 0) {
    const decode = decoders[encoding];
    if (!decode) return undefined;
    try {
      body = await decode(body, { maxOutputLength: config.maxBytes });
    } catch {
      return undefined;
    }
  }
  const headers: Record<string, string> = {};
  for (const name of config.headers) {
    const value = text(answer.headers[name]);
    if (value !== undefined) headers[name] = name === 'content-type' ? mediaType(value) : value;
  }
  const prepared: PreparedAnswer = { status: answer.status, headers, body };
  if (body.length > 0 && isJsonAnswer({ 'content-type': text(answer.headers['content-type']) })) prepared.json = parseJsonSafely(body);
  return prepared;
}

/**
 * The differences between two answers, `primary` first. `skip` leaves out learned noise. The body is compared
 * when `withBody` (not for HEAD); as JSON when both parsed, otherwise by bytes (one difference at `body`).
 */
export function compareAnswers(primary: PreparedAnswer, other: PreparedAnswer, config: CompareConfig, withBody: boolean, skip?: (path: string) => boolean): Difference[] {
  const found: Difference[] = [];
  const add = (difference: Difference) => {
    if (found.length < config.limit && !skip?.(difference.path)) found.push(difference);
  };
  if (primary.status !== other.status) add({ path: 'status', kind: 'value', primary: primary.status, candidate: other.status, at: [] });
  for (const name of config.headers) {
    const a = primary.headers[name];
    const b = other.headers[name];
    if (a === b) continue;
    const path = `headers.${name}`;
    if (b === undefined) add({ path, kind: 'missing', primary: a, at: [] });
    else if (a === undefined) add({ path, kind: 'extra', candidate: b, at: [] });
    else add({ path, kind: 'value', primary: a, candidate: b, at: [] });
  }
  if (!withBody || found.length >= config.limit) return found;
  if (primary.json && other.json) {
    found.push(...diff(primary.json.value, other.json.value, config.rules, { prefix: 'body', limit: config.limit - found.length, skip }));
  } else if (!primary.body.equals(other.body)) {
    add({ path: 'body', kind: 'value', primary: summary(primary.body, other.body), candidate: summary(other.body, primary.body), at: [] });
  }
  return found;
}

/** What a sample shows of a body compared by bytes: its size, a hash, where it starts to differ (never its content). */
function summary(body: Buffer, other: Buffer): { bytes: number; sha256: string; firstDifferenceAt: number } {
  let at = 0;
  const shorter = Math.min(body.length, other.length);
  while (at < shorter && body[at] === other[at]) at++;
  return { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex').slice(0, 16), firstDifferenceAt: at };
}

function text(value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/** `application/json; charset=utf-8` → `application/json`: frameworks differ in parameters, not in what they send. */
function mediaType(value: string): string {
  return value.split(';')[0].trim().toLowerCase();
}
