/**
 * One Redis connection per URL, shared by every middleware that needs Redis (rate limiting, later
 * caching): created on first use, its errors handled here (no unhandled 'error' event can crash the
 * process), released when the last user closes.
 */
import type Redis from 'ioredis';
import { ConfigError } from './errors';
import { load } from './load';

/** Sends one command, e.g. `send('EVALSHA', sha, '1', key)`; what rate-limit-redis and caches need. */
export type SendCommand = (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown>;

/** An existing client you pass in: ioredis (`call`) or node-redis (`sendCommand`). */
export type RedisClientLike = { call: (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown> } | { sendCommand: (args: string[]) => Promise<unknown> };

export interface RedisHandle {
  send: SendCommand;
  /** Releases this user's hold; the connection closes when nobody holds it. Clients passed in are never closed. */
  release(): Promise<void>;
}

interface Shared {
  client: Redis;
  users: number;
  /** Settles on the first connection attempt's outcome; until then commands wait for it instead of failing. */
  firstConnection: Promise<void> | undefined;
}

const connections = new Map<string, Shared>();

/** How long ioredis waits for a closing socket before destroying it; release() never waits longer. */
const DISCONNECT_TIMEOUT_MS = 200;

/**
 * Returns a handle on the shared connection to `redis` (a URL), or wraps a client passed in.
 * Commands fail fast while Redis is unreachable (no offline queue), so callers can apply their outage policy.
 */
export function redisHandle(redis: string | RedisClientLike, option: string): RedisHandle {
  if (typeof redis !== 'string') {
    if (redis && typeof (redis as { call?: unknown }).call === 'function') {
      const client = redis as { call: SendCommand };
      return { send: (command, ...args) => client.call(command, ...args), release: async () => undefined };
    }
    if (redis && typeof (redis as { sendCommand?: unknown }).sendCommand === 'function') {
      const client = redis as { sendCommand: (args: string[]) => Promise<unknown> };
      return { send: (command, ...args) => client.sendCommand([command, ...args.map(String)]), release: async () => undefined };
    }
    throw new ConfigError(`"${option}" must be a redis:// URL or a Redis client (ioredis or node-redis).`);
  }
  if (!/^rediss?:\/\//.test(redis)) throw new ConfigError(`"${option}" must be a redis:// or rediss:// URL; received ${JSON.stringify(redis)}.`);
  let shared = connections.get(redis);
  if (!shared) {
    const IORedis = load('ioredis').default;
    const client = new IORedis(redis, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      disconnectTimeout: DISCONNECT_TIMEOUT_MS,
      // Reconnect forever, backing off to 2 s: Redis coming back must be noticed without a restart.
      retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    });
    // Outages are reported by the users of the connection (once each); this listener only keeps an
    // unhandled 'error' event from crashing the process.
    client.on('error', () => undefined);
    const entry: Shared = { client, users: 0, firstConnection: undefined };
    entry.firstConnection = new Promise<void>((resolve) => {
      const settle = () => {
        entry.firstConnection = undefined;
        resolve();
      };
      client.once('ready', settle);
      client.once('error', settle);
      client.once('end', settle);
    });
    shared = entry;
    connections.set(redis, shared);
  }
  shared.users += 1;
  const entry = shared;
  let released = false;
  return {
    send: (command, ...args) =>
      entry.firstConnection ? entry.firstConnection.then(() => entry.client.call(command, ...args)) : entry.client.call(command, ...args),
    async release() {
      if (released) return;
      released = true;
      entry.users -= 1;
      if (entry.users > 0) return;
      connections.delete(redis);
      // Resolve once nothing of the client is left running. A live socket ends with 'end'; when a reconnect
      // was pending the socket is already closed, no 'end' follows, and ioredis's disconnect timer is the last
      // thing left, so wait that out (bounded either way: an unreachable server cannot hold close() up).
      const client = entry.client;
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
    },
  };
}
