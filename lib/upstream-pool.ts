/**
 * The upstream pool: targets, the keep-alive agent, the balancer and target health (passive ejection
 * with a growing cooldown and one trial request, optional active checks). Shared by proxy() and,
 * later, aggregate() and shadow traffic, so keep-alive and ejection are never duplicated.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { ConfigError } from './errors';
import { Duration, parseDuration } from './duration';
import { pickRoundRobin, pickSticky } from './balancer';
import { defineSchema, duration, parseOptions } from './schema';
import type { Z } from './schema';

const positiveInteger = (z: Z) => z.number({ error: 'must be a positive integer' }).int({ error: 'must be a positive integer' }).min(1, { error: 'must be a positive integer' });
const pem = (z: Z) => z.custom<string | Buffer>((value) => typeof value === 'string' || Buffer.isBuffer(value), { error: 'must be PEM text or a Buffer' });

/** The options of an upstream, as zod declares them (shared by proxy(), routes and named upstreams). */
export function upstreamShape(z: Z) {
  return {
    target: z.string({ error: "must be an absolute http(s) URL such as 'http://127.0.0.1:4001'" }).optional(),
    targets: z
      .array(z.union([z.string(), z.strictObject({ url: z.string({ error: 'must be an absolute http(s) URL' }), weight: z.number({ error: 'must be a positive number' }).optional() })]), { error: 'must be a list of URLs or { url, weight } objects' })
      .optional(),
    sticky: z.strictObject({ header: z.string().optional(), cookie: z.string().optional() }).optional(),
    health: z
      .strictObject({
        passive: z.union([z.literal(false), z.strictObject({ failures: z.number().optional(), cooldown: duration(z).optional(), maxCooldown: duration(z).optional() })]).optional(),
        active: z.union([z.boolean(), z.strictObject({ path: z.string().optional(), interval: duration(z).optional(), timeout: duration(z).optional() })]).optional(),
      })
      .optional(),
    tls: z
      .strictObject({
        ca: z.union([pem(z), z.array(pem(z))]).optional(),
        cert: pem(z).optional(),
        key: pem(z).optional(),
        passphrase: z.string().optional(),
        rejectUnauthorized: z.boolean().optional(),
        servername: z.string().optional(),
      })
      .optional(),
    agent: z.strictObject({ maxSockets: positiveInteger(z).optional(), maxFreeSockets: z.number().int().min(0, { error: 'must be a non-negative integer' }).optional() }).optional(),
  };
}

const upstreamSchema = defineSchema((z) => z.strictObject(upstreamShape(z)));

/** One upstream target, with its load-balancing weight. */
export interface TargetOption {
  /** Absolute http(s) URL, e.g. `'http://127.0.0.1:4001'`. A path is prefixed to forwarded paths. */
  url: string;
  /** Relative share of traffic. Defaults to 1. `[{ url: a, weight: 95 }, { url: b, weight: 5 }]` is a 5 % canary. */
  weight?: number;
}

export interface PassiveHealthOptions {
  /** Consecutive connect errors or 5xx responses that eject a target. Defaults to 3. */
  failures?: number;
  /** First ejection's cooldown; it doubles with each consecutive ejection. Defaults to `'10s'`. */
  cooldown?: Duration;
  /** Upper bound of the growing cooldown. Defaults to `'5m'`. */
  maxCooldown?: Duration;
}

export interface ActiveHealthOptions {
  /** Path requested with GET on each target. Defaults to `'/health'`. */
  path?: string;
  /** Time between checks. Defaults to `'10s'`. */
  interval?: Duration;
  /** A check slower than this fails. Defaults to `'2s'`. */
  timeout?: Duration;
}

export interface HealthOptions {
  /** Eject targets that fail in live traffic. Defaults to on; `false` turns it off. */
  passive?: PassiveHealthOptions | false;
  /** Probe each target in the background; a target whose check fails gets no traffic until one passes. Off by default. */
  active?: ActiveHealthOptions | boolean;
}

export interface TlsOptions {
  /** CA certificate(s) (PEM) that sign the upstream's certificate, for private CAs. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate (PEM) presented to the upstream: mTLS. */
  cert?: string | Buffer;
  /** Private key (PEM) of the client certificate. */
  key?: string | Buffer;
  /** Passphrase of `key`. */
  passphrase?: string;
  /** Verify the upstream's certificate. Defaults to true; turning it off is for local experiments only. */
  rejectUnauthorized?: boolean;
  /** SNI / certificate name to verify, when it differs from the target host. */
  servername?: string;
}

