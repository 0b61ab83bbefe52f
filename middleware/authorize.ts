/**
 * authorize(): decides whether the authenticated consumer may make this request — by scopes, by tier,
 * or by a predicate. Runs after authenticate(); refusal is a 403 problem+json.
 */
import type { IncomingMessage } from 'node:http';
import { Consumer, getConsumer } from '../lib/consumer';
import { ConfigError, GatewayError } from '../lib/errors';
import { respondOrNext } from '../lib/problem';
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
  /**
   * Rules for some methods, over the ones above: `{ POST: { scopes: ['orders:write'] } }` asks for
   * `orders:write` on POST and keeps the other fields. `HEAD` follows `GET` unless it has its own. Defaults to none.
   */
  methods?: Record<string, MethodRule>;
  /** Realm of the `WWW-Authenticate` challenge when no one is authenticated. Defaults to `'api'`; in a route table, the route's auth realm. */
  realm?: string;
  /** Answer refusals as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** What a request must satisfy: a method's rule overrides the fields it sets. */
export type MethodRule = Pick<AuthorizeOptions, 'scopes' | 'tiers' | 'allow'>;

/** The options of authorize(); at least one of `scopes`, `tiers`, `allow` and `methods` is checked for by authorize(). */
export const authorizeSchema = defineSchema((z) => {
  const list = () =>
    z
      .array(z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }), { error: 'must be a non-empty list of strings' })
      .min(1, { error: 'must be a non-empty list of strings' });
  const rule = {
    scopes: list().optional(),
    tiers: list().optional(),
    allow: fn<NonNullable<AuthorizeOptions['allow']>>(z, '(consumer, req) => boolean').optional(),
  };
  return z.strictObject(
    {
      ...rule,
      methods: z
        .record(z.string(), z.strictObject(rule))
        .refine((rules) => Object.keys(rules).every((method) => /^[A-Z]+$/.test(method)), { error: 'must have HTTP methods in capitals as keys, e.g. { POST: { … } }' })
        .optional(),
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
  const { scopes, tiers, allow, methods, realm: challengeRealm, onError } = parseOptions(authorizeSchema(), resolved, optionPrefix);
  const name = (key: string) => optionPrefix + key;
  if (!scopes && !tiers && !allow && !methods) throw new ConfigError(`authorize() needs "${name('scopes')}", "${name('tiers')}", "${name('allow')}" or "${name('methods')}".`);
  const challenge = `Bearer realm="${challengeRealm}"`;
  const base: MethodRule = { scopes, tiers, allow };
  // Rules per method, merged once here: the request only looks its method up.
  const byMethod = new Map(Object.entries(methods ?? {}).map(([method, rule]) => [method, { ...base, ...dropUndefined(rule) }]));
  if (byMethod.has('GET') && !byMethod.has('HEAD')) byMethod.set('HEAD', byMethod.get('GET') as MethodRule);

  return function authorizeMiddleware(req, res, next) {
    const consumer = getConsumer(req);
    const rule = byMethod.get(req.method ?? '') ?? base;
    // Nobody, or the anonymous consumer of `optional` auth, facing a rule: ask for credentials (401), not 403.
    const anonymous = !consumer || (consumer.scheme === 'anonymous' && (rule.scopes || rule.tiers));
    const refusal = anonymous ? new GatewayError('ERR_AUTH_MISSING', { detail: 'Credentials are required.', headers: { 'WWW-Authenticate': challenge } }) : check(rule, consumer, req);
    if (!refusal) return next();
    respondOrNext(onError, req, res, next, refusal);
  };
}

/** Why `consumer` may not make `req` under `rule`, or undefined when it may. */
function check(rule: MethodRule, consumer: Consumer, req: IncomingMessage): GatewayError | undefined {
  const { scopes, tiers, allow } = rule;
  if (scopes) {
    const missing = scopes.filter((scope) => !consumer.scopes.includes(scope));
    if (missing.length) {
      return new GatewayError('ERR_FORBIDDEN_SCOPE', {
        detail: `This request needs the scope${missing.length > 1 ? 's' : ''} ${missing.join(' ')}.`,
        headers: consumer.scheme === 'jwt' ? { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"` } : undefined,
      });
    }
  }
  if (tiers && !(consumer.tier && tiers.includes(consumer.tier))) return new GatewayError('ERR_FORBIDDEN', { detail: 'Your plan does not include this API.' });
  if (allow) {
    let allowed: boolean;
    try {
      allowed = allow(consumer, req) === true;
    } catch (err) {
      return new GatewayError('ERR_INTERNAL', { detail: 'The access rule failed.', cause: err });
    }
    if (!allowed) return new GatewayError('ERR_FORBIDDEN', { detail: 'You are not allowed to make this request.' });
  }
  return undefined;
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Partial<T>;
}

/** The route option `authorize`: needs the route's `auth`; a refused upgrade gets its 403 on the socket. */
export const authorizeFeature: FeatureDescriptor = {
  option: 'authorize',
  phase: 'permit',
  upgrade: { apply: true },
  schemas: defineSchema((z) => ({ option: z.union([fn(z, '(consumer, req) => boolean'), authorizeSchema()]) })),
  build(value, scope) {
    if (scope.route.auth === undefined) throw new ConfigError(`"${scope.optionPrefix}authorize" needs "${scope.optionPrefix}auth": there is no consumer to authorize without authentication.`);
    const options = withGatewayErrors(typeof value === 'function' ? { allow: value as AuthorizeOptions['allow'] } : (value as AuthorizeOptions), `${scope.optionPrefix}authorize`);
    const realm = realmOf(scope.route.auth, scope.gateway);
    const withRealm = options && typeof options === 'object' && options.realm === undefined && realm !== undefined ? { ...options, realm } : options;
    return { handler: authorize(withRealm, `${scope.optionPrefix}authorize.`) };
  },
};
