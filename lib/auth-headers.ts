/**
 * Header names that belong to the gateway's authentication. Identity headers (`X-Consumer-Id`, …) are the
 * gateway's own: a client's copies are removed on every route and by proxy() used alone, including the names
 * any authenticate() in the process configured. Credential headers (`Authorization`, API-key headers) are
 * redacted wherever the gateway logs headers.
 *
 * The sets only grow: a name that was ever an identity or credential header stays protected.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** The default identity header names, stripped even where no authenticate() runs. */
export const DEFAULT_IDENTITY_HEADERS = ['x-consumer-id', 'x-consumer-scopes', 'x-consumer-tier'] as const;

const identityHeaders = new Set<string>(DEFAULT_IDENTITY_HEADERS);
const credentialHeaders = new Set<string>(['authorization', 'proxy-authorization', 'cookie', 'x-api-key']);

/** Called by authenticate() with the (lower-case) identity header names it sends upstream. */
export function registerIdentityHeaders(names: Iterable<string>): void {
  for (const name of names) identityHeaders.add(name);
}

/** Called by authenticate() with the (lower-case) headers its schemes read credentials from. */
export function registerCredentialHeaders(names: Iterable<string>): void {
  for (const name of names) credentialHeaders.add(name);
}

/** Whether `name` (lower-case) is one of the gateway's identity headers. */
export function isIdentityHeader(name: string): boolean {
  return identityHeaders.has(name);
}

/** Removes client-sent copies of every identity header; the gateway sets its own afterwards. */
export function stripIdentityHeaders(headers: IncomingHttpHeaders): void {
  for (const name of identityHeaders) if (headers[name] !== undefined) delete headers[name];
}

/** A copy of `headers` with every credential header's value replaced by `[redacted]`. */
export function redactCredentials(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const copy: IncomingHttpHeaders = { ...headers };
  for (const name of credentialHeaders) if (copy[name] !== undefined) copy[name] = '[redacted]';
  return copy;
}
