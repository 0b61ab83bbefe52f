/**
 * authorize(): decides whether the authenticated consumer may make this request — by scopes, by tier,
 * or by a predicate. Runs after authenticate(); refusal is a 403 problem+json.
 */
import type { IncomingMessage } from 'node:http';
import { Consumer, getConsumer } from '../lib/consumer';
import { ConfigError, GatewayError } from '../lib/errors';
import { sendProblem } from '../lib/problem';
import type { ErrorMode, FeatureDescriptor, Middleware } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { defineSchema, errorMode, fn, parseOptions } from '../lib/schema';
import { realm as realmSchema } from './auth/common';
import { realmOf } from './authenticate';

export interface AuthorizeOptions {
  /** Every one of these scopes is required, e.g. `['orders:write']`. Defaults to none. */
  scopes?: string[];
  /** The consumer's tier must be one of these. Defaults to any tier. */
  tiers?: string[];
  /** Custom rule; return true to allow. Runs after the scope and tier checks. Defaults to none. */
  allow?: (consumer: Consumer, req: IncomingMessage) => boolean;
  /** Realm of the `WWW-Authenticate` challenge when no one is authenticated. Defaults to `'api'`; in a route table, the route's auth realm. */
  realm?: string;
  /** Answer refusals as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** The options of authorize(); at least one of `scopes`, `tiers` and `allow` is checked for by authorize(). */
export const authorizeSchema = defineSchema((z) => {
  const list = () =>
    z
      .array(z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }), { error: 'must be a non-empty list of strings' })
      .min(1, { error: 'must be a non-empty list of strings' });
  return z.strictObject(
    {
      scopes: list().optional(),
      tiers: list().optional(),
      allow: fn<NonNullable<AuthorizeOptions['allow']>>(z, '(consumer, req) => boolean').optional(),
      realm: realmSchema(z).default('api'),
      onError: errorMode(z).default('respond'),
    },
    { error: "must be an object of authorize() options, e.g. { scopes: ['orders:write'] }." },
  );
});

/**
 * Creates the authorization middleware. A predicate alone may be passed: `authorize((consumer) => consumer.tier === 'enterprise')`.
 *
 * @example
 * app.post('/api/orders', authenticate({ jwt }), authorize({ scopes: ['orders:write'] }), proxy({ target }));
 */
export function authorize(options: AuthorizeOptions | ((consumer: Consumer, req: IncomingMessage) => boolean), optionPrefix = ''): Middleware {
  const resolved: AuthorizeOptions = typeof options === 'function' ? { allow: options } : options;
  if (!resolved || typeof resolved !== 'object') throw new ConfigError(`authorize() needs options. Example: authorize({ scopes: ['orders:write'] }).`);
  const { scopes, tiers, allow, realm: challengeRealm, onError } = parseOptions(authorizeSchema(), resolved, optionPrefix);
  const name = (key: string) => optionPrefix + key;
  if (!scopes && !tiers && !allow) throw new ConfigError(`authorize() needs "${name('scopes')}", "${name('tiers')}" or "${name('allow')}".`);
  const challenge = `Bearer realm="${challengeRealm}"`;

  return function authorizeMiddleware(req, res, next) {
    const fail = (err: GatewayError) => (onError === 'next' ? next(err) : sendProblem(req, res, err));
    const consumer = getConsumer(req);
    if (!consumer) return fail(new GatewayError(401, 'ERR_AUTH_MISSING', { detail: 'Credentials are required.', headers: { 'WWW-Authenticate': challenge } }));
    if (scopes) {
      const missing = scopes.filter((scope) => !consumer.scopes.includes(scope));
      if (missing.length) {
        return fail(new GatewayError(403, 'ERR_FORBIDDEN_SCOPE', {
          detail: `This request needs the scope${missing.length > 1 ? 's' : ''} ${missing.join(' ')}.`,
          headers: consumer.scheme === 'jwt' ? { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"` } : undefined,
        }));
      }
    }
    if (tiers && !(consumer.tier && tiers.includes(consumer.tier))) {
      return fail(new GatewayError(403, 'ERR_FORBIDDEN', { detail: 'Your plan does not include this API.' }));
    }
    if (allow) {
      let allowed: boolean;
      try {
        allowed = allow(consumer, req) === true;
      } catch (err) {
        return fail(new GatewayError(500, 'ERR_INTERNAL', { detail: 'The access rule failed.', cause: err }));
      }
      if (!allowed) return fail(new GatewayError(403, 'ERR_FORBIDDEN', { detail: 'You are not allowed to make this request.' }));
    }
    next();
  };
}

/** The route option `authorize`: needs the route's `auth`; a refused upgrade gets its 403 on the socket. */
export const authorizeFeature: FeatureDescriptor = {
  option: 'authorize',
  phase: 'permit',
  upgrade: { apply: true },
  build(value, scope) {
    if (scope.route.auth === undefined) throw new ConfigError(`"${scope.optionPrefix}authorize" needs "${scope.optionPrefix}auth": there is no consumer to authorize without authentication.`);
    const options = withGatewayErrors(typeof value === 'function' ? { allow: value as AuthorizeOptions['allow'] } : (value as AuthorizeOptions), `${scope.optionPrefix}authorize`);
    const realm = realmOf(scope.route.auth, scope.gateway);
    const withRealm = options && typeof options === 'object' && options.realm === undefined && realm !== undefined ? { ...options, realm } : options;
    return { handler: authorize(withRealm, `${scope.optionPrefix}authorize.`) };
  },
};
