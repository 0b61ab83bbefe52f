/**
 * Keys and signed JWTs for the auth suites. Signing and key pairs are the published kit's
 * (frontdoor-gateway/testing); what stays here is internal: the narrower algorithm list the suites loop
 * over, and hand-built hostile tokens (alg none, a borrowed signature).
 */
import type { JWTPayload } from 'jose';
import { createKeyPair as createKitKeyPair, nowSeconds, signToken } from '../../lib/testing/tokens';
import type { KeyPair } from '../../lib/testing/tokens';

export { hmacSecret, randomKid, nowSeconds } from '../../lib/testing/tokens';

/** The asymmetric algorithms the gateway verifies and the suites test. */
export type AsymmetricAlg = 'RS256' | 'PS256' | 'ES256' | 'RS384' | 'ES384';

export interface TestKeyPair extends KeyPair {
  alg: AsymmetricAlg;
}

/** Generates a key pair for `alg` with a random (or the given) `kid`. */
export async function createKeyPair(alg: AsymmetricAlg, kid?: string): Promise<TestKeyPair> {
  return (await createKitKeyPair(alg, kid)) as TestKeyPair;
}

export interface SignOptions {
  /** Header parameters added to `{ alg }` (e.g. `kid`, `jwk`, `jku`). */
  header?: Record<string, unknown>;
  /** Seconds from now for `exp`; `null` leaves `exp` out. Defaults to 300. */
  expiresIn?: number | null;
}

/** Signs `claims` (with `iat` and, by default, `exp` five minutes ahead) with an asymmetric key pair. */
export function signWith(pair: TestKeyPair, claims: JWTPayload, options: SignOptions = {}): Promise<string> {
  return signToken(claims, { privateKey: pair.privateKey, algorithm: pair.alg, header: { kid: pair.kid, ...options.header }, expiresIn: options.expiresIn });
}

/** Signs `claims` with an HMAC secret (any bytes, e.g. a PEM used as an HMAC key by an attacker). */
export function signHmac(claims: JWTPayload, secret: string | Uint8Array, options: SignOptions & { alg?: 'HS256' | 'HS384' | 'HS512' } = {}): Promise<string> {
  return signToken(claims, { secret, algorithm: options.alg ?? 'HS256', header: options.header, expiresIn: options.expiresIn });
}

/** An unsecured token: header `{ alg: 'none' }`, the claims, and an empty signature. */
export function unsignedToken(claims: JWTPayload): string {
  const now = nowSeconds();
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ iat: now, exp: now + 300, ...claims })}.`;
}

/** Replaces the signature of `token` with the signature of another token (a well-formed but wrong signature). */
export function withSignatureOf(token: string, other: string): string {
  const [header, payload] = token.split('.');
  return `${header}.${payload}.${other.split('.')[2]}`;
}
