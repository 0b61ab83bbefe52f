/**
 * authenticate(): verifies who is calling — JWT (passport-jwt; HMAC secret, PEM public key or JWKS),
 * API keys, or client certificates (mTLS) — once at the edge, sets `req.user` to a Consumer, and
 * forwards the identity upstream as headers the client cannot forge. Each scheme is in middleware/auth/,
 * with identity forwarding; this file puts them together.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import passport from 'passport';
import { getContext, planChanges } from '../lib/context';
import { ANONYMOUS, Consumer } from '../lib/consumer';
import { ConfigError, GatewayError } from '../lib/errors';
import { respondOrNext } from '../lib/problem';
import type { ErrorMode, FeatureDescriptor, Middleware } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { defineSchema, duration, errorMode, parseOptions } from '../lib/schema';
import type { Duration } from '../lib/duration';
import { failureBudget } from './auth/failure-budget';
import { registerCredentialHeaders, registerIdentityHeaders, stripIdentityHeaders } from '../lib/auth-headers';
import { apiKeySchema, apiKeyScheme, ApiKeyOptions } from './auth/api-key';
import { realm as realmSchema, Scheme, unauthorized } from './auth/common';
import { identityForwarding, IdentityHeaderOptions, identityHeadersSchema } from './auth/identity';
import { jwtSchema, jwtScheme, JwtOptions } from './auth/jwt';
import { mtlsSchema, mtlsScheme, MtlsOptions } from './auth/mtls';

export type { ApiKeyConsumer } from './auth/common';
export type { ApiKeyOptions } from './auth/api-key';
export type { IdentityHeaderOptions } from './auth/identity';
export type { JwtOptions } from './auth/jwt';
export type { MtlsOptions } from './auth/mtls';
export { apiKeySchema } from './auth/api-key';
export { identityHeadersSchema } from './auth/identity';
export { jwtSchema } from './auth/jwt';
export { mtlsSchema } from './auth/mtls';

export interface AuthenticateOptions {
  /** Bearer JWTs. Defaults to none; at least one of `jwt`, `apiKey` and `mtls` is required. */
  jwt?: JwtOptions;
  /** API keys in a header (or query parameter). Defaults to none. */
  apiKey?: ApiKeyOptions;
  /** Client certificates of an HTTPS server with `requestCert: true`. Defaults to none. */
  mtls?: MtlsOptions | true;
  /** Let requests without any credentials through as the anonymous consumer. Defaults to false. */
  optional?: boolean;
  /** Names of the identity headers sent upstream; `false` sends none (client copies of the default names are still removed). Defaults to `X-Consumer-Id`, `X-Consumer-Scopes` and `X-Consumer-Tier`. */
  identityHeaders?: IdentityHeaderOptions | false;
  /** Forward the client's `Authorization` header (and API key) upstream. Defaults to true. */
  forwardAuthorization?: boolean;
  /** Realm in `WWW-Authenticate` (printable ASCII without quotes). Defaults to `'api'`. */
  realm?: string;
  /**
   * Failed authentications allowed per client address in a window (rejected tokens, keys or certificates;
   * missing and expired credentials do not count). Past it, the address gets `429 ERR_RATE_LIMITED` without its
   * credentials being checked until the window ends: guessing is throttled. Per process. `false` turns it off.
   * Defaults to `{ limit: 20, window: '1m' }`.
   */
  failureLimit?: { limit?: number; window?: Duration } | false;
  /** Answer failures as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** The options of authenticate(), with its schemes' and identity forwarding's. */
export const authenticateSchema = defineSchema((z) =>
  z.strictObject(
    {
      jwt: jwtSchema().optional(),
      apiKey: apiKeySchema().optional(),
      // `false` leaves the scheme out, as if it were not set.
      mtls: z.union([z.boolean(), mtlsSchema()], { error: 'must be true or an object of mTLS options.' }).optional(),
      optional: z.boolean({ error: 'must be true or false' }).default(false),
      // `true` is the default names, as if it were not set.
      identityHeaders: z.union([z.boolean(), identityHeadersSchema()], { error: 'must be false or an object of identity header names.' }).optional(),
      forwardAuthorization: z.boolean({ error: 'must be true or false' }).default(true),
      realm: realmSchema(z).default('api'),
      failureLimit: z
        .union([z.literal(false), z.strictObject({ limit: z.number().int().min(1, { error: 'must be a positive integer' }).default(20), window: duration(z).default(60_000) })], { error: 'must be false or { limit, window }.' })
        .default({ limit: 20, window: 60_000 }),
      onError: errorMode(z).default('respond'),
    },
    { error: "must be an object of authenticate() options, e.g. { jwt: { secret, algorithms: ['HS256'] } }." },
  ),
);

/**
 * Creates the authentication middleware. Several schemes may be given; the first that succeeds wins.
 *
 * @example
 * app.use('/api/orders', authenticate({ jwt: { jwksUri: 'https://idp.example.com/jwks.json', issuer: 'https://idp.example.com/', audience: 'orders', algorithms: ['RS256'] } }), proxy({ target }));
 */
/** The authentication middleware; `reset()` forgets the failed-authentication counts (its key caches stay). */
export type AuthenticateMiddleware = Middleware & { reset(): void };

