/**
 * The route pipeline's seam. Every feature a route can carry (IP rules, auth, rate limit, the proxy, and
 * the cache, transforms and aggregation to come) is a FeatureDescriptor: the route option it answers to,
 * its phase, what it does on a WebSocket upgrade, and `build()`. gateway() loops over a registry of them
 * (middleware/features.ts) and never names a feature itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ConfigError } from './errors';
import type { Schema } from './schema';
import type { SharedParts } from './scope';
import type { UpstreamPool } from './upstream-pool';

export type Next = (err?: unknown) => void;

/** A connect/Express middleware: the one handler shape of the kit. */
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

/** What to do with an error: answer it as problem+json (`'respond'`), or pass it to `next(err)`. */
export type ErrorMode = 'respond' | 'next';

/**
 * The fixed phases of a route, in the order they run. Within a phase, features run in registry order.
 * `shapeResponse` filters register on the request context while the final handler streams the answer.
 */
export const PHASES = ['observe', 'admit', 'identify', 'permit', 'limit', 'cache', 'shapeRequest', 'final', 'shapeResponse'] as const;
export type Phase = (typeof PHASES)[number];

/**
 * What a feature does on a WebSocket upgrade. `apply`: its handler runs on the upgrade before the final
 * handler, on a response bound to the socket, so a refusal is answered there (401/403/429) and the socket
 * closes. `skip`: it has no meaning on an upgrade, and `reason` says why, so no feature is skipped silently.
 */
export type UpgradeRule = { apply: true } | { apply: false; reason: string };

/** Takes a WebSocket upgrade (the final handler of a `ws: true` route). */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** The parts a feature builds for one route; each is optional. */
export interface FeatureParts {
  /** Runs on every request of the route, in the feature's phase. */
  handler?: Middleware;
  /** Final handlers only: takes upgrades once every `apply` feature let them through. */
  upgrade?: UpgradeHandler;
  /** The upstream pools the part sends to (proxy: one; aggregate: one per upstream), for health metrics and `gw.events`. */
  pools?: readonly UpstreamPool[];
  /** Runs in this phase instead of the feature's own (a limit by IP alone runs before authentication). */
  phase?: Phase;
  /**
   * Wrappers only (descriptors with `wraps`): the route's final handler, wrapped — to choose between it and
   * the app (cutover), to hand a failed answer back to the app (fallback), or to copy the request to a
   * candidate and compare (shadow). `final` calls `next()` to hand the request back to the app, `next(err)`
   * to fail; the wrapper may do the same.
   */
  wrapFinal?(final: Middleware): Middleware;
  /** What the feature lets the gateway change at runtime (cutover's percentage): see Gateway.control(). */
  control?: unknown;
  /** Releases what the part holds (timers, sockets, store connections). */
  close?(): Promise<void> | void;
  /** Forgets what it learned from traffic (counters, cached answers, failure counts): gw.reset(), between tests. */
  reset?(): Promise<void> | void;
}

/** What build() gets besides its option's value. */
export interface BuildScope {
  /** The option path of the route, for error messages: `routes[2].` */
  optionPrefix: string;
  /** The route's name: its `name`, or its path. */
  routeName: string;
  /** The route's methods, upper-case, when it is limited to some. */
  methods: readonly string[] | undefined;
  /** The route's hosts, when it is limited to some. */
  hosts: readonly string[] | undefined;
  /** The route's options as given (a feature may read the siblings it lists in `reads`). */
  route: Readonly<Record<string, unknown>>;
  /** The gateway's options as given (for gateway-level settings such as named auth schemes). */
  gateway: Readonly<Record<string, unknown>>;
  /** Parts shared between routes, by name and fingerprint (limiters, auth schemes, later caches). */
  shared: SharedParts;
}

/**
 * The options a feature answers to, declared once with zod (the same schemas its factory validates with):
 * gateway-schema.ts composes them into the schema of the whole gateway, which validates config files and
 * gives the JSON Schema for editors.
 */
export interface FeatureSchemas {
  /** The value of the route (or gateway) option, shorthands included (`auth: 'partners'`, `metrics: true`). */
  option: Schema;
  /** The sibling route options the feature reads (`rewrite`, `ws` … for `upstream`). */
  reads?: Record<string, Schema>;
  /** The gateway options the feature reads (`upstreams`, `authSchemes`). */
  gateway?: Record<string, Schema>;
}

export interface FeatureDescriptor {
  /** The route option the feature answers to; the feature is built when the option is set. */
  option: string;
  /** Other route options the feature reads (they belong to it: a route without `option` must not set them). */
  reads?: readonly string[];
  /** Gateway options the feature reads (e.g. `authSchemes`). */
  gatewayOptions?: readonly string[];
  phase: Phase;
  upgrade: UpgradeRule;
  /**
   * The feature wraps the route's final handler (phase 'final') instead of being one: fallback, cutover,
   * shadow. Wrappers apply in registry order, the first innermost. `needsUpstream`: the route must forward
   * somewhere (`upstream`); otherwise, without a final handler, the route's final handler is the app's own.
   */
  wraps?: { needsUpstream: boolean };
  /** The schemas of `option`, `reads` and `gatewayOptions` (built lazily, with defineSchema). */
  schemas?: () => FeatureSchemas;
  /** Runs once per gateway before any route is built, e.g. to build (and so check) named auth schemes. */
  prepare?(gateway: Readonly<Record<string, unknown>>, shared: SharedParts): void;
  build(value: unknown, scope: BuildScope): FeatureParts;
}

/** A gateway-level feature that wraps every route (observability): the gateway option it answers to. */
export interface GatewayFeatureDescriptor {
  option: string;
  phase: 'observe';
  upgrade: UpgradeRule;
  /** The schema of the gateway option's value (`true` or the middleware's options). */
  schemas: () => FeatureSchemas;
  build(value: unknown, shared: SharedParts): FeatureParts & {
    /** Called with every pool of the gateway once the routes are built. */
    watchPools?(pools: UpstreamPool[]): void;
    /** Called with the runtime controls of every route once the routes are built (metrics subscribes to shadow outcomes); returns what unsubscribes. */
    watchRoutes?(routes: ReadonlyArray<{ name: string; controls: ReadonlyMap<string, unknown> }>): () => void;
    /** Told of each reload of the gateway: by the new table's observers when applied, the old one's when it failed. */
    reloaded?(outcome: 'applied' | 'failed'): void;
  };
}

/**
 * Route features answer errors through the gateway (in one place, with the gateway's `onError`): an
 * `onError` inside a route option would be silently overridden, so it is refused at construction.
 */
export function withGatewayErrors<T>(value: T, option: string): T {
  if (!value || typeof value !== 'object') return value; // the factory names what is wrong with it
  if ((value as { onError?: unknown }).onError !== undefined) {
    throw new ConfigError(`"${option}.onError" cannot be set inside a route: the gateway answers every error in one place. Set "onError" on gateway() instead.`);
  }
  return { ...value, onError: 'next' };
}
