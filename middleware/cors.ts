/**
 * The route option `cors`: the `cors` package's middleware, first in a route, so preflights are answered
 * before IP rules and authentication (a preflight carries no credentials).
 */
import cors from 'cors';
import type { CorsOptions } from 'cors';
import { ConfigError } from '../lib/errors';
import type { FeatureDescriptor, Middleware } from '../lib/pipeline';
import { defineSchema } from '../lib/schema';

export const corsFeature: FeatureDescriptor = {
  option: 'cors',
  phase: 'admit',
  // The cors package checks its own options; the gateway only knows they are an object.
  schemas: defineSchema((z) => ({ option: z.union([z.literal(true), z.looseObject({})]) })),
  upgrade: { apply: false, reason: 'Browsers do not apply CORS to WebSocket handshakes; restrict origins with auth or an Origin check upstream.' },
  build(value, scope) {
    if (value !== true && (!value || typeof value !== 'object')) throw new ConfigError(`"${scope.optionPrefix}cors" must be \`true\` or the cors package's options, e.g. { origin: 'https://shop.example.com' }.`);
    return { handler: cors(value === true ? {} : (value as CorsOptions)) as Middleware };
  },
};
