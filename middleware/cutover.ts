/**
 * cutover(): moves a route's traffic to the new service gradually. `percent` of the requests go to the
 * service (the wrapped final handler); the rest fall through to the app's own handler, the monolith. With a
 * sticky key (the consumer, a header, a cookie) a key always lands on the same side for a given percentage,
 * and raising the percentage only moves keys from the monolith to the service, never back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getConsumer } from '../lib/consumer';
import { getContext } from '../lib/context';
import { ConfigError } from '../lib/errors';
import type { FeatureDescriptor, Middleware, Next } from '../lib/pipeline';
import { defineSchema, parseOptions } from '../lib/schema';

export interface CutoverOptions {
  /** Share of requests sent to the service, 0–100 (decimals allowed). */
  percent: number;
  /**
   * What keeps a client on one side: `'consumer'` (the authenticated consumer's id), `{ header: 'x-user-id' }`
   * or `{ cookie: 'session' }`. A request without the key is placed at random. Defaults to none: every request
   * is placed at random.
   */
  sticky?: 'consumer' | { header: string } | { cookie: string };
  /** Consumer ids always sent to the service (testers, partners in the pilot). */
  always?: string[];
  /** Consumer ids never sent to the service. Wins over `always`. */
  never?: string[];
}

/** Changes a cutover at runtime: `gw.setCutover(route, percent)` uses it. */
export interface CutoverControl {
  readonly percent: number;
  setPercent(percent: number): void;
}

export type CutoverMiddleware = Middleware & CutoverControl;

const percentSchema = (z: Parameters<Parameters<typeof defineSchema>[0]>[0]) => z.number({ error: 'must be a number from 0 to 100' }).min(0, { error: 'must be a number from 0 to 100' }).max(100, { error: 'must be a number from 0 to 100' });

export const cutoverSchema = defineSchema((z) =>
  z.strictObject(
    {
      percent: percentSchema(z),
      sticky: z.union([z.literal('consumer'), z.strictObject({ header: z.string().min(1) }), z.strictObject({ cookie: z.string().min(1) })], { error: "must be 'consumer', { header: 'x-user-id' } or { cookie: 'session' }" }).optional(),
      always: z.array(z.string()).optional(),
      never: z.array(z.string()).optional(),
    },
    { error: "must be an object like { percent: 5, sticky: 'consumer' }." },
  ),
);

/** Side of a request: the new service or the monolith. */
export type CutoverSide = 'service' | 'monolith';

/**
 * Wraps the service's handler (usually proxy()); requests not cut over go to `next()`.
 *
 * @example
 * app.use('/api/orders', authenticate({ jwt }), cutover({ percent: 5, sticky: 'consumer' }, proxy({ target: 'http://orders:4001' })));
 * app.use('/api/orders', ordersRouter); // the monolith answers the other 95 %
 */
export function cutover(options: CutoverOptions, service: Middleware, optionPrefix = '', salt = ''): CutoverMiddleware {
  if (typeof service !== 'function') throw new ConfigError(`cutover() wraps the service's handler: cutover({ percent: 5 }, proxy({ target })).`);
  const config = parseOptions(cutoverSchema(), options, optionPrefix);
  let threshold = toThreshold(config.percent);
  let percent = config.percent;
  const always = new Set(config.always ?? []);
  const never = new Set(config.never ?? []);
  const sticky = config.sticky;
  const header = sticky && typeof sticky === 'object' && 'header' in sticky ? sticky.header.toLowerCase() : undefined;
  const cookie = sticky && typeof sticky === 'object' && 'cookie' in sticky ? sticky.cookie : undefined;

  function keyOf(req: IncomingMessage): string | undefined {
    if (sticky === 'consumer') return getConsumer(req)?.id;
    if (header) {
      const value = req.headers[header];
      return Array.isArray(value) ? value[0] : value;
    }
    if (cookie) return cookieValue(req.headers.cookie, cookie);
    return undefined;
  }

  function sideOf(req: IncomingMessage): CutoverSide {
    const consumer = always.size > 0 || never.size > 0 ? getConsumer(req)?.id : undefined;
    if (consumer !== undefined && never.has(consumer)) return 'monolith';
    if (consumer !== undefined && always.has(consumer)) return 'service';
    if (threshold === 0) return 'monolith';
    if (threshold === BUCKETS) return 'service';
    const key = keyOf(req);
    const bucket = key === undefined || key === '' ? Math.floor(Math.random() * BUCKETS) : hash(salt + key) % BUCKETS;
    return bucket < threshold ? 'service' : 'monolith';
  }

  const middleware = function cutoverMiddleware(req: IncomingMessage, res: ServerResponse, next: Next) {
    const side = sideOf(req);
    getContext(req).cutover = side;
    if (side === 'service') service(req, res, next);
    else next();
  } as CutoverMiddleware;
  Object.defineProperty(middleware, 'percent', { get: () => percent, enumerable: true });
  middleware.setPercent = (value: number) => {
    const checked = parseOptions(cutoverSchema(), { ...config, percent: value }, optionPrefix).percent;
    percent = checked;
    threshold = toThreshold(checked);
  };
  return middleware;
}

/** Buckets of the split: a percentage has two decimals of resolution. */
const BUCKETS = 10_000;

function toThreshold(percent: number): number {
  return Math.round(percent * (BUCKETS / 100));
}

/** FNV-1a, 32 bits: fast, and spreads similar keys (user-1, user-2…) evenly over the buckets. */
function hash(text: string): number {
  let value = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    value ^= text.charCodeAt(i);
    value = Math.imul(value, 0x01000193);
  }
  // A final avalanche, so keys that differ in their last character do not land in neighbouring buckets.
  value ^= value >>> 16;
  value = Math.imul(value, 0x85ebca6b);
  value ^= value >>> 13;
  return value >>> 0;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}

/**
 * The route option `cutover`: `{ path, upstream, cutover: { percent: 5, sticky: 'consumer' } }`. The rest
 * of the route's requests go to the app's own handler. Changeable at runtime with `gw.setCutover()`, or
 * by a config reload. The route's name salts the split, so two routes at 5 % do not pick the same users.
 */
export const cutoverFeature: FeatureDescriptor = {
  option: 'cutover',
  phase: 'final',
  wraps: { needsUpstream: true },
  upgrade: { apply: false, reason: 'WebSocket upgrades of a ws route all go to its upstream: a long-lived connection is moved by moving the route.' },
  schemas: defineSchema((z) => ({ option: z.union([percentSchema(z), cutoverSchema()]) })),
  build(value, scope) {
    const options = typeof value === 'number' ? { percent: value } : (value as CutoverOptions);
    const option = `${scope.optionPrefix}cutover.`;
    parseOptions(cutoverSchema(), options, option);
    let control: CutoverMiddleware | undefined;
    // The control exists once the route is compiled; until then it reports the configured percentage.
    const pending = { percent: options.percent };
    return {
      wrapFinal(final) {
        control = cutover(options, final, option, scope.routeName);
        return control;
      },
      control: {
        get percent() {
          return control?.percent ?? pending.percent;
        },
        setPercent(percent: number) {
          if (!control) throw new ConfigError(`the cutover of route "${scope.routeName}" is not in use.`);
          control.setPercent(percent);
        },
      } satisfies CutoverControl,
    };
  },
};
