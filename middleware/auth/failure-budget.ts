/**
 * A budget of failed authentications per client address: once an address has presented too many
 * rejected credentials in a window, its next attempts are answered 429 without checking them, so token
 * and API-key guessing is throttled even where no rate limit runs before authentication.
 *
 * Counters live in this process, in a fixed window, and are bounded: past MAX_ADDRESSES distinct
 * addresses in one window, new ones are not counted (fail open rather than grow without bound).
 */
import type { IncomingMessage } from 'node:http';
import { ipKeyGenerator } from 'express-rate-limit';
import { clientAddress } from '../../lib/client-address';
import { GatewayError } from '../../lib/errors';

const MAX_ADDRESSES = 100_000;

/** Codes that mean "a credential was presented and it was wrong": the ones guessing produces. */
const GUESSES = new Set(['ERR_AUTH_TOKEN_INVALID', 'ERR_AUTH_KEY_INVALID', 'ERR_AUTH_CERT_INVALID']);

export interface FailureBudget {
  /** The 429 to answer when the request's address has used its budget, else undefined. */
  exhausted(req: IncomingMessage): GatewayError | undefined;
  /** Counts `err` against the request's address when it is a rejected credential. */
  record(req: IncomingMessage, err: unknown): void;
  /** Forgets every address's failures (gw.reset(), between tests). */
  reset(): void;
}

export function failureBudget(limit: number, windowMs: number): FailureBudget {
  let windowStart = Date.now();
  let failures = new Map<string, number>();
  const addressOf = (req: IncomingMessage) => ipKeyGenerator(clientAddress(req), 56);
  const roll = () => {
    const now = Date.now();
    if (now - windowStart >= windowMs) {
      windowStart = now - ((now - windowStart) % windowMs);
      failures = new Map();
    }
  };
  return {
    exhausted(req) {
      roll();
      if ((failures.get(addressOf(req)) ?? 0) < limit) return undefined;
      const retryAfter = Math.max(1, Math.ceil((windowStart + windowMs - Date.now()) / 1000));
      return new GatewayError('ERR_RATE_LIMITED', {
        detail: 'Too many failed authentication attempts from your address. Retry after the time in the Retry-After header.',
        headers: { 'Retry-After': String(retryAfter) },
      });
    },
    reset() {
      failures = new Map();
      windowStart = Date.now();
    },
    record(req, err) {
      if (!(err instanceof GatewayError) || !GUESSES.has(err.code)) return;
      roll();
      const address = addressOf(req);
      const count = failures.get(address);
      if (count === undefined && failures.size >= MAX_ADDRESSES) return;
      failures.set(address, (count ?? 0) + 1);
    },
  };
}
