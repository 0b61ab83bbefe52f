/**
 * Identity forwarding: the headers authenticate() sends upstream with the consumer's id, scopes, tier
 * and chosen claims — their names, and their values made safe for a header.
 */
import { DEFAULT_IDENTITY_HEADERS } from '../../lib/auth-headers';
import type { Consumer } from '../../lib/consumer';
import { defineSchema } from '../../lib/schema';
import { headerName } from './common';

export interface IdentityHeaderOptions {
  /** Header with the consumer id. Defaults to `'x-consumer-id'`. */
  id?: string;
  /** Header with the space-separated scopes. Defaults to `'x-consumer-scopes'`. */
  scopes?: string;
  /** Header with the tier. Defaults to `'x-consumer-tier'`. */
  tier?: string;
  /** JWT claims to forward: `{ email: 'x-consumer-email' }`. Defaults to none. */
  claims?: Record<string, string>;
}

/** The `identityHeaders` options of authenticate(); header names resolve to lower case. */
export const identityHeadersSchema = defineSchema((z) =>
  z.strictObject(
    {
      id: headerName(z).default('x-consumer-id'),
      scopes: headerName(z).default('x-consumer-scopes'),
      tier: headerName(z).default('x-consumer-tier'),
      claims: z.record(z.string(), headerName(z), { error: "must be an object of claim → header name, e.g. { email: 'x-consumer-email' }." }).default({}),
    },
    { error: 'must be false or an object of identity header names.' },
  ),
);

export type IdentityHeadersConfig = ReturnType<ReturnType<typeof identityHeadersSchema>['parse']>;

/** The identity headers of one authenticate(): every name it owns, and the headers for a consumer. */
export interface IdentityForwarding {
  /** Names a client must never send (they are stripped); the default names even when none are sent. */
  all: string[];
  /** Whether identity headers are sent upstream. */
  send: boolean;
  headersFor(consumer: Consumer): Record<string, string>;
}

/** `false` sends none; otherwise the resolved names (identityHeadersSchema). */
export function identityForwarding(config: IdentityHeadersConfig | false): IdentityForwarding {
  // Even when none are sent, forged copies of the default names must not reach an upstream that may trust them.
  if (config === false) return { all: [...DEFAULT_IDENTITY_HEADERS], send: false, headersFor: () => ({}) };
  const { id, scopes, tier } = config;
  const claims = Object.entries(config.claims);
  return {
    all: [id, scopes, tier, ...claims.map(([, header]) => header)],
    send: true,
    headersFor(consumer) {
      const headers: Record<string, string> = { [id]: headerValue(consumer.id), [scopes]: headerValue(consumer.scopes.join(' ')) };
      if (consumer.tier) headers[tier] = headerValue(consumer.tier);
      for (const [claim, header] of claims) {
        const value = consumer.claims?.[claim];
        if (value !== undefined && value !== null) headers[header] = headerValue(typeof value === 'string' ? value : JSON.stringify(value));
      }
      return headers;
    },
  };
}

/** Header values must be visible ASCII; anything else (a unicode `sub`, a newline) is percent-encoded. */
export function headerValue(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value);
}
