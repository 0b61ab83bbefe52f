/**
 * Where JWT verification keys come from — an HMAC secret, a PEM public key, or a JWKS endpoint — with
 * the algorithm allow-list pinned to the kind of key, so an `alg: none` token, an HS256 token signed
 * with the RSA public key, or a token carrying its own key (`jwk`, `jku`, `x5u`, `x5c`) never verifies.
 */
import { createPublicKey, createSecretKey, KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ConfigError, GatewayError } from './errors';
import { Duration, parseDuration } from './duration';
import { load } from './load';

export type JwtAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

const HMAC: readonly string[] = ['HS256', 'HS384', 'HS512'];
const RSA: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const EC: readonly string[] = ['ES256', 'ES384', 'ES512'];
/** The curve each ES algorithm signs on (RFC 7518 §3.4), as Node's `namedCurve` names it. */
const EC_CURVES: Readonly<Record<string, string>> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };
const SUPPORTED = [...HMAC, ...RSA, ...EC];
/** Header parameters by which a token would bring its own key: never trusted. */
const EMBEDDED_KEY_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'];

export interface JwksSourceOptions {
  /** JWKS endpoint of the identity provider, e.g. `'https://idp.example.com/.well-known/jwks.json'`. */
  jwksUri: string;
  /** Most JWKS refetches a minute caused by unknown `kid`s; a flood of random `kid`s cannot exceed it. Defaults to 6. */
  jwksRefetchPerMinute?: number;
  /** How long fetched keys are trusted before a refresh. Defaults to `'10m'`. */
  jwksCacheMaxAge?: Duration;
  /** Timeout of one JWKS fetch. Defaults to `'5s'`. */
  jwksTimeout?: Duration;
}

/** Resolves the verification key of a raw token, or fails with the reason. */
export type KeyResolver = (req: IncomingMessage, rawToken: string, done: (err: unknown, key?: KeyObject) => void) => void;

/** A token failure that is the token's fault (401), as opposed to the key source's (503). */
export class TokenRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenRejected';
  }
}

/**
 * Builds the key resolver for passport-jwt's `secretOrKeyProvider`, after checking that every allowed
 * algorithm fits the key source.
 */
export function createKeyResolver(
  options: { secret?: string | Buffer; algorithms?: unknown } & Partial<JwksSourceOptions>,
  option: (key: string) => string,
): { resolve: KeyResolver; algorithms: JwtAlgorithm[] } {
  const jose = load('jose');
  const algorithms = options.algorithms;
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new ConfigError(`"${option('algorithms')}" is required: list the algorithms your tokens use, e.g. algorithms: ['RS256'].`);
  }
  for (const alg of algorithms) {
    if (alg === 'EdDSA') throw new ConfigError(`"${option('algorithms')}": EdDSA is not supported by passport-jwt's verifier (jsonwebtoken); use ES256 or RS256.`);
    if (!SUPPORTED.includes(alg)) throw new ConfigError(`"${option('algorithms')}" has ${JSON.stringify(alg)}; supported: ${SUPPORTED.join(', ')}.`);
  }
  const allowed = algorithms as JwtAlgorithm[];
  if ((options.secret === undefined) === (options.jwksUri === undefined)) {
    throw new ConfigError(`Set exactly one of "${option('secret')}" (HMAC secret or PEM public key) and "${option('jwksUri')}".`);
  }

  const checkHeader = (rawToken: string): { alg: string; kid?: string } => {
    let header: Record<string, unknown>;
    try {
      header = jose.decodeProtectedHeader(rawToken) as Record<string, unknown>;
    } catch {
      throw new TokenRejected('jwt malformed');
    }
    for (const name of EMBEDDED_KEY_HEADERS) if (header[name] !== undefined) throw new TokenRejected(`token carries its own key (${name})`);
    if (typeof header.alg !== 'string' || !allowed.includes(header.alg as JwtAlgorithm)) throw new TokenRejected('invalid algorithm');
    return { alg: header.alg, kid: typeof header.kid === 'string' ? header.kid : undefined };
  };

  if (options.secret !== undefined) {
    const key = secretKey(options.secret, allowed, option);
    return {
      algorithms: allowed,
      resolve: (_req, rawToken, done) => {
        try {
          checkHeader(rawToken);
        } catch (err) {
          return done(err);
        }
        done(null, key);
      },
    };
  }

  const symmetric = allowed.filter((alg) => HMAC.includes(alg));
  if (symmetric.length) throw new ConfigError(`"${option('algorithms')}" has ${symmetric.join(', ')}, but keys from "${option('jwksUri')}" are public keys; allow only RS*, PS* or ES* algorithms.`);
  let url: URL;
  try {
    url = new URL(options.jwksUri as string);
  } catch {
    throw new ConfigError(`"${option('jwksUri')}" must be an absolute URL; received ${JSON.stringify(options.jwksUri)}.`);
  }
  const perMinute = options.jwksRefetchPerMinute ?? 6;
  if (!Number.isFinite(perMinute) || perMinute <= 0) throw new ConfigError(`"${option('jwksRefetchPerMinute')}" must be a positive number.`);
  const jwks = jose.createRemoteJWKSet(url, {
    cooldownDuration: Math.ceil(60_000 / perMinute),
    cacheMaxAge: options.jwksCacheMaxAge === undefined ? 600_000 : parseDuration(options.jwksCacheMaxAge, option('jwksCacheMaxAge')),
    timeoutDuration: options.jwksTimeout === undefined ? 5_000 : parseDuration(options.jwksTimeout, option('jwksTimeout')),
  });
  return {
    algorithms: allowed,
    resolve: (_req, rawToken, done) => {
      let header: { alg: string; kid?: string };
      try {
        header = checkHeader(rawToken);
      } catch (err) {
        return done(err);
      }
      jwks(header as { alg: string }).then(
        (key) => done(null, key as KeyObject),
        (err: unknown) => {
          // Unknown kid (also while refetching is cooling down): the token's problem. A JWKS endpoint
          // that is down or slow: ours, answered 503 rather than blaming the token.
          if (err instanceof jose.errors.JWKSNoMatchingKey || err instanceof jose.errors.JWKSMultipleMatchingKeys) done(new TokenRejected('no matching key'));
          else done(new GatewayError('ERR_AUTH_UNAVAILABLE', { detail: 'The signing keys could not be fetched. Try again later.', cause: err, headers: { 'Retry-After': '5' } }));
        },
      );
    },
  };
}

