/**
 * One Redis connection per `redis` option value, shared by every middleware that needs Redis (rate limiting,
 * caching): created on first use, its errors handled here (no unhandled 'error' event can crash the process),
 * released when the last user closes. A `redis` option is a URL, `{ cluster: [urls…] }` (Redis Cluster),
 * `{ sentinels: [...], name }` (Sentinel) or a client you made; all of them end up behind one `send()`.
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { ConfigError } from './errors';
import { load } from './load';
import type { Z } from './schema';

/** Sends one command, e.g. `send('EVALSHA', sha, '1', key)`; what rate-limit-redis and caches need. */
export type SendCommand = (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown>;

/** An existing client you pass in: ioredis (`call`; a `Cluster` too) or node-redis (`sendCommand`). */
export type RedisClientLike = { call: (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown> } | { sendCommand: (args: string[]) => Promise<unknown> };

/** Redis Cluster: some of its nodes (the rest are discovered), e.g. `{ cluster: ['redis://10.0.0.1:6379', 'redis://10.0.0.2:6379'] }`. */
export interface RedisClusterOption {
  /** Seed nodes as `redis://` / `rediss://` URLs; a password in the first URL is used for every node. */
  cluster: string[];
}

/** Redis Sentinel: the sentinels to ask and the name of the master they watch, e.g. `{ sentinels: ['redis://10.0.0.1:26379'], name: 'mymaster' }`. */
export interface RedisSentinelOption {
  /** `redis://host:port` URLs, `host:port` strings or `{ host, port }` objects. */
  sentinels: Array<string | { host: string; port: number }>;
  /** The master's name in the sentinels' configuration. */
  name: string;
  /** The master's (and replicas') password. Defaults to none. */
  password?: string;
  /** The sentinels' own password. Defaults to none. */
  sentinelPassword?: string;
}

/** Every form a `redis` option takes. */
export type RedisOption = string | RedisClientLike | RedisClusterOption | RedisSentinelOption;

export interface RedisHandle {
  send: SendCommand;
  /** Releases this user's hold; the connection closes when nobody holds it. Clients passed in are never closed. */
  release(): Promise<void>;
}

interface Shared {
  client: Redis | Cluster;
  send: SendCommand;
  users: number;
  /** Settles on the first connection attempt's outcome; until then commands wait for it instead of failing. */
  firstConnection: Promise<void> | undefined;
}

const connections = new Map<string, Shared>();

/** How long ioredis waits for a closing socket before destroying it; release() never waits longer. */
const DISCONNECT_TIMEOUT_MS = 200;

/** Reconnect forever, backing off to 2 s: Redis coming back must be noticed without a restart. */
const retryStrategy = (attempt: number) => Math.min(attempt * 100, 2000);

const URL_PATTERN = /^rediss?:\/\//;
const EXPECTED = "a redis:// or rediss:// URL, { cluster: ['redis://…', …] }, { sentinels: ['redis://…:26379', …], name: 'mymaster' }, or a Redis client (ioredis or node-redis)";

/** True for every value a `redis` option accepts (the schemas of rate limit and cache use it). */
export function isRedisOption(value: unknown): value is RedisOption {
  if (typeof value === 'string') return URL_PATTERN.test(value);
  if (!value || typeof value !== 'object') return false;
  const option = value as Record<string, unknown>;
  if (isRedisClient(value)) return true;
  if ('cluster' in option) return Array.isArray(option.cluster) && option.cluster.length > 0 && option.cluster.every((url) => typeof url === 'string' && URL_PATTERN.test(url)) && Object.keys(option).length === 1;
  if ('sentinels' in option) {
    const known = ['sentinels', 'name', 'password', 'sentinelPassword'];
    return (
      Array.isArray(option.sentinels) &&
      option.sentinels.length > 0 &&
      option.sentinels.every((entry) => sentinelAddress(entry) !== undefined) &&
      typeof option.name === 'string' &&
      option.name.length > 0 &&
      Object.keys(option).every((key) => known.includes(key)) &&
      ['password', 'sentinelPassword'].every((key) => option[key] === undefined || typeof option[key] === 'string')
    );
  }
  return false;
}

/** The zod type of a `redis` option, with the message that lists the accepted forms. */
export function redisOptionSchema(z: Z) {
  return z.custom<RedisOption>((value) => isRedisOption(value), { error: `must be ${EXPECTED}` });
}

/**
 * Returns a handle on the shared connection for `redis`, or wraps a client passed in.
 * Commands fail fast while Redis is unreachable (no offline queue), so callers can apply their outage policy.
 */
export function redisHandle(redis: RedisOption, option: string): RedisHandle {
  if (!isRedisOption(redis)) throw new ConfigError(`"${option}" must be ${EXPECTED}; received ${typeof redis === 'string' ? JSON.stringify(redis) : typeof redis}.`);
  if (isRedisClient(redis)) return clientHandle(redis);
  const key = connectionKey(redis);
  let shared = connections.get(key);
  if (!shared) {
    shared = connect(redis);
    connections.set(key, shared);
  }
  shared.users += 1;
  const entry = shared;
  let released = false;
  return {
    send: (command, ...args) => (entry.firstConnection ? entry.firstConnection.then(() => entry.send(command, ...args)) : entry.send(command, ...args)),
    async release() {
      if (released) return;
      released = true;
      entry.users -= 1;
      if (entry.users > 0) return;
      connections.delete(key);
      await disconnect(entry.client);
    },
  };
}

/** A client (ioredis has `cluster()` and `sentinel` commands too: the command method decides, not the keys). */
export function isRedisClient(value: unknown): value is RedisClientLike {
  return !!value && typeof value === 'object' && (typeof (value as { call?: unknown }).call === 'function' || typeof (value as { sendCommand?: unknown }).sendCommand === 'function');
}

/** A client passed in: used as it is, never closed here. */
function clientHandle(client: RedisClientLike): RedisHandle {
  if ('call' in client && typeof client.call === 'function') {
    const send: SendCommand = (command, ...args) => client.call(command, ...args);
    if ((client as { isCluster?: boolean }).isCluster !== true) return { send, release: async () => undefined };
    const cluster = client as unknown as Cluster;
    return { send: clusterSend(send, () => cluster.nodes('master')), release: async () => undefined };
  }
  const nodeRedis = client as { sendCommand: (args: string[]) => Promise<unknown> };
  return { send: (command, ...args) => nodeRedis.sendCommand([command, ...args.map(String)]), release: async () => undefined };
}

/** Two options that name the same servers share one connection. */
function connectionKey(redis: Exclude<RedisOption, RedisClientLike>): string {
  if (typeof redis === 'string') return redis;
  if ('cluster' in redis) return `cluster ${[...redis.cluster].sort().join(' ')}`;
  return `sentinel ${redis.name} ${redis.sentinels.map((entry) => JSON.stringify(sentinelAddress(entry))).sort().join(' ')} ${redis.password ?? ''} ${redis.sentinelPassword ?? ''}`;
}

function connect(redis: string | RedisClusterOption | RedisSentinelOption): Shared {
  const IORedis = load('ioredis').default;
  const common = { enableOfflineQueue: false, maxRetriesPerRequest: 0, disconnectTimeout: DISCONNECT_TIMEOUT_MS };
  let client: Redis | Cluster;
  let send: SendCommand;
  if (typeof redis === 'string') {
    client = new IORedis(redis, { ...common, retryStrategy });
    send = (command, ...args) => client.call(command, ...args);
  } else if ('cluster' in redis) {
    const seeds = redis.cluster.map((url) => new URL(url));
    const first = seeds[0];
    const cluster = new (load('ioredis').Cluster)(
      seeds.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) })),
      {
        enableOfflineQueue: false,
        clusterRetryStrategy: retryStrategy,
        // No delayed retry while a master is down or the cluster is failing over: a retry that runs after the caller
        // gave up (its store timeout) would still count a request the outage policy already answered. The command
        // fails at once; the caller applies its outage policy; the slot map is refreshed (below, and every second).
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
        slotsRefreshInterval: 1000,
        slotsRefreshTimeout: 1000,
        redisOptions: {
          maxRetriesPerRequest: 0,
          disconnectTimeout: DISCONNECT_TIMEOUT_MS,
          ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
          ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
          ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
        },
      },
    );
    client = cluster;
    send = clusterSend(
      (command, ...args) => cluster.call(command, ...args),
      () => cluster.nodes('master'),
      () => cluster.refreshSlotsCache(),
    );
  } else {
    client = new IORedis({
      ...common,
      sentinels: redis.sentinels.map((entry) => sentinelAddress(entry) as { host: string; port: number }),
      name: redis.name,
      ...(redis.password ? { password: redis.password } : {}),
      ...(redis.sentinelPassword ? { sentinelPassword: redis.sentinelPassword } : {}),
      retryStrategy,
      sentinelRetryStrategy: retryStrategy,
    });
    send = (command, ...args) => client.call(command, ...args);
  }
  // Outages are reported by the users of the connection (once each); this listener only keeps an
  // unhandled 'error' event from crashing the process.
  client.on('error', () => undefined);
  const entry: Shared = { client, send, users: 0, firstConnection: undefined };
  entry.firstConnection = new Promise<void>((resolve) => {
    const settle = () => {
      entry.firstConnection = undefined;
      resolve();
    };
    client.once('ready', settle);
    client.once('error', settle);
    client.once('end', settle);
  });
  return entry;
}

