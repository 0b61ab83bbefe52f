/**
 * The schema of gateway()'s whole options object, composed from the router's own options and the schemas
 * every registered feature declares (lib/pipeline.ts FeatureSchemas). It is the one schema behind config
 * files (every mistake with its path, mapped to a line and column) and the JSON Schema editors read; code
 * and files are checked by the same feature schemas, so they cannot disagree.
 */
import type * as Zod from 'zod';
import { errorMode } from '../lib/schema';
import { defineSchema } from '../lib/schema';
import { GATEWAY_FEATURES, ROUTE_FEATURES } from './features';

export const gatewaySchema = defineSchema((z) => {
  const route: Record<string, Zod.ZodType> = {
    path: z.string({ error: "must be a path like '/api/orders'" }).startsWith('/', { error: "must start with '/'" }),
    name: z.string().min(1).optional(),
    methods: z.array(z.string().regex(/^[A-Za-z]+$/, { error: 'must be an HTTP method' }), { error: "must be a list of HTTP methods, e.g. ['GET', 'POST']" }).min(1).optional(),
    host: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    stripPath: z.boolean().optional(),
  };
  const gateway: Record<string, Zod.ZodType> = {
    onError: errorMode(z).optional(),
    caseSensitive: z.boolean().optional(),
    allowSemicolons: z.boolean().optional(),
  };
  for (const feature of ROUTE_FEATURES) {
    const schemas = feature.schemas?.();
    route[feature.option] = (schemas?.option ?? z.unknown()).optional();
    for (const key of feature.reads ?? []) route[key] = (schemas?.reads?.[key] ?? z.unknown()).optional();
    for (const key of feature.gatewayOptions ?? []) gateway[key] = (schemas?.gateway?.[key] ?? z.unknown()).optional();
  }
  for (const feature of GATEWAY_FEATURES) gateway[feature.option] = feature.schemas().option.optional();
  return z.strictObject({
    routes: z.array(z.strictObject(route, { error: "must be a route like { path: '/api/orders', upstream: 'http://127.0.0.1:4001' }" }), { error: 'must be a list of routes' }),
    ...gateway,
  });
});

/** The JSON Schema of a gateway config file (draft 2020-12), for editor completion in YAML and JSON files. */
export function gatewayJsonSchema(): Record<string, unknown> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const z = require('zod') as typeof Zod;
  // 'input': what a file may hold ('30s' as well as 30000); functions and class instances cannot be written in a file.
  return z.toJSONSchema(gatewaySchema(), { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
}
