/**
 * Construction-time option checks: the ConfigError a builder throws, failing the test when it throws
 * something else or nothing at all.
 */
import { ConfigError } from '../../index';

export interface ConfigErrorOptions<T> {
  /** Cleans up what `build` made when it unexpectedly did not throw (closes a gateway, say). */
  accepted?: (built: T) => void;
  /** The failure message when `build` did not throw. */
  message?: string;
}

/** The ConfigError `build` throws. */
export function configError<T>(build: () => T, options: ConfigErrorOptions<T> = {}): ConfigError {
  let built: T;
  try {
    built = build();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  options.accepted?.(built);
  throw new Error(options.message ?? 'expected a ConfigError');
}

/** Expects `build` to throw a ConfigError whose message matches every pattern. */
export function expectConfigError(build: () => unknown, ...patterns: RegExp[]): void {
  const error = configError(build);
  for (const pattern of patterns) expect(error.message).toMatch(pattern);
}
