/**
 * API keys for tests: random, well-formed, and long enough for authenticate()'s `apiKey.keys` (which
 * refuses keys shorter than 16 characters), plus the `sha256:` form a config can hold instead of the key.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface TestApiKeyOptions {
  /** Put in front of the random part, to tell keys apart in logs (`'acme_'`). Defaults to `'fdk_test_'`. */
  prefix?: string;
}

/** A new random API key: the prefix and 32 random bytes in base64url (43 characters, URL- and header-safe). */
export function apiKey(options: TestApiKeyOptions = {}): string {
  const prefix = options.prefix ?? 'fdk_test_';
  if (prefix.startsWith('sha256:')) throw new TypeError('apiKey(): a prefix starting with "sha256:" would be read as a digest, not a key.');
  if (!/^[\x21-\x7e]*$/.test(prefix)) throw new TypeError('apiKey(): the prefix must be printable ASCII without spaces, to travel in a header.');
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** The `'sha256:<hex>'` digest of `key`, which `apiKey.keys` accepts in place of the key itself. */
export function apiKeyDigest(key: string): string {
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}
