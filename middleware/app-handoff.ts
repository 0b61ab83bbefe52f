/**
 * The route option `app: true`: a final handler that hands the request back to the app's own handlers
 * (the monolith) once the route's policies passed. Auth, IP rules and limits at the edge, for a route
 * that has not moved out yet: `{ path: '/admin', auth: 'staff', app: true }`. The app sees the request as
 * the client sent it, with `req.user` set by authentication.
 */
import { ConfigError } from '../lib/errors';
import type { FeatureDescriptor } from '../lib/pipeline';
import { defineSchema } from '../lib/schema';

export const appHandoffFeature: FeatureDescriptor = {
  option: 'app',
  phase: 'final',
  schemas: defineSchema((z) => ({ option: z.literal(true) })),
  upgrade: { apply: false, reason: 'An upgrade handed to the app is not taken by the gateway: the server gives it to its other upgrade listeners, or serves it as HTTP.' },
  build(value, scope) {
    if (value !== true) throw new ConfigError(`"${scope.optionPrefix}app" must be true: the app's own handlers answer once the route's policies passed.`);
    // The pipeline's end: next() without an error leaves the gateway for the app's next handler.
    return { handler: (_req, _res, next) => next() };
  },
};
