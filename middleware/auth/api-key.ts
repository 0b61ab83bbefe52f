/**
 * The API key scheme of authenticate(): a key in a header (or a query parameter), compared by SHA-256
 * digest in constant time against configured keys (which may themselves be digests), or looked up.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ConfigError, ConfigIssue, GatewayError } from '../../lib/errors';
import { defineSchema, fn, parseOptions } from '../../lib/schema';
import { ApiKeyConsumer, consumerFields, headerName, Scheme, unauthorized } from './common';

export type { ApiKeyConsumer } from './common';

export interface ApiKeyOptions {
  /** Header carrying the key. Defaults to `'x-api-key'`. */
  header?: string;
  /** Also accept the key from this query parameter (keys in URLs end up in logs). Defaults to none. */
  query?: string;
  /** Keys and their consumers. A key may be given as `'sha256:<hex digest>'` so config holds no secret. Defaults to none; this or `lookup` is required. */
  keys?: Record<string, ApiKeyConsumer>;
  /** Looks a key up elsewhere (a database): return its consumer, or null when unknown. Defaults to none. */
  lookup?: (key: string, req: IncomingMessage) => ApiKeyConsumer | null | undefined | Promise<ApiKeyConsumer | null | undefined>;
}

/**
 * The `apiKey` options of authenticate(). The consumers in `keys` are checked one by one by
 * apiKeyScheme(), which names them by position: a key is a secret and never appears in a message.
 */
export const apiKeySchema = defineSchema((z) =>
  z.strictObject(
    {
      header: headerName(z).default('x-api-key'),
      query: z.string({ error: 'must be a query parameter name' }).min(1, { error: 'must be a query parameter name' }).optional(),
      keys: z.record(z.string(), z.unknown(), { error: "must be an object of key → consumer, e.g. { 'sha256:<hex>': { id: 'acme' } }." }).optional(),
      lookup: fn<NonNullable<ApiKeyOptions['lookup']>>(z, '(key, req) => consumer | null').optional(),
    },
    { error: "must be an object of API key options, e.g. { keys: { 'sha256:<hex>': { id: 'acme' } } }." },
  ),
);

/** A consumer of `apiKey.keys`. */
export const apiKeyConsumerSchema = defineSchema((z) => z.strictObject(consumerFields(z), { error: 'must be a consumer, e.g. { id: \'acme\', scopes: [\'orders:read\'] }.' }));

export type ApiKeyConfig = ReturnType<ReturnType<typeof apiKeySchema>['parse']>;

/** The API key scheme, and the (lower-case) header it reads keys from. */
export function apiKeyScheme(config: ApiKeyConfig, realm: string, name: (key: string) => string): { scheme: Scheme; header: string } {
  const { header, query, lookup } = config;
  if (!config.keys && !lookup) throw new ConfigError(`"${name('keys')}" or "${name('lookup')}" is required. Example: apiKey: { keys: { 'sha256:<hex>': { id: 'acme', scopes: ['orders:read'] } } }.`);
  const table = keyTable(config.keys ?? {}, name('keys'));
  const challenge = `ApiKey realm="${realm}", header="${header}"`;
  const invalid = () => unauthorized('ERR_AUTH_KEY_INVALID', 'The API key is not valid.', challenge);

  return {
    header,
    scheme: {
      name: 'apiKey',
      challenge,
      async attempt(req) {
        const key = presentedKey(req, header, query);
        if (key === undefined) return false;
        const digest = sha256(key);
        // Compare against every configured digest, without stopping early: the time taken says nothing about the keys.
        let match: ApiKeyConsumer | undefined;
        for (const entry of table) if (timingSafeEqual(entry.digest, digest) && !match) match = entry.consumer;
        if (!match && lookup) {
          try {
            match = (await lookup(key, req)) ?? undefined;
          } catch (err) {
            throw new GatewayError('ERR_AUTH_UNAVAILABLE', { detail: 'API keys cannot be checked right now. Try again later.', cause: err, headers: { 'Retry-After': '5' } });
          }
        }
        if (!match) throw invalid();
        return { id: match.id, scheme: 'apiKey', scopes: [...(match.scopes ?? [])], ...(match.tier ? { tier: match.tier } : {}) };
      },
    },
  };
}

/**
 * The configured keys as digests. Entries are named by position (`entry #2`), never by key; a key that
 * is neither long enough to resist guessing nor a well-formed digest is refused.
 */
function keyTable(keys: Record<string, unknown>, option: string): Array<{ digest: Buffer; consumer: ApiKeyConsumer }> {
  const issues: ConfigIssue[] = [];
  const table = Object.entries(keys).flatMap(([key, value], index) => {
    const entry = `"${option}" entry #${index + 1}`;
    const entryIssues: ConfigIssue[] = [];
    let consumer: ApiKeyConsumer | undefined;
    if (!value || typeof value !== 'object' || typeof (value as { id?: unknown }).id !== 'string' || !(value as { id: string }).id) {
      entryIssues.push({ path: option, message: `${entry} needs an "id".` });
    } else {
      try {
        consumer = parseOptions(apiKeyConsumerSchema(), value);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        // Each issue names the field inside the entry: `"apiKey.keys" entry #2: "scopes" must be a list of strings.`
        entryIssues.push(...err.issues.map((issue) => ({ path: option, message: `${entry}: ${issue.message}` })));
      }
    }
    const hashed = /^sha256:([0-9a-fA-F]{64})$/.exec(key);
    if (!hashed && key.startsWith('sha256:')) entryIssues.push({ path: option, message: `${entry} starts with "sha256:" but is not a 64-digit hex SHA-256 digest.` });
    else if (!hashed && key.length < 16) entryIssues.push({ path: option, message: `${entry}${consumer ? ` (id ${consumer.id})` : ''} is shorter than 16 characters; such keys can be guessed.` });
    issues.push(...entryIssues);
    return consumer && entryIssues.length === 0 ? [{ digest: hashed ? Buffer.from(hashed[1], 'hex') : sha256(key), consumer }] : [];
  });
  if (issues.length) throw new ConfigError(issues.length === 1 ? issues[0].message : `invalid options:\n${issues.map((issue) => `- ${issue.message}`).join('\n')}`, issues);
  return table;
}

function presentedKey(req: IncomingMessage, header: string, query: string | undefined): string | undefined {
  const value = req.headers[header];
  if (typeof value === 'string' && value) return value;
  if (query) {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if (q !== -1) {
      const fromQuery = new URLSearchParams(url.slice(q + 1)).get(query);
      if (fromQuery) return fromQuery;
    }
  }
  return undefined;
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}