export interface AgentOptions {
  /** Most sockets open to one target at once; further requests queue. Defaults to 256. */
  maxSockets?: number;
  /** Most idle sockets kept per target. Defaults to 256. */
  maxFreeSockets?: number;
}

export interface UpstreamOptions {
  /** A single upstream URL. Use `targets` for several. */
  target?: string;
  /** Several upstreams, load-balanced: round-robin, or weighted when weights are given. */
  targets?: Array<string | TargetOption>;
  /** Send requests with the same key to the same target while it is healthy. */
  sticky?: { header?: string; cookie?: string };
  /** Passive and active health. */
  health?: HealthOptions;
  /** TLS settings for https targets: custom CA, client certificate. */
  tls?: TlsOptions;
  /** Connection pooling; keep-alive is always on. */
  agent?: AgentOptions;
}

export type TargetState = 'healthy' | 'ejected';

/** A target and its health. Fields are live state: read them, let the pool write them. */
export interface UpstreamTarget {
  readonly url: URL;
  /** The target URL without a trailing slash: its identity in logs and metrics. */
  readonly href: string;
  readonly weight: number;
  state: TargetState;
  /** Consecutive failures while healthy. */
  failures: number;
  /** Consecutive ejections; sets the cooldown's growth. */
  ejections: number;
  ejectedUntil: number;
  /** An ejected target past its cooldown gets exactly one trial request at a time. */
  trialInFlight: boolean;
  /** Set by the active health check. */
  activeDown: boolean;
  currentWeight: number;
}

const DEFAULTS = {
  failures: 3,
  cooldown: 10_000,
  maxCooldown: 300_000,
  activePath: '/health',
  activeInterval: 10_000,
  activeTimeout: 2_000,
  maxSockets: 256,
  maxFreeSockets: 256,
};

export interface PoolEvents {
  eject: [target: UpstreamTarget, cooldownMs: number];
  recover: [target: UpstreamTarget];
}

export class UpstreamPool extends EventEmitter<PoolEvents> {
  readonly targets: readonly UpstreamTarget[];
  readonly agent: http.Agent;
  private readonly passive: { failures: number; cooldown: number; maxCooldown: number } | undefined;
  private readonly stickyHeader: string | undefined;
  private readonly stickyCookie: string | undefined;
  private readonly tls: TlsOptions | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(options: UpstreamOptions, optionPrefix = '') {
    super();
    if (!options || typeof options !== 'object') throw new ConfigError(`Missing "${optionPrefix}target" option. Example: { target: 'http://127.0.0.1:4001' }.`);
    parseOptions(upstreamSchema(), options, optionPrefix);
    const name = (key: string) => optionPrefix + key;
    this.targets = parseTargets(options, name);
    const protocols = new Set(this.targets.map((target) => target.url.protocol));
    if (protocols.size > 1) {
      throw new ConfigError(`"${name('targets')}" mixes http and https targets; use one protocol per upstream.`);
    }
    this.tls = options.tls;
    const agentOptions = { keepAlive: true, scheduling: 'lifo' as const, maxSockets: options.agent?.maxSockets ?? DEFAULTS.maxSockets, maxFreeSockets: options.agent?.maxFreeSockets ?? DEFAULTS.maxFreeSockets };
    if (this.targets[0].url.protocol === 'https:') {
      this.agent = new https.Agent({ ...agentOptions, ...(options.tls ?? {}) });
    } else {
      if (options.tls) throw new ConfigError(`"${name('tls')}" is set but the targets are http://; use https:// targets for TLS.`);
      this.agent = new http.Agent(agentOptions);
    }

    const passive = options.health?.passive;
    if (passive !== false) {
      const failures = passive?.failures ?? DEFAULTS.failures;
      if (!Number.isInteger(failures) || failures < 1) throw new ConfigError(`"${name('health.passive.failures')}" must be a positive integer; received ${JSON.stringify(failures)}.`);
      this.passive = {
        failures,
        cooldown: passive?.cooldown === undefined ? DEFAULTS.cooldown : parseDuration(passive.cooldown, name('health.passive.cooldown')),
        maxCooldown: passive?.maxCooldown === undefined ? DEFAULTS.maxCooldown : parseDuration(passive.maxCooldown, name('health.passive.maxCooldown')),
      };
    }
    this.stickyHeader = options.sticky?.header?.toLowerCase();
    this.stickyCookie = options.sticky?.cookie;
    if (options.sticky && !this.stickyHeader && !this.stickyCookie) {
      throw new ConfigError(`"${name('sticky')}" needs a "header" or a "cookie" to read the key from. Example: sticky: { cookie: 'session' }.`);
    }
    const active = options.health?.active;
    if (active) this.startActiveChecks(active === true ? {} : active, name);
  }

