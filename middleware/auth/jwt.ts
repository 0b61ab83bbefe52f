/**
 * The JWT scheme of authenticate(): Bearer tokens verified by passport-jwt (jsonwebtoken) against an HMAC
 * secret, a PEM public key or a JWKS endpoint (lib/jwt-keys.ts pins the algorithms to the key). A refused
 * token is classified by what refused it (its error class, or a check of ours), never by reading messages
 * a library may reword.
 */
import { createRequire } from 'node:module';
import type passport from 'passport';
import { Consumer, scopesFromClaims } from '../../lib/consumer';
import type { Duration } from '../../lib/duration';
import { GatewayError } from '../../lib/errors';
import { createKeyResolver, JwksSourceOptions, JwtAlgorithm, TokenRejected } from '../../lib/jwt-keys';
import { load } from '../../lib/load';
import { defineSchema, duration, Z } from '../../lib/schema';
import { Scheme, unauthorized } from './common';

export interface JwtOptions extends Partial<JwksSourceOptions> {
  /** HMAC secret (at least 32 bytes), or a PEM-encoded public key / certificate. Use this or `jwksUri`. Defaults to none. */
  secret?: string | Buffer;
  /** Required: the algorithms your tokens are signed with, e.g. `['RS256']`. Pinned to the key source. */
  algorithms: JwtAlgorithm[];
  /** Accepted `iss` value(s). Defaults to any issuer. */
  issuer?: string | string[];
  /** Accepted `aud` value(s): a token is accepted when one of its audiences is listed. Defaults to any audience. */
  audience?: string | string[];
  /** Leeway for `exp` and `nbf` (ms or `'30s'`). Defaults to 0. */
  clockTolerance?: Duration;
  /** Reject tokens without `exp`. Defaults to true; set false only for tokens that are revoked another way. */
  requireExpiry?: boolean;
  /** Claim holding the consumer id. Defaults to `'sub'`. */
  idClaim?: string;
  /** Claim holding the consumer tier. Defaults to `'tier'`. */
  tierClaim?: string;
}

/** One or more non-empty strings. */
function oneOrMore(z: Z) {
  const text = z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' });
  return z.union([text, z.array(text, { error: 'must be a string or a list of strings' }).min(1, { error: 'must be a string or a non-empty list of strings' })], { error: 'must be a string or a list of strings' });
}

/**
 * The `jwt` options of authenticate(). The algorithms and the key source are checked together, against
 * the key itself, by lib/jwt-keys.ts; this schema only makes sure they are there and of the right kind.
 */
export const jwtSchema = defineSchema((z) =>
  z.strictObject(
    {
      secret: z.custom<string | Buffer>((value) => typeof value === 'string' || Buffer.isBuffer(value), { error: 'must be a string (an HMAC secret or a PEM public key) or a Buffer.' }).optional(),
      jwksUri: z.string({ error: "must be an absolute URL, e.g. 'https://idp.example.com/.well-known/jwks.json'" }).optional(),
      jwksRefetchPerMinute: z.number({ error: 'must be a positive number' }).positive({ error: 'must be a positive number' }).optional(),
      jwksCacheMaxAge: duration(z).optional(),
      jwksTimeout: duration(z).optional(),
      // Which algorithms, and whether they fit the key, is lib/jwt-keys.ts's to say (with the supported list).
      algorithms: z.custom<JwtAlgorithm[]>((value) => Array.isArray(value), {
        error: (issue) => (issue.input === undefined ? "is required: list the algorithms your tokens use, e.g. algorithms: ['RS256']." : "must be a list of algorithms, e.g. ['RS256']."),
      }),
      issuer: oneOrMore(z).optional(),
      audience: oneOrMore(z).optional(),
      clockTolerance: duration(z).default(0),
      requireExpiry: z.boolean({ error: 'must be true or false' }).default(true),
      idClaim: z.string({ error: 'must be a claim name' }).min(1, { error: 'must be a claim name' }).default('sub'),
      tierClaim: z.string({ error: 'must be a claim name' }).min(1, { error: 'must be a claim name' }).default('tier'),
    },
    { error: 'must be an object of JWT options, e.g. { jwksUri, algorithms: [\'RS256\'] }.' },
  ),
);

export type JwtConfig = ReturnType<ReturnType<typeof jwtSchema>['parse']>;

/** A token refused by a check of ours (its claims), with the detail the client sees. */
class ClaimRejected extends Error {
  constructor(readonly detail: string) {
    super(detail);
    this.name = 'ClaimRejected';
  }
}

/** jsonwebtoken's error classes: the copy passport-jwt verifies with, so that `instanceof` holds. */
type JwtErrors = Pick<typeof import('jsonwebtoken'), 'JsonWebTokenError' | 'NotBeforeError' | 'TokenExpiredError'>;
let jwtErrors: JwtErrors | undefined;
function jsonwebtokenErrors(): JwtErrors {
  jwtErrors ??= createRequire(require.resolve('passport-jwt'))('jsonwebtoken') as JwtErrors;
  return jwtErrors;
}

