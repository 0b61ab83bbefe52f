/**
 * The authenticated consumer: what authenticate() produces and authorize(), rate limiting, logs and
 * identity forwarding read. It is `req.user` (the passport convention) with one stable shape.
 */
import type { IncomingMessage } from 'node:http';

export type AuthScheme = 'jwt' | 'apiKey' | 'mtls' | 'anonymous';

export interface Consumer {
  /** Stable id: the JWT `sub` (or the configured claim), the API key's `id`, the certificate's subject CN. */
  id: string;
  /** How the consumer proved who it is. */
  scheme: AuthScheme;
  /** Plan or tier, e.g. `'free'` or `'enterprise'`; used by rate-limit tiers and authorize({ tiers }). */
  tier?: string;
  /** Granted scopes (OAuth 2.0 `scope`, RFC 9068 `scp`, or the API key's configured scopes). */
  scopes: string[];
  /** The verified JWT claims, for JWT consumers. */
  claims?: Record<string, unknown>;
}

/** The consumer of an anonymous request let through by `optional: true`. */
export const ANONYMOUS: Readonly<Consumer> = Object.freeze({ id: 'anonymous', scheme: 'anonymous', scopes: Object.freeze([]) as unknown as string[] });

/** Returns the authenticated consumer of the request, if authenticate() ran and succeeded. */
export function getConsumer(req: IncomingMessage): Consumer | undefined {
  const user = (req as { user?: unknown }).user;
  return user && typeof user === 'object' && typeof (user as Consumer).id === 'string' && Array.isArray((user as Consumer).scopes) ? (user as Consumer) : undefined;
}

/** Parses scopes from a space-separated OAuth 2.0 `scope` string or an `scp` array (RFC 9068). */
export function scopesFromClaims(claims: Record<string, unknown>): string[] {
  const listed: unknown[] = [];
  if (typeof claims.scope === 'string') listed.push(...claims.scope.split(' '));
  if (Array.isArray(claims.scp)) listed.push(...claims.scp);
  else if (typeof claims.scp === 'string') listed.push(...claims.scp.split(' '));
  return [...new Set(listed.filter((scope): scope is string => typeof scope === 'string' && scope !== ''))];
}