/**
 * Commands made cluster-safe, for the stores that were written against one server:
 * - `SCRIPT LOAD` would load on one random node: it loads on every master (failing while one is unreachable, so
 *   the store knows Redis is not all there), and an `EVALSHA` that finds no script on its node (a replica promoted
 *   since) is sent again as `EVAL` with the remembered script;
 * - `SCAN … MATCH 'prefix:{tag}:…'` would scan one random node: it runs inside a script keyed by `{tag}`, so it
 *   scans the node owning that hash tag's slot, where every key it can match lives.
 * A failure that says a node is gone asks for a new slot map at once (`refresh`), so a promoted replica takes
 * over as soon as the cluster has promoted it.
 */
function clusterSend(send: SendCommand, masters: () => Array<{ call: SendCommand }>, refresh?: () => void): SendCommand {
  const scripts = new Map<string, string>();
  const run = async (command: string, ...args: Array<string | number | Buffer>) => {
    try {
      return await send(command, ...args);
    } catch (err) {
      if (refresh && /Connection is closed|CLUSTERDOWN|ECONNREFUSED|MOVED/.test((err as Error)?.message ?? '')) refresh();
      throw err;
    }
  };
  return async (command, ...args) => {
    const name = command.toUpperCase();
    if (name === 'SCRIPT' && String(args[0]).toUpperCase() === 'LOAD') {
      const script = String(args[1]);
      const sha = createHash('sha1').update(script).digest('hex');
      scripts.set(sha, script);
      // While a master is down the cluster reports it: a store reloading its scripts after a failure learns that
      // Redis is not all back yet, rather than that it is (and then failing the next command on the dead slot).
      if (!/cluster_state:ok/.test(String(await run('CLUSTER', 'INFO')))) throw new Error('CLUSTERDOWN the cluster is not in the ok state');
      await Promise.all(masters().map((node) => node.call('SCRIPT', 'LOAD', script)));
      return sha;
    }
    if (name === 'EVALSHA') {
      try {
        return await run(command, ...args);
      } catch (err) {
        const script = scripts.get(String(args[0]));
        if (!script || !/^NOSCRIPT/.test((err as Error)?.message ?? '')) throw err;
        return run('EVAL', script, ...args.slice(1));
      }
    }
    if (name === 'SCAN') {
      const match = args.findIndex((arg) => String(arg).toUpperCase() === 'MATCH');
      const tag = match >= 0 ? /\{([^}]+)\}/.exec(String(args[match + 1]))?.[1] : undefined;
      if (tag) return run('EVAL', "return redis.call('SCAN', unpack(ARGV))", 1, `{${tag}}`, ...args);
    }
    return run(command, ...args);
  };
}