  /**
   * The target a failed attempt goes to next: another one not yet `tried` (the current is added), or the same
   * one after a reset on a reused keep-alive socket (the stale-connection race) when no other is left.
   */
  retryTarget(req: IncomingMessage, tried: Set<UpstreamTarget>, current: UpstreamTarget, staleSocket: boolean): UpstreamTarget | undefined {
    tried.add(current);
    return this.pick(req, tried) ?? (staleSocket && current.state === 'healthy' ? current : undefined);
  }

  /**
   * Requests in flight to a target: the agent's sockets in use for it, plus requests queued for one (free
   * keep-alive sockets are not counted). Node's agent names them `host:port:…`.
   */
  inFlight(target: UpstreamTarget): number {
    const { hostname, port, protocol } = target.url;
    const prefix = `${hostname.replace(/^\[|\]$/g, '')}:${port || (protocol === 'https:' ? '443' : '80')}:`;
    let count = 0;
    for (const lists of [this.agent.sockets, this.agent.requests]) {
      for (const [name, list] of Object.entries(lists)) if (name.startsWith(prefix)) count += list?.length ?? 0;
    }
    return count;
  }

  /** Puts every target back in rotation with no failures counted (gw.reset(), between tests); active checks go on. */
  resetHealth(): void {
    for (const target of this.targets) {
      const wasOut = target.state === 'ejected';
      target.state = 'healthy';
      target.failures = 0;
      target.ejections = 0;
      target.ejectedUntil = 0;
      target.trialInFlight = false;
      if (wasOut) this.emit('recover', target);
    }
  }

  /** True once close() was called: observers such as the health gauge stop reporting the pool. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Picks a target for the request, skipping ejected ones and those in `exclude` (already tried).
   * Returns undefined when none is available.
   */
  pick(req: IncomingMessage, exclude?: ReadonlySet<UpstreamTarget>): UpstreamTarget | undefined {
    const now = Date.now();
    // Hot path: when every target is up and none is excluded, balance over the list as it is.
    const everyoneUp = !exclude && this.targets.every((target) => target.state === 'healthy' && !target.activeDown);
    const candidates = everyoneUp ? this.targets : this.targets.filter((target) => !exclude?.has(target) && this.isAvailable(target, now));
    if (candidates.length === 0) return undefined;
    const key = this.stickyKey(req);
    const chosen = key === undefined ? pickRoundRobin(candidates) : pickSticky(candidates, key);
    if (chosen.state === 'ejected') chosen.trialInFlight = true;
    return chosen;
  }

  /** The attempt got a response below 500. */
  reportSuccess(target: UpstreamTarget): void {
    target.failures = 0;
    if (target.state === 'ejected') {
      target.state = 'healthy';
      target.ejections = 0;
      target.trialInFlight = false;
      this.emit('recover', target);
    }
  }

  /**
   * The attempt failed to connect, was reset, timed out, or got a 5xx. Returns true when this ejected the target.
   * `trial`: whether this attempt was the trial pick() let through to an ejected target (it was, when pick()
   * returned a target whose state was 'ejected'). Callers that track it pass it; otherwise any failure while a
   * trial is in flight counts as the trial's.
   */
  reportFailure(target: UpstreamTarget, trial: boolean = target.trialInFlight): boolean {
    if (!this.passive) return false;
    if (target.state === 'ejected') {
      // Only the trial's failure extends the ejection; requests sent before it was ejected do not.
      if (!trial || !target.trialInFlight) return false;
      target.trialInFlight = false;
      this.eject(target);
      return true;
    }
    target.failures += 1;
    if (target.failures < this.passive.failures) return false;
    this.eject(target);
    return true;
  }

  /** The attempt ended without a verdict (the client went away): free the trial slot if it held it. */
  release(target: UpstreamTarget, trial = true): void {
    if (trial) target.trialInFlight = false;
  }

  /** Seconds until the first ejected target may be tried again: the 503's `Retry-After`. */
  retryAfterSeconds(): number {
    const now = Date.now();
    const waits = this.targets.filter((t) => t.state === 'ejected').map((t) => t.ejectedUntil - now);
    const soonest = waits.length ? Math.min(...waits) : 1000;
    return Math.max(1, Math.ceil(soonest / 1000));
  }

