/**
 * Real keys and real signed JWTs (jose) for the auth suites: HMAC secrets, RSA / RSA-PSS / EC key
 * pairs with their PEM and JWK forms, and hand-built hostile tokens (alg none, embedded keys).
 */
import { randomBytes } from 'node:crypto';
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import type { JWK, JWTPayload, KeyLike } from 'jose';

export type AsymmetricAlg = 'RS256' | 'PS256' | 'ES256' | 'RS384' | 'ES384';

export interface TestKeyPair {
  alg: AsymmetricAlg;
  kid: string;
  privateKey: KeyLike;
  publicKey: KeyLike;
  /** SPKI PEM of the public key (what `jwt.secret` takes). */
  publicPem: string;
  /** Public JWK with `kid`, `alg` and `use: 'sig'` (what a JWKS endpoint serves). */
  jwk: JWK;
}

/** A random HMAC secret of `bytes` bytes, as a hex string (so its length in bytes is `2 * bytes`). */
export function hmacSecret(bytes = 32): string {
  return randomBytes(bytes).toString('hex');
}

/** A random key id. */
export function randomKid(): string {
  return randomBytes(8).toString('hex');
}

/** Generates a key pair for `alg` with a random (or the given) `kid`. */
export async function createKeyPair(alg: AsymmetricAlg, kid = randomKid()): Promise<TestKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, publicPem: await exportSPKI(publicKey), jwk };
}

/** Seconds since the epoch, as JWT `iat`/`exp`/`nbf` use. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export interface SignOptions {
  /** Header parameters added to `{ alg }` (e.g. `kid`, `jwk`, `jku`). */
  header?: Record<string, unknown>;
  /** Seconds from now for `exp`; `null` leaves `exp` out. Defaults to 300. */
  expiresIn?: number | null;
}

/** Signs `claims` (with `iat` and, by default, `exp` five minutes ahead) with an asymmetric key pair. */
export function signWith(pair: TestKeyPair, claims: JWTPayload, options: SignOptions = {}): Promise<string> {
  return sign(claims, pair.privateKey, { alg: pair.alg, kid: pair.kid, ...options.header }, options.expiresIn);
}

/** Signs `claims` with an HMAC secret (any bytes, e.g. a PEM used as an HMAC key by an attacker). */
export function signHmac(claims: JWTPayload, secret: string | Uint8Array, options: SignOptions & { alg?: 'HS256' | 'HS384' | 'HS512' } = {}): Promise<string> {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  return sign(claims, key, { alg: options.alg ?? 'HS256', ...options.header }, options.expiresIn);
}

function sign(claims: JWTPayload, key: KeyLike | Uint8Array, header: Record<string, unknown> & { alg: string }, expiresIn: number | null | undefined): Promise<string> {
  const now = nowSeconds();
  const payload: JWTPayload = { iat: now, ...claims };
  if (expiresIn !== null && claims.exp === undefined) payload.exp = now + (expiresIn ?? 300);
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

/** An unsecured token: header `{ alg: 'none' }`, the claims, and an empty signature. */
export function unsignedToken(claims: JWTPayload): string {
  const now = nowSeconds();
  const encode = (value: unknown) => base64url.encode(JSON.stringify(value));
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ iat: now, exp: now + 300, ...claims })}.`;
}

/** Replaces the signature of `token` with the signature of another token (a well-formed but wrong signature). */
export function withSignatureOf(token: string, other: string): string {
  const [header, payload] = token.split('.');
  return `${header}.${payload}.${other.split('.')[2]}`;
}
