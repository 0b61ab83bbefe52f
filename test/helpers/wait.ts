/**
 * Waiting in tests: a plain sleep, the short pause after which a connection the gateway might have
 * started would have been accepted, and polls for a condition (one that fails the test, one that does not).
 */

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A connection the gateway might have started would be accepted by now. */
export const settle = () => sleep(50);

/** Polls `condition` every 10 ms; fails the test if it does not hold within `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** Polls `condition` every 10 ms for at most `timeoutMs`; resolves with whether it held (the caller asserts). */
export async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleep(10);
  return condition();
}