  /** Stops health checks and closes pooled sockets. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
    this.agent.destroy();
  }

  private isAvailable(target: UpstreamTarget, now: number): boolean {
    if (target.activeDown) return false;
    if (target.state === 'healthy') return true;
    return now >= target.ejectedUntil && !target.trialInFlight;
  }

  private eject(target: UpstreamTarget): void {
    const passive = this.passive!;
    target.ejections += 1;
    const cooldown = Math.min(passive.maxCooldown, passive.cooldown * 2 ** (target.ejections - 1));
    target.state = 'ejected';
    target.failures = 0;
    target.ejectedUntil = Date.now() + cooldown;
    this.emit('eject', target, cooldown);
  }

  private stickyKey(req: IncomingMessage): string | undefined {
    if (this.stickyHeader) {
      const value = req.headers[this.stickyHeader];
      if (typeof value === 'string' && value) return value;
    }
    if (this.stickyCookie) return readCookie(req.headers.cookie, this.stickyCookie);
    return undefined;
  }

  private startActiveChecks(active: ActiveHealthOptions, name: (key: string) => string): void {
    const path = active.path ?? DEFAULTS.activePath;
    if (!path.startsWith('/')) throw new ConfigError(`"${name('health.active.path')}" must start with "/"; received ${JSON.stringify(path)}.`);
    const interval = active.interval === undefined ? DEFAULTS.activeInterval : parseDuration(active.interval, name('health.active.interval'));
    const timeout = active.timeout === undefined ? DEFAULTS.activeTimeout : parseDuration(active.timeout, name('health.active.timeout'));
    if (interval < 100) throw new ConfigError(`"${name('health.active.interval')}" must be at least 100 ms.`);
    const checkAll = () => {
      for (const target of this.targets) this.checkTarget(target, path, timeout);
    };
    const timer = setInterval(checkAll, interval);
    timer.unref();
    this.timers.push(timer);
    setImmediate(checkAll).unref();
  }

  private checkTarget(target: UpstreamTarget, path: string, timeout: number): void {
    if (this.closed) return;
    const url = new URL(joinPath(target.url.pathname, path), target.url);
    const client = url.protocol === 'https:' ? https : http;
    const settle = (up: boolean) => {
      if (this.closed || target.activeDown === !up) return;
      target.activeDown = !up;
      if (up) this.emit('recover', target);
      else this.emit('eject', target, 0);
    };
    // A fresh connection per check (agent: false): it tests that the target accepts connections, and
    // the check's timeout never lingers on a pooled socket.
    const request = client.get(url, { agent: false, timeout, ...(url.protocol === 'https:' ? this.tls : {}) }, (response) => {
      response.resume();
      response.on('end', () => settle(response.statusCode !== undefined && response.statusCode < 400));
      response.on('error', () => settle(false));
    });
    request.on('timeout', () => request.destroy(new Error('health check timed out')));
    request.on('error', () => settle(false));
  }
}

function parseTargets(options: UpstreamOptions, name: (key: string) => string): UpstreamTarget[] {
  if (options.target !== undefined && options.targets !== undefined) {
    throw new ConfigError(`Set either "${name('target')}" or "${name('targets')}", not both.`);
  }
  const list: Array<string | TargetOption> | undefined = options.target !== undefined ? [options.target] : options.targets;
  if (!list || !Array.isArray(list) || list.length === 0) {
    throw new ConfigError(`Missing "${name('target')}" option. Example: { target: 'http://127.0.0.1:4001' } or { targets: ['http://10.0.0.1:4001', 'http://10.0.0.2:4001'] }.`);
  }
  return list.map((entry, index) => {
    const option = typeof entry === 'string' ? { url: entry } : entry;
    const where = options.target !== undefined ? name('target') : name(`targets[${index}]`);
    let url: URL;
    try {
      url = new URL(option?.url);
    } catch {
      throw new ConfigError(`"${where}" must be an absolute http(s) URL such as 'http://127.0.0.1:4001'; received ${JSON.stringify(option?.url)}.`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`"${where}" must use http:// or https://; received ${JSON.stringify(option.url)}.`);
    }
    if (url.search || url.hash) throw new ConfigError(`"${where}" must not have a query string or fragment.`);
    const weight = option.weight ?? 1;
    if (!Number.isFinite(weight) || weight <= 0) throw new ConfigError(`"${where}.weight" must be a positive number; received ${JSON.stringify(option.weight)}.`);
    const href = url.href.replace(/\/$/, '');
    return { url, href, weight, state: 'healthy', failures: 0, ejections: 0, ejectedUntil: 0, trialInFlight: false, activeDown: false, currentWeight: 0 };
  });
}

function joinPath(base: string, path: string): string {
  return base.replace(/\/$/, '') + path;
}

/** Reads one cookie's value from a Cookie header without parsing the rest. */
function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return value || undefined;
    }
  }
  return undefined;
}
