/**
 * Real signed JWTs and keys for tests, with jose (loaded on first use): HMAC secrets, key pairs with
 * their PEM and JWK forms, and `signToken(claims, { secret | privateKey, … })`.
 */
import { createPrivateKey, KeyObject, randomBytes } from 'node:crypto';
import type { JWK, JWTPayload, KeyLike } from 'jose';
import ms from 'ms';
import { load } from '../load';

/** The JWS algorithms the kit signs with. */
export type SigningAlgorithm = 'HS256' | 'HS384' | 'HS512' | AsymmetricAlgorithm;
export type AsymmetricAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

export interface SignTokenOptions {
  /** HMAC secret (HS256 unless `algorithm` says otherwise). Use this or `privateKey`. */
  secret?: string | Uint8Array;
  /** Private key: a KeyObject / CryptoKey (e.g. `createKeyPair().privateKey`), a PKCS#8 PEM string or a private JWK. Use this or `secret`. */
  privateKey?: KeyLike | string | JWK;
  /** Defaults to HS256 with a secret; with a private key, to what the key is for (RS256, ES256/384/512 by curve, EdDSA). */
  algorithm?: SigningAlgorithm;
  /** Lifetime: seconds, or a duration string (`'5m'`, `'-1h'` for an expired token); `null` leaves `exp` out. A `claims.exp` wins. Defaults to 300 (5 minutes). */
  expiresIn?: number | string | null;
  /** The `kid` header, for a key from a JWKS. Defaults to none. */
  kid?: string;
  /** More protected header parameters (`typ`, `jku`, …). Defaults to `{}`. */
  header?: Record<string, unknown>;
}

/** An asymmetric key pair with the forms the gateway's `jwt` options take. */
export interface KeyPair {
  alg: AsymmetricAlgorithm;
  kid: string;
  privateKey: KeyLike;
  publicKey: KeyLike;
  /** SPKI PEM of the public key (what `auth.jwt.secret` takes). */
  publicPem: string;
  /** Public JWK with `kid`, `alg` and `use: 'sig'` (what a JWKS endpoint serves). */
  jwk: JWK;
}

/** A random HMAC secret of `bytes` bytes (default 32, the gateway's minimum), as hex: `2 * bytes` characters. */
export function hmacSecret(bytes = 32): string {
  return randomBytes(bytes).toString('hex');
}

/** A random key id. */
export function randomKid(): string {
  return randomBytes(8).toString('hex');
}

/** Seconds since the epoch, as `iat`, `exp` and `nbf` count. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Generates a key pair for `alg` (default RS256) with a random (or the given) `kid`. */
export async function createKeyPair(alg: AsymmetricAlgorithm = 'RS256', kid = randomKid()): Promise<KeyPair> {
  const { exportJWK, exportSPKI, generateKeyPair } = load('jose');
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, publicPem: await exportSPKI(publicKey), jwk };
}

/**
 * Signs `claims` as a JWT with `iat` and (unless `expiresIn: null`) `exp`.
 *
 * @example
 * const token = await signToken({ sub: 'alice', scope: 'orders:write' }, { secret });
 * const expired = await signToken({ sub: 'alice' }, { secret, expiresIn: '-1m' });
 * const rs = await signToken({ sub: 'svc' }, { privateKey: pair.privateKey, kid: pair.kid });
 */
export async function signToken(claims: JWTPayload, options: SignTokenOptions): Promise<string> {
  if (!options || (options.secret === undefined) === (options.privateKey === undefined)) {
    throw new TypeError('signToken(): give exactly one of "secret" (HMAC) or "privateKey". Example: signToken({ sub: \'alice\' }, { secret }).');
  }
  let key: KeyLike | Uint8Array;
  let alg: SigningAlgorithm;
  if (options.secret !== undefined) {
    alg = options.algorithm ?? 'HS256';
    if (!alg.startsWith('HS')) throw new TypeError(`signToken(): "${alg}" needs a "privateKey", not a "secret".`);
    key = typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret;
  } else {
    key = privateKeyFrom(options.privateKey as KeyLike | string | JWK);
    alg = options.algorithm ?? algorithmFor(key);
    if (alg.startsWith('HS')) throw new TypeError(`signToken(): "${alg}" needs a "secret", not a "privateKey".`);
  }
  const now = nowSeconds();
  const payload: JWTPayload = { iat: now, ...claims };
  const lifetime = lifetimeSeconds(options.expiresIn);
  if (lifetime !== null && claims.exp === undefined) payload.exp = now + lifetime;
  const header = { ...options.header, alg, ...(options.kid !== undefined ? { kid: options.kid } : {}) };
  const { SignJWT } = load('jose');
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

function lifetimeSeconds(expiresIn: SignTokenOptions['expiresIn']): number | null {
  if (expiresIn === null) return null;
  if (expiresIn === undefined) return 300;
  const seconds = typeof expiresIn === 'number' ? expiresIn : ms(expiresIn as ms.StringValue) / 1000;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) throw new TypeError(`signToken(): "expiresIn" must be seconds or a duration such as '5m'; received ${JSON.stringify(expiresIn)}.`);
  return Math.round(seconds);
}

function privateKeyFrom(input: KeyLike | string | JWK): KeyLike {
  if (typeof input === 'string') return createPrivateKey(input);
  if (input instanceof KeyObject) return input;
  // A private JWK has `d`; a CryptoKey has `algorithm`.
  if (typeof (input as JWK).kty === 'string') return createPrivateKey({ key: input as import('node:crypto').JsonWebKey, format: 'jwk' });
  return input as KeyLike;
}

/** The algorithm a private key signs with by default: RS256 for RSA, PS256 for RSA-PSS, ES* by curve, EdDSA. */
function algorithmFor(key: KeyLike): AsymmetricAlgorithm {
  if (key instanceof KeyObject) {
    const type = key.asymmetricKeyType;
    if (type === 'rsa') return 'RS256';
    if (type === 'rsa-pss') return 'PS256';
    if (type === 'ed25519' || type === 'ed448') return 'EdDSA';
    if (type === 'ec') {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return 'ES256';
      if (curve === 'secp384r1') return 'ES384';
      if (curve === 'secp521r1') return 'ES512';
    }
  }
  throw new TypeError('signToken(): cannot tell which algorithm this private key signs with; give "algorithm" (e.g. \'RS256\').');
}
