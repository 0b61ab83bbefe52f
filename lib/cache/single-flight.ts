/**
 * Single-flight: while one request fills an entry, the others that miss on the same key wait for it instead of
 * each going upstream. The wait is bounded; a fill that fails or stores nothing wakes the waiters with nothing,
 * and they go upstream themselves. A fill older than the wait bound no longer holds newcomers back.
 */

/** One fill under way; its waiters are woken by finish(). */
export interface Flight<T> {
  readonly key: string;
  readonly startedAt: number;
  readonly waiters: Set<(result: T | undefined) => void>;
}

export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>();

  constructor(private readonly waitMs: number) {}

  /** A fill under way for `key` that newcomers should wait for, if any. */
  current(key: string): Flight<T> | undefined {
    const flight = this.flights.get(key);
    return flight && Date.now() - flight.startedAt < this.waitMs ? flight : undefined;
  }

  /** Starts the fill of `key` by the caller, who must finish() it (a fill that outlived the wait bound is replaced). */
  lead(key: string): Flight<T> {
    const flight: Flight<T> = { key, startedAt: Date.now(), waiters: new Set() };
    this.flights.set(key, flight);
    return flight;
  }

  /** Resolves with the fill's result, or undefined when it failed or when the wait bound passed first. */
  wait(flight: Flight<T>): Promise<T | undefined> {
    return new Promise((resolve) => {
      const wake = (result: T | undefined) => {
        clearTimeout(timer);
        flight.waiters.delete(wake);
        resolve(result);
      };
      const timer = setTimeout(() => wake(undefined), Math.max(0, this.waitMs - (Date.now() - flight.startedAt)));
      flight.waiters.add(wake);
    });
  }

  /** Ends a fill and wakes its waiters with `result` (undefined: go upstream yourselves). */
  finish(flight: Flight<T>, result: T | undefined): void {
    if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
    for (const wake of [...flight.waiters]) wake(result);
  }

  /** Fills under way (for tests and diagnostics). */
  get size(): number {
    return this.flights.size;
  }
}
