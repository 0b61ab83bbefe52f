/**
 * authenticate(): verifies who is calling — JWT (passport-jwt; HMAC secret, PEM public key or JWKS),
 * API keys, or client certificates (mTLS) — once at the edge, sets `req.user` to a Consumer, and
 * forwards the identity upstream as headers the client cannot forge.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import passport from 'passport';
import { getContext } from '../lib/context';
import { ANONYMOUS, Consumer, scopesFromClaims } from '../lib/consumer';
import { Duration, parseDuration } from '../lib/duration';
import { ConfigError, GatewayError, GatewayErrorCode } from '../lib/errors';
import { createKeyResolver, JwksSourceOptions, JwtAlgorithm, TokenRejected } from '../lib/jwt-keys';
import { assertKnownKeys } from '../lib/options';
import { sendProblem } from '../lib/problem';
import type { ErrorMode, FeatureDescriptor, Middleware } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { load } from '../lib/load';
import { DEFAULT_IDENTITY_HEADERS, registerCredentialHeaders, registerIdentityHeaders, stripIdentityHeaders } from '../lib/auth-headers';

export interface JwtOptions extends Partial<JwksSourceOptions> {
  /** HMAC secret (at least 32 bytes), or a PEM-encoded public key / certificate. Use this or `jwksUri`. */
  secret?: string | Buffer;
  /** Required: the algorithms your tokens are signed with, e.g. `['RS256']`. Pinned to the key source. */
  algorithms: JwtAlgorithm[];
  /** Accepted `iss` value(s). */
  issuer?: string | string[];
  /** Accepted `aud` value(s). */
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

/** What an API key stands for. */
export interface ApiKeyConsumer {
  id: string;
  tier?: string;
  scopes?: string[];
}

export interface ApiKeyOptions {
  /** Header carrying the key. Defaults to `'x-api-key'`. */
  header?: string;
  /** Also accept the key from this query parameter (keys in URLs end up in logs: off by default). */
  query?: string;
  /** Keys and their consumers. A key may be given as `'sha256:<hex digest>'` so config holds no secret. */
  keys?: Record<string, ApiKeyConsumer>;
  /** Looks a key up elsewhere (a database): return its consumer, or null when unknown. */
  lookup?: (key: string, req: IncomingMessage) => ApiKeyConsumer | null | undefined | Promise<ApiKeyConsumer | null | undefined>;
}

export interface MtlsOptions {
  /** Accept only these subject CNs, each with its consumer. Defaults to any authorised certificate, id = CN. */
  consumers?: Record<string, Omit<ApiKeyConsumer, 'id'> & { id?: string }>;
  /** Maps a certificate to a consumer (null rejects it). Overrides `consumers`. */
  map?: (certificate: PeerCertificate) => ApiKeyConsumer | null | undefined;
}

export interface IdentityHeaderOptions {
  /** Header with the consumer id. Defaults to `'x-consumer-id'`. */
  id?: string;
  /** Header with the space-separated scopes. Defaults to `'x-consumer-scopes'`. */
  scopes?: string;
  /** Header with the tier. Defaults to `'x-consumer-tier'`. */
  tier?: string;
  /** JWT claims to forward: `{ email: 'x-consumer-email' }`. */
  claims?: Record<string, string>;
}

