/**
 * What the authentication schemes share: the Scheme shape authenticate() tries in order, the 401 they
 * answer with, and the option pieces several of them declare (header names, realms, consumers).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Consumer } from '../../lib/consumer';
import { GatewayError, GatewayErrorCode } from '../../lib/errors';
import type { Z } from '../../lib/schema';

/** A scheme tried in order; `attempt` resolves a consumer, `false` when its credential is absent, or throws a GatewayError. */
export interface Scheme {
  name: 'jwt' | 'apiKey' | 'mtls';
  /** The scheme's `WWW-Authenticate` challenge. */
  challenge: string;
  attempt(req: IncomingMessage, res: ServerResponse): Promise<Consumer | false>;
}

/** What an API key (or a client certificate) stands for. */
export interface ApiKeyConsumer {
  /** The consumer id (`req.user.id`). Required. */
  id: string;
  /** The consumer's plan, for `authorize({ tiers })` and rate-limit tiers. Defaults to none. */
  tier?: string;
  /** The scopes granted to the consumer. Defaults to none. */
  scopes?: string[];
}

/** A 401 with the scheme's challenge; `cause` is kept for logs, never sent. */
export function unauthorized(code: GatewayErrorCode, detail: string, challenge: string, cause?: unknown): GatewayError {
  return new GatewayError(code, { detail, cause, headers: { 'WWW-Authenticate': challenge } });
}

/** A header name (letters, digits and dashes), resolved to lower case. */
export function headerName(z: Z) {
  return z
    .string({ error: 'must be a header name' })
    .regex(/^[A-Za-z0-9-]+$/, { error: 'must be a header name (letters, digits and dashes)' })
    .transform((name) => name.toLowerCase());
}

/** A `WWW-Authenticate` realm: it is written between quotes, so printable ASCII without quotes. */
export function realm(z: Z) {
  return z.string({ error: 'must be printable ASCII without quotes.' }).regex(/^[\x20-\x21\x23-\x7e]*$/, { error: 'must be printable ASCII without quotes.' });
}

/** The fields of a consumer in options (`apiKey.keys`, `mtls.consumers`, where `id` is made optional). */
export function consumerFields(z: Z) {
  return {
    id: z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }),
    tier: z.string({ error: 'must be a string' }).optional(),
    scopes: z.array(z.string({ error: 'must be a string' }), { error: 'must be a list of strings' }).optional(),
  };
}
