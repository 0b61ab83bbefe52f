/**
 * The Redis store of rateLimit(), made safe for outages: every call has a timeout, an outage is logged
 * once (and its end once), and after a failure the store's scripts are reloaded before the next call,
 * so counting resumes by itself when Redis returns.
 */
import type { IncrementResponse, Options as RateLimitConfig, Store, ClientRateLimitInfo } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import type { Logger } from './log';
import type { SendCommand } from './redis';

export class ResilientRedisStore implements Store {
  /** Counters live in Redis: every gateway instance sees the same counts. */
  readonly localKeys = false;
  readonly prefix: string;
  private readonly inner: RedisStore;
  private config: RateLimitConfig | undefined;
  private needsInit = false;
  private down = false;

  constructor(send: SendCommand, prefix: string, private readonly timeoutMs: number, private readonly logger: Logger) {
    this.prefix = prefix;
    this.inner = new RedisStore({ sendCommand: (command: string, ...args: string[]) => send(command, ...args) as never, prefix });
  }

  init(config: RateLimitConfig): void {
    this.config = config;
    // Loads the Lua scripts; if Redis is down now, the first call after it returns loads them again.
    this.guard(this.inner.init(config)).catch(() => undefined);
  }

  async increment(key: string): Promise<IncrementResponse> {
    await this.reinitIfNeeded();
    return this.guard(this.inner.increment(key));
  }

  async decrement(key: string): Promise<void> {
    await this.reinitIfNeeded();
    await this.guard(this.inner.decrement(key));
  }

  async resetKey(key: string): Promise<void> {
    await this.guard(this.inner.resetKey(key));
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    await this.reinitIfNeeded();
    return this.guard(this.inner.get(key));
  }

  private async reinitIfNeeded(): Promise<void> {
    if (!this.needsInit || !this.config) return;
    await this.guard(this.inner.init(this.config));
    this.needsInit = false;
  }

  private guard<T>(operation: Promise<T>): Promise<T> {
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
          this.logger.warn(`frontdoor: rate limiting (${this.prefix}) is counting in Redis again.`);
        }
        return value;
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.needsInit = true;
        if (!this.down) {
          this.down = true;
          this.logger.warn(`frontdoor: rate limiting (${this.prefix}) cannot reach Redis: ${(err as Error)?.message ?? err}. Applying the onStoreError policy until it returns.`);
        }
        throw err;
      },
    );
  }
}
