/**
 * The Redis store of rateLimit(), made safe for outages: every call has a timeout, an outage is logged
 * once (and its end once), and after a failure the store's scripts are reloaded before the next call,
 * so counting resumes by itself when Redis returns.
 */
import type { IncrementResponse, Options as RateLimitConfig, Store, ClientRateLimitInfo } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import type { Logger } from './log';
import { RedisOutageGuard } from './redis';
import type { SendCommand } from './redis';

export class ResilientRedisStore implements Store {
  /** Counters live in Redis: every gateway instance sees the same counts. */
  readonly localKeys = false;
  readonly prefix: string;
  private readonly inner: RedisStore;
  private config: RateLimitConfig | undefined;
  private needsInit = false;
  private readonly outage: RedisOutageGuard;

  constructor(send: SendCommand, prefix: string, timeoutMs: number, logger: Logger) {
    this.prefix = prefix;
    this.outage = new RedisOutageGuard(
      timeoutMs,
      logger,
      {
        down: (reason) => `frontdoor: rate limiting (${prefix}) cannot reach Redis: ${reason}. Applying the onStoreError policy until it returns.`,
        up: `frontdoor: rate limiting (${prefix}) is counting in Redis again.`,
      },
      // The Lua scripts may be gone when Redis comes back (a restart, a failover): load them again first.
      () => {
        this.needsInit = true;
      },
    );
    this.inner = new RedisStore({ sendCommand: (command: string, ...args: string[]) => send(command, ...args) as never, prefix });
  }

  init(config: RateLimitConfig): void {
    this.config = config;
    // Loads the Lua scripts; if Redis is down now, the first call after it returns loads them again.
    this.outage.run(this.inner.init(config)).catch(() => undefined);
  }

  async increment(key: string): Promise<IncrementResponse> {
    await this.reinitIfNeeded();
    return this.outage.run(this.inner.increment(key));
  }

  async decrement(key: string): Promise<void> {
    await this.reinitIfNeeded();
    await this.outage.run(this.inner.decrement(key));
  }

  async resetKey(key: string): Promise<void> {
    await this.outage.run(this.inner.resetKey(key));
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    await this.reinitIfNeeded();
    return this.outage.run(this.inner.get(key));
  }

  private async reinitIfNeeded(): Promise<void> {
    if (!this.needsInit || !this.config) return;
    await this.outage.run(this.inner.init(this.config));
    this.needsInit = false;
  }
}
