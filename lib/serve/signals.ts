/**
 * SIGTERM (what Docker and Kubernetes send) and SIGINT (Ctrl-C) start a graceful shutdown; a second one during
 * it cuts what is still running, for an operator who does not want to wait out the drain timeout.
 */

export interface ShutdownSignals {
  /** Resolves with the first signal's name. */
  readonly first: Promise<NodeJS.Signals>;
  /** Stops listening for the signals. */
  remove(): void;
}

export function shutdownSignals(onSecond: (signal: NodeJS.Signals) => void): ShutdownSignals {
  let seen = 0;
  let resolveFirst: (signal: NodeJS.Signals) => void = () => undefined;
  const first = new Promise<NodeJS.Signals>((resolve) => (resolveFirst = resolve));
  const handler = (signal: NodeJS.Signals) => {
    seen++;
    if (seen === 1) resolveFirst(signal);
    else onSecond(signal);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return {
    first,
    remove() {
      process.off('SIGTERM', handler);
      process.off('SIGINT', handler);
    },
  };
}