export function authenticate(options: AuthenticateOptions, optionPrefix = ''): AuthenticateMiddleware {
  if (!options || typeof options !== 'object') throw new ConfigError(`authenticate() needs options. Example: authenticate({ jwt: { secret: process.env.JWT_SECRET, algorithms: ['HS256'] } }).`);
  const config = parseOptions(authenticateSchema(), options, optionPrefix);
  const name = (key: string) => optionPrefix + key;
  const { realm, onError } = config;
  const authenticator = new passport.Passport();
  const schemes: Scheme[] = [];
  const credentialHeaders: string[] = [];

  if (config.jwt) {
    schemes.push(jwtScheme(config.jwt, authenticator, realm, (key) => name(`jwt.${key}`)));
    credentialHeaders.push('authorization');
  }
  if (config.apiKey) {
    const apiKey = apiKeyScheme(config.apiKey, realm, (key) => name(`apiKey.${key}`));
    schemes.push(apiKey.scheme);
    credentialHeaders.push(apiKey.header);
  }
  if (config.mtls) schemes.push(mtlsScheme(config.mtls === true ? {} : config.mtls, realm));
  if (schemes.length === 0) throw new ConfigError(`authenticate() needs at least one of "${name('jwt')}", "${name('apiKey')}" or "${name('mtls')}".`);

  const apiKeyQuery = config.apiKey?.query;
  const identity = identityForwarding(config.identityHeaders === false ? false : parseIdentityDefaults(config.identityHeaders));
  // Every route and proxy() strip these names from client requests from now on, and logs redact these credentials.
  registerIdentityHeaders(identity.all);
  registerCredentialHeaders(credentialHeaders);
  const { forwardAuthorization, optional } = config;
  const challenges = schemes.map((scheme) => scheme.challenge).join(', ');
  const budget = config.failureLimit === false ? undefined : failureBudget(config.failureLimit.limit, config.failureLimit.window);

  const middleware = function authenticateMiddleware(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
    const context = getContext(req, res);
    // Whatever the outcome, the client's own copies of the identity headers never reach the upstream.
    stripIdentityHeaders(req.headers);
    // Only a request that presents a credential can be guessing; anonymous ones (optional auth) pass on.
    const throttled = budget && presentsCredential(req) ? budget.exhausted(req) : undefined;
    if (throttled) return respondOrNext(onError, req, res, next, throttled);
    run(req, res).then(
      (consumer) => {
        (req as { user?: Consumer }).user = consumer;
        // What the upstream gets goes into the plan; the client's request stays as sent.
        const plan = planChanges(context);
        if (identity.send) Object.assign(plan.setHeaders, identity.headersFor(consumer));
        if (!forwardAuthorization) {
          for (const header of credentialHeaders) plan.removeHeaders.add(header);
          if (apiKeyQuery) plan.removeQuery.add(apiKeyQuery);
        }
        next();
      },
      (err: unknown) => {
        budget?.record(req, err);
        respondOrNext(onError, req, res, next, err);
      },
    );
  } as AuthenticateMiddleware;
  // Forgets the failed-authentication counts (gw.reset()); key caches stay.
  middleware.reset = () => budget?.reset();
  return middleware;

  function presentsCredential(req: IncomingMessage): boolean {
    if (credentialHeaders.some((header) => req.headers[header] !== undefined)) return true;
    if (apiKeyQuery && (req.url ?? '').includes('?')) return new URLSearchParams((req.url ?? '').split('?')[1]).has(apiKeyQuery);
    return Boolean((req.socket as { encrypted?: boolean }).encrypted);
  }

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

/** `identityHeaders` not set (or `true`): the default names. */
function parseIdentityDefaults(value: ReturnType<ReturnType<typeof identityHeadersSchema>['parse']> | true | undefined) {
  return value === undefined || value === true ? identityHeadersSchema().parse({}) : value;
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
  schemas: defineSchema((z) => ({ option: z.union([z.string(), authenticateSchema()]), gateway: { authSchemes: z.record(z.string(), authenticateSchema()) } })),
  prepare(gateway, shared) {
    const schemes = gateway.authSchemes;
    if (schemes === undefined) return;
    if (!schemes || typeof schemes !== 'object') throw new ConfigError(`"authSchemes" must be an object of name → authenticate() options.`);
    for (const [name, options] of Object.entries(schemes)) {
      // Keyed by name, compared by options: a reload that changes a scheme (a rotated secret) builds it anew.
      shared.get(SCHEME, name, options, `"authSchemes.${name}"`, `"authSchemes.${name}"`, () => authenticate(withGatewayErrors(options as AuthenticateOptions, `authSchemes.${name}`), `authSchemes.${name}.`));
    }
  },
  build(value, scope) {
    if (typeof value === 'string') {
      const shared = scope.shared.find<Middleware>(SCHEME, value);
      const defined = Object.keys((scope.gateway.authSchemes as object | undefined) ?? {});
      if (!shared) throw new ConfigError(`"${scope.optionPrefix}auth" names the scheme ${JSON.stringify(value)}, which is not in "authSchemes" (${defined.join(', ') || 'none defined'}).`);
      return { handler: shared, reset: () => (shared as AuthenticateMiddleware).reset() };
    }
    const middleware = authenticate(withGatewayErrors(value as AuthenticateOptions, `${scope.optionPrefix}auth`), `${scope.optionPrefix}auth.`);
    return { handler: middleware, reset: () => middleware.reset() };
  },
};

/** The realm a route's auth answers with (a named scheme's, or the route's own), for authorize()'s 401. */
export function realmOf(auth: unknown, gateway: Readonly<Record<string, unknown>>): string | undefined {
  const options = typeof auth === 'string' ? (gateway.authSchemes as Record<string, AuthenticateOptions> | undefined)?.[auth] : (auth as AuthenticateOptions | undefined);
  return typeof options?.realm === 'string' ? options.realm : undefined;
}