export interface AuthenticateOptions {
  /** Bearer JWTs. */
  jwt?: JwtOptions;
  /** API keys in a header (or query parameter). */
  apiKey?: ApiKeyOptions;
  /** Client certificates of an HTTPS server with `requestCert: true`. */
  mtls?: MtlsOptions | true;
  /** Let requests without any credentials through as the anonymous consumer. Defaults to false. */
  optional?: boolean;
  /** Names of the identity headers sent upstream; `false` sends none (client copies of the default names are still removed). */
  identityHeaders?: IdentityHeaderOptions | false;
  /** Forward the client's `Authorization` header (and API key) upstream. Defaults to true. */
  forwardAuthorization?: boolean;
  /** Realm in `WWW-Authenticate`. Defaults to `'api'`. */
  realm?: string;
  /** Answer failures as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}


const KNOWN = ['jwt', 'apiKey', 'mtls', 'optional', 'identityHeaders', 'forwardAuthorization', 'realm', 'onError'];
const JWT_KNOWN = ['secret', 'jwksUri', 'jwksRefetchPerMinute', 'jwksCacheMaxAge', 'jwksTimeout', 'algorithms', 'issuer', 'audience', 'clockTolerance', 'requireExpiry', 'idClaim', 'tierClaim'];
const API_KEY_KNOWN = ['header', 'query', 'keys', 'lookup'];

/** A scheme tried in order; `attempt` resolves a consumer, `false` when its credential is absent, or throws a GatewayError. */
interface Scheme {
  name: 'jwt' | 'apiKey' | 'mtls';
  challenge: string;
  attempt(req: IncomingMessage, res: ServerResponse): Promise<Consumer | false>;
}

/**
 * Creates the authentication middleware. Several schemes may be given; the first that succeeds wins.
 *
 * @example
 * app.use('/api/orders', authenticate({ jwt: { jwksUri: 'https://idp.example.com/jwks.json', issuer: 'https://idp.example.com/', audience: 'orders', algorithms: ['RS256'] } }), proxy({ target }));
 */
export function authenticate(options: AuthenticateOptions, optionPrefix = ''): Middleware {
  if (!options || typeof options !== 'object') throw new ConfigError(`authenticate() needs options. Example: authenticate({ jwt: { secret: process.env.JWT_SECRET, algorithms: ['HS256'] } }).`);
  assertKnownKeys(options, KNOWN, optionPrefix);
  const name = (key: string) => optionPrefix + key;
  const realm = options.realm ?? 'api';
  const errorMode = options.onError ?? 'respond';
  if (errorMode !== 'respond' && errorMode !== 'next') throw new ConfigError(`"${name('onError')}" must be 'respond' or 'next'.`);
  const authenticator = new passport.Passport();
  const schemes: Scheme[] = [];
  const credentialHeaders: string[] = [];

  if (options.jwt) {
    schemes.push(jwtScheme(options.jwt, authenticator, realm, (key) => name(`jwt.${key}`)));
    credentialHeaders.push('authorization');
  }
  if (options.apiKey) {
    const apiKey = apiKeyScheme(options.apiKey, realm, (key) => name(`apiKey.${key}`));
    schemes.push(apiKey.scheme);
    credentialHeaders.push(apiKey.header);
  }
  if (options.mtls) schemes.push(mtlsScheme(options.mtls === true ? {} : options.mtls, realm, (key) => name(`mtls.${key}`)));
  if (schemes.length === 0) throw new ConfigError(`authenticate() needs at least one of "${name('jwt')}", "${name('apiKey')}" or "${name('mtls')}".`);

  const apiKeyQuery = options.apiKey?.query;
  const identity = identityHeaderNames(options.identityHeaders, name('identityHeaders'));
  // Every route and proxy() strip these names from client requests from now on, and logs redact these credentials.
  registerIdentityHeaders(identity.all);
  registerCredentialHeaders(credentialHeaders);
  const forwardAuthorization = options.forwardAuthorization !== false;
  const optional = options.optional === true;
  const challenges = schemes.map((scheme) => scheme.challenge).join(', ');

  return function authenticateMiddleware(req, res, next) {
    const context = getContext(req, res);
    // Whatever the outcome, the client's own copies of the identity headers never reach the upstream.
    stripIdentityHeaders(req.headers);
    run(req, res).then(
      (consumer) => {
        (req as { user?: Consumer }).user = consumer;
        if (identity.send) context.upstreamHeaders = { ...context.upstreamHeaders, ...identity.headersFor(consumer) };
        if (!forwardAuthorization) {
          for (const header of credentialHeaders) delete req.headers[header];
          if (apiKeyQuery) stripQueryParameter(req, apiKeyQuery);
        }
        next();
      },
      (err: unknown) => {
        if (errorMode === 'next') next(err);
        else sendProblem(req, res, err);
      },
    );
  };

  async function run(req: IncomingMessage, res: ServerResponse): Promise<Consumer> {
    let failure: GatewayError | undefined;
    for (const scheme of schemes) {
      try {
        const consumer = await scheme.attempt(req, res);
        if (consumer) return consumer;
      } catch (err) {
        if (!(err instanceof GatewayError) || err.status !== 401) throw err;
        // A credential was presented and rejected: remember the first such reason, try the next scheme.
        failure ??= err;
      }
    }
    if (failure) throw failure;
    if (optional) return { ...ANONYMOUS, scopes: [] };
    throw unauthorized('ERR_AUTH_MISSING', 'Credentials are required.', challenges);
  }
}

function unauthorized(code: GatewayErrorCode, detail: string, challenge: string, cause?: unknown): GatewayError {
  return new GatewayError(401, code, { detail, cause, headers: { 'WWW-Authenticate': challenge } });
}

function jwtScheme(options: JwtOptions, authenticator: passport.Authenticator, realm: string, name: (key: string) => string): Scheme {
  assertKnownKeys(options, JWT_KNOWN, name(''));
  const { resolve, algorithms } = createKeyResolver(options, name);
  const clockTolerance = options.clockTolerance === undefined ? 0 : Math.floor(parseDuration(options.clockTolerance, name('clockTolerance')) / 1000);
  const requireExpiry = options.requireExpiry !== false;
  const idClaim = options.idClaim ?? 'sub';
  const tierClaim = options.tierClaim ?? 'tier';
  const strategyName = 'frontdoor-jwt';
  const { ExtractJwt, Strategy: JwtStrategy } = load('passport-jwt');
  authenticator.use(
    strategyName,
    new JwtStrategy(
      {
        jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
        secretOrKeyProvider: resolve as never,
        algorithms,
        issuer: options.issuer as never,
        audience: options.audience as never,
        jsonWebTokenOptions: { clockTolerance },
      },
      (claims: Record<string, unknown>, done: (err: unknown, user?: unknown, info?: unknown) => void) => {
        if (requireExpiry && typeof claims.exp !== 'number') return done(null, false, new TokenRejected('jwt has no exp'));
        const id = claims[idClaim];
        if (typeof id !== 'string' || id === '') return done(null, false, new TokenRejected(`jwt has no ${idClaim}`));
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
        authenticator.authenticate(strategyName, { session: false }, (err: unknown, user: Consumer | false, info: unknown) => {
          if (err) return reject(err instanceof GatewayError ? err : new GatewayError(500, 'ERR_INTERNAL', { cause: err }));
          if (user) return resolvePromise(user);
          if (info instanceof GatewayError) return reject(info);
          const message = info instanceof Error ? info.message : String(info);
          if (message === 'No auth token') return resolvePromise(false);
          reject(tokenFailure(info, bearer));
        })(req, res, (err?: unknown) => reject(err));
      }),
  };
}

/** Maps jsonwebtoken / key-resolver failures to a code and a client-safe detail; the token is never echoed. */
function tokenFailure(info: unknown, bearer: string): GatewayError {
  const error = info instanceof Error ? info : new Error(String(info));
  if (error.name === 'TokenExpiredError') {
    return unauthorized('ERR_AUTH_TOKEN_EXPIRED', 'The access token has expired.', `${bearer}, error="invalid_token", error_description="The access token expired"`, error);
  }
  const details: Array<[RegExp, string]> = [
    [/invalid signature/, 'The token signature is invalid.'],
    [/jwt not active/, 'The token is not valid yet.'],
    [/issuer invalid/, 'The token issuer is not accepted.'],
    [/audience invalid/, 'The token audience is not accepted.'],
    [/invalid algorithm/, 'The token algorithm is not accepted.'],
    [/own key/, 'Tokens carrying their own key are not accepted.'],
    [/no matching key/, 'The token was signed with an unknown key.'],
    [/has no exp/, 'The token has no expiry.'],
    [/has no /, 'The token has no subject.'],
  ];
  const detail = details.find(([pattern]) => pattern.test(error.message))?.[1] ?? 'The token is malformed or invalid.';
  return unauthorized('ERR_AUTH_TOKEN_INVALID', detail, `${bearer}, error="invalid_token"`, error);
}

function apiKeyScheme(options: ApiKeyOptions, realm: string, name: (key: string) => string): { scheme: Scheme; header: string } {
  assertKnownKeys(options, API_KEY_KNOWN, name(''));
  const header = (options.header ?? 'x-api-key').toLowerCase();
  if (!/^[a-z0-9-]+$/.test(header)) throw new ConfigError(`"${name('header')}" must be a header name; received ${JSON.stringify(options.header)}.`);
  if (!options.keys && !options.lookup) throw new ConfigError(`"${name('keys')}" or "${name('lookup')}" is required. Example: apiKey: { keys: { 'sha256:<hex>': { id: 'acme', scopes: ['orders:read'] } } }.`);
  if (options.lookup !== undefined && typeof options.lookup !== 'function') throw new ConfigError(`"${name('lookup')}" must be a function (key, req) => consumer | null.`);
  const table = Object.entries(options.keys ?? {}).map(([key, consumer], index) => {
    if (!consumer || typeof consumer.id !== 'string' || !consumer.id) throw new ConfigError(`"${name('keys')}" entry #${index + 1} needs an "id".`);
    const hashed = /^sha256:([0-9a-fA-F]{64})$/.exec(key);
    if (!hashed && key.startsWith('sha256:')) throw new ConfigError(`"${name('keys')}" entry #${index + 1} starts with "sha256:" but is not a 64-digit hex SHA-256 digest.`);
    if (!hashed && key.length < 16) throw new ConfigError(`"${name('keys')}" entry #${index + 1} (id ${consumer.id}) is shorter than 16 characters; such keys can be guessed.`);
    return { digest: hashed ? Buffer.from(hashed[1], 'hex') : sha256(key), consumer };
  });
  const challenge = `ApiKey realm="${realm}", header="${header}"`;
  const invalid = () => unauthorized('ERR_AUTH_KEY_INVALID', 'The API key is not valid.', challenge);

  return {
    header,
    scheme: {
      name: 'apiKey',
      challenge,
      async attempt(req) {
        const key = presentedKey(req, header, options.query);
        if (key === undefined) return false;
        const digest = sha256(key);
        // Compare against every configured digest, without stopping early: the time taken says nothing about the keys.
        let match: ApiKeyConsumer | undefined;
        for (const entry of table) if (timingSafeEqual(entry.digest, digest) && !match) match = entry.consumer;
        if (!match && options.lookup) {
          try {
            match = (await options.lookup(key, req)) ?? undefined;
          } catch (err) {
            throw new GatewayError(503, 'ERR_AUTH_UNAVAILABLE', { detail: 'API keys cannot be checked right now. Try again later.', cause: err, headers: { 'Retry-After': '5' } });
          }
        }
        if (!match) throw invalid();
        return { id: match.id, scheme: 'apiKey', scopes: [...(match.scopes ?? [])], ...(match.tier ? { tier: match.tier } : {}) };
      },
    },
  };
}

function presentedKey(req: IncomingMessage, header: string, query: string | undefined): string | undefined {
  const value = req.headers[header];
  if (typeof value === 'string' && value) return value;
  if (query) {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if (q !== -1) {
      const fromQuery = new URLSearchParams(url.slice(q + 1)).get(query);
      if (fromQuery) return fromQuery;
    }
  }
  return undefined;
}

function mtlsScheme(options: MtlsOptions, realm: string, name: (key: string) => string): Scheme {
  assertKnownKeys(options, ['consumers', 'map'], name(''));
  const challenge = `Mutual realm="${realm}"`;
  return {
    name: 'mtls',
    challenge,
    async attempt(req) {
      const socket = req.socket as TLSSocket;
      if (!socket.encrypted || typeof socket.getPeerCertificate !== 'function') return false;
      const certificate = socket.getPeerCertificate();
      if (!certificate || Object.keys(certificate).length === 0) return false;
      const reject = (detail: string) => unauthorized('ERR_AUTH_CERT_INVALID', detail, challenge, socket.authorizationError);
      if (!socket.authorized) throw reject('The client certificate is not trusted.');
      const cn = [certificate.subject?.CN].flat()[0];
      let consumer: ApiKeyConsumer | null | undefined;
      if (options.map) consumer = options.map(certificate);
      else if (options.consumers) consumer = cn && Object.hasOwn(options.consumers, cn) ? { id: cn, ...options.consumers[cn] } : undefined;
      else consumer = cn ? { id: cn } : undefined;
      if (!consumer) throw reject('The client certificate is not allowed here.');
      return { id: consumer.id, scheme: 'mtls', scopes: [...(consumer.scopes ?? [])], ...(consumer.tier ? { tier: consumer.tier } : {}) };
    },
  };
}

function identityHeaderNames(options: IdentityHeaderOptions | false | undefined, option: string) {
  // Even when none are sent, forged copies of the default names must not reach an upstream that may trust them.
  if (options === false) return { all: [...DEFAULT_IDENTITY_HEADERS], send: false, headersFor: () => ({}) };
  assertKnownKeys(options ?? {}, ['id', 'scopes', 'tier', 'claims'], option + '.');
  const id = (options?.id ?? 'x-consumer-id').toLowerCase();
  const scopes = (options?.scopes ?? 'x-consumer-scopes').toLowerCase();
  const tier = (options?.tier ?? 'x-consumer-tier').toLowerCase();
  const claims = Object.entries(options?.claims ?? {}).map(([claim, header]) => [claim, header.toLowerCase()] as const);
  const all = [id, scopes, tier, ...claims.map(([, header]) => header)];
  for (const header of all) if (!/^[a-z0-9-]+$/.test(header)) throw new ConfigError(`"${option}" has an invalid header name ${JSON.stringify(header)}.`);
  return {
    all,
    send: true,
    headersFor(consumer: Consumer): Record<string, string> {
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
function headerValue(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value);
}

/** The decoded name of one `name=value` pair of a query string, as URLSearchParams reads it. */
function queryName(pair: string): string {
  const eq = pair.indexOf('=');
  const raw = (eq === -1 ? pair : pair.slice(0, eq)).replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Removes a query parameter (the API key) from the URLs the request is forwarded with. The other
 * parameters stay byte for byte (no re-encoding): upstreams may verify signatures over the raw query.
 */
function stripQueryParameter(req: IncomingMessage, name: string): void {
  const strip = (url: string | undefined) => {
    if (!url) return url;
    const q = url.indexOf('?');
    if (q === -1) return url;
    const pairs = url.slice(q + 1).split('&');
    const kept = pairs.filter((pair) => queryName(pair) !== name);
    if (kept.length === pairs.length) return url;
    const rest = kept.join('&');
    return url.slice(0, q) + (rest ? `?${rest}` : '');
  };
  req.url = strip(req.url);
  const withOriginal = req as { originalUrl?: string };
  if (withOriginal.originalUrl) withOriginal.originalUrl = strip(withOriginal.originalUrl);
  const context = getContext(req);
  if (context.forwardUrl) context.forwardUrl = strip(context.forwardUrl);
}

const SCHEME = 'auth scheme';

/**
 * The route option `auth`: authenticate() options, or the name of a scheme in the gateway's `authSchemes`
 * (built once per gateway, so routes naming it share one key cache). Upgrades are authenticated too.
 */
export const authFeature: FeatureDescriptor = {
  option: 'auth',
  gatewayOptions: ['authSchemes'],
  phase: 'identify',
  upgrade: { apply: true },
  prepare(gateway, shared) {
    const schemes = gateway.authSchemes;
    if (schemes === undefined) return;
    if (!schemes || typeof schemes !== 'object') throw new ConfigError(`"authSchemes" must be an object of name → authenticate() options.`);
    for (const [name, options] of Object.entries(schemes)) {
      shared.get(SCHEME, name, name, `"authSchemes.${name}"`, `"authSchemes.${name}"`, () => authenticate(withGatewayErrors(options as AuthenticateOptions, `authSchemes.${name}`), `authSchemes.${name}.`));
    }
  },
  build(value, scope) {
    if (typeof value === 'string') {
      const shared = scope.shared.find<Middleware>(SCHEME, value);
      const defined = Object.keys((scope.gateway.authSchemes as object | undefined) ?? {});
      if (!shared) throw new ConfigError(`"${scope.optionPrefix}auth" names the scheme ${JSON.stringify(value)}, which is not in "authSchemes" (${defined.join(', ') || 'none defined'}).`);
      return { handler: shared };
    }
    return { handler: authenticate(withGatewayErrors(value as AuthenticateOptions, `${scope.optionPrefix}auth`), `${scope.optionPrefix}auth.`) };
  },
};

/** The realm a route's auth answers with (a named scheme's, or the route's own), for authorize()'s 401. */
export function realmOf(auth: unknown, gateway: Readonly<Record<string, unknown>>): string | undefined {
  const options = typeof auth === 'string' ? (gateway.authSchemes as Record<string, AuthenticateOptions> | undefined)?.[auth] : (auth as AuthenticateOptions | undefined);
  return typeof options?.realm === 'string' ? options.realm : undefined;
}