/**
 * The JWT scheme. `config` is resolved (jwtSchema); `name` gives an option's path for lib/jwt-keys.ts's
 * errors. Issuer and audience are checked here, on the verified claims, so that a refusal says which.
 */
export function jwtScheme(config: JwtConfig, authenticator: passport.Authenticator, realm: string, name: (key: string) => string): Scheme {
  const { resolve, algorithms } = createKeyResolver(config, name);
  const clockTolerance = Math.floor(config.clockTolerance / 1000);
  const issuers = config.issuer === undefined ? undefined : [config.issuer].flat();
  const audiences = config.audience === undefined ? undefined : [config.audience].flat();
  const { requireExpiry, idClaim, tierClaim } = config;
  const errors = jsonwebtokenErrors();
  const strategyName = 'frontdoor-jwt';
  const { ExtractJwt, Strategy: JwtStrategy } = load('passport-jwt');
  const bearerToken = ExtractJwt.fromAuthHeaderAsBearerToken();
  authenticator.use(
    strategyName,
    new JwtStrategy(
      {
        jwtFromRequest: bearerToken,
        secretOrKeyProvider: resolve as never,
        algorithms,
        jsonWebTokenOptions: { clockTolerance },
      },
      // Runs once jsonwebtoken verified the signature, nbf and exp (in that order); the claims are checked after.
      (claims: Record<string, unknown>, done: (err: unknown, user?: unknown, info?: unknown) => void) => {
        const refuse = (detail: string) => done(null, false, new ClaimRejected(detail));
        if (audiences && ![claims.aud].flat().some((aud) => audiences.includes(aud as string))) return refuse('The token audience is not accepted.');
        if (issuers && !issuers.includes(claims.iss as string)) return refuse('The token issuer is not accepted.');
        if (requireExpiry && typeof claims.exp !== 'number') return refuse('The token has no expiry.');
        const id = claims[idClaim];
        if (typeof id !== 'string' || id === '') return refuse('The token has no subject.');
        const tier = claims[tierClaim];
        const consumer: Consumer = { id, scheme: 'jwt', scopes: scopesFromClaims(claims), claims, ...(typeof tier === 'string' ? { tier } : {}) };
        done(null, consumer);
      },
    ),
  );
  const bearer = `Bearer realm="${realm}"`;
  return {
    name: 'jwt',
    challenge: bearer,
    attempt: (req, res) =>
      new Promise((resolvePromise, reject) => {
        // No bearer token: this scheme's credential is absent (the next scheme may find its own).
        if (!bearerToken(req as never)) return resolvePromise(false);
        authenticator.authenticate(strategyName, { session: false }, (err: unknown, user: Consumer | false, info: unknown) => {
          if (err) return reject(err instanceof GatewayError ? err : new GatewayError('ERR_INTERNAL', { cause: err }));
          if (user) return resolvePromise(user);
          if (info instanceof GatewayError) return reject(info); // the key source is down: 503
          reject(tokenFailure(info, bearer, errors));
        })(req, res, (err?: unknown) => reject(err));
      }),
  };
}

/** What lib/jwt-keys.ts's TokenRejected says, by its message (the class has no other field): all its messages are listed there. */
function rejectedDetail(error: TokenRejected): string | undefined {
  if (error.message === 'invalid algorithm') return 'The token algorithm is not accepted.';
  if (error.message.startsWith('token carries its own key')) return 'Tokens carrying their own key are not accepted.';
  if (error.message === 'no matching key') return 'The token was signed with an unknown key.';
  return undefined; // 'jwt malformed'
}

/** Maps a refused token to a code and a client-safe detail, by what refused it; the token is never echoed. */
function tokenFailure(info: unknown, bearer: string, errors: JwtErrors): GatewayError {
  const invalid = (detail: string) => unauthorized('ERR_AUTH_TOKEN_INVALID', detail, `${bearer}, error="invalid_token"`, info);
  if (info instanceof errors.TokenExpiredError) {
    return unauthorized('ERR_AUTH_TOKEN_EXPIRED', 'The access token has expired.', `${bearer}, error="invalid_token", error_description="The access token expired"`, info);
  }
  if (info instanceof errors.NotBeforeError) return invalid('The token is not valid yet.');
  if (info instanceof ClaimRejected) return invalid(info.detail);
  if (info instanceof TokenRejected) return invalid(rejectedDetail(info) ?? 'The token is malformed or invalid.');
  // A JsonWebTokenError says what failed only in its message; 'invalid signature' is the one documented
  // message that matters here (algorithms are refused by lib/jwt-keys.ts before jsonwebtoken sees the
  // token, issuer and audience above; the rest are malformed tokens).
  if (info instanceof errors.JsonWebTokenError && info.message === 'invalid signature') return invalid('The token signature is invalid.');
  return invalid('The token is malformed or invalid.');
}