function secretKey(secret: string | Buffer, algorithms: JwtAlgorithm[], option: (key: string) => string): KeyObject {
  const text = Buffer.isBuffer(secret) ? secret.toString('utf8') : secret;
  if (typeof text !== 'string' || text.length === 0) throw new ConfigError(`"${option('secret')}" must be a non-empty string or Buffer.`);
  if (text.includes('-----BEGIN')) {
    let key: KeyObject;
    try {
      key = createPublicKey(text);
    } catch (err) {
      throw new ConfigError(`"${option('secret')}" looks like PEM but is not a public key or certificate: ${(err as Error).message}`);
    }
    const fits = key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss' ? RSA : key.asymmetricKeyType === 'ec' ? EC : [];
    const misfit = algorithms.filter((alg) => !fits.includes(alg));
    if (misfit.length) {
      throw new ConfigError(`"${option('algorithms')}" has ${misfit.join(', ')}, which cannot be verified with the ${key.asymmetricKeyType} public key in "${option('secret')}"; allow only ${fits.join(', ') || 'nothing'}.`);
    }
    // Each ES algorithm names its curve: an ES256 token can never verify against a P-384 key, so say so now
    // rather than answer 401 to every request.
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (key.asymmetricKeyType === 'ec' && curve !== undefined) {
      const wrongCurve = algorithms.filter((alg) => EC_CURVES[alg] !== curve);
      if (wrongCurve.length) {
        const matching = Object.keys(EC_CURVES).filter((alg) => EC_CURVES[alg] === curve);
        throw new ConfigError(`"${option('algorithms')}" has ${wrongCurve.join(', ')}, but the EC public key in "${option('secret')}" is on curve ${curve}; allow only ${matching.join(', ') || 'nothing (no ES algorithm uses that curve)'}.`);
      }
    }
    return key;
  }
  const misfit = algorithms.filter((alg) => !HMAC.includes(alg));
  if (misfit.length) throw new ConfigError(`"${option('algorithms')}" has ${misfit.join(', ')}, but "${option('secret')}" is an HMAC secret; allow only HS256, HS384 or HS512.`);
  if (Buffer.byteLength(text) < 32) throw new ConfigError(`"${option('secret')}" is shorter than 32 bytes; an HMAC secret that short can be guessed.`);
  return createSecretKey(Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8'));
}