/** `{ host, port }` of a sentinel given as a URL, `host:port` or an object; undefined when it is none of them. */
function sentinelAddress(entry: unknown): { host: string; port: number } | undefined {
  if (entry && typeof entry === 'object') {
    const { host, port } = entry as { host?: unknown; port?: unknown };
    return typeof host === 'string' && typeof port === 'number' && Number.isInteger(port) ? { host, port } : undefined;
  }
  if (typeof entry !== 'string') return undefined;
  const match = /^(?:redis:\/\/)?\[?([^\]/]+?)\]?:(\d+)\/?$/.exec(entry);
  return match ? { host: match[1], port: Number(match[2]) } : undefined;
}

/**
 * Resolves once nothing of the client is left running. A live socket ends with 'end'; when a reconnect was
 * pending the socket is already closed, no 'end' follows, and ioredis's disconnect timer is the last thing
 * left, so wait that out (bounded either way: an unreachable server cannot hold close() up).
 */
async function disconnect(client: Redis | Cluster): Promise<void> {
  if (client.status === 'end') return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, DISCONNECT_TIMEOUT_MS + 20);
    function done() {
      clearTimeout(timer);
      client.off('end', done);
      resolve();
    }
    client.once('end', done);
    client.disconnect(false);
  });
}

/**
 * Redis calls of a store that must not wait on an outage: each call fails after `timeoutMs`, and the outage
 * and its end are logged once each (not once per request). The cache and the rate limiter use one each.
 */
export class RedisOutageGuard {
  /** Redis failed the last call and has not answered one since. */
  down = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly logger: Pick<import('./log').Logger, 'warn'>,
    private readonly messages: { down: (reason: string) => string; up: string },
    /** Called on every failed call (a store marks what it must redo, or when to try again). */
    private readonly onFailure: () => void = () => undefined,
  ) {}

  /** `operation`, failed after the timeout; notes the outage and its end. */
  run<T>(operation: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    operation.catch(() => undefined); // a late failure after the timeout must not become an unhandled rejection
    return Promise.race([operation, timeout]).then(
      (value) => {
        clearTimeout(timer);
        if (this.down) {
          this.down = false;
          this.logger.warn(this.messages.up);
        }
        return value;
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.onFailure();
        if (!this.down) {
          this.down = true;
          this.logger.warn(this.messages.down(String((err as Error)?.message ?? err)));
        }
        throw err;
      },
    );
  }
}
