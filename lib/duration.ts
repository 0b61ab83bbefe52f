/**
 * Durations in options accept milliseconds or `ms`-style strings ('30s', '1m', '500ms').
 */
import ms from 'ms';
import { ConfigError } from './errors';

/** A duration: milliseconds as a number, or a string such as `'30s'`, `'1m'`, `'250ms'`. */
export type Duration = number | string;

/** Parses a duration option, throwing a ConfigError that names the option when it is unusable. */
export function parseDuration(value: Duration, option: string): number {
  const parsed = typeof value === 'number' ? value : typeof value === 'string' ? ms(value as ms.StringValue) : NaN;
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0) {
    throw new ConfigError(`"${option}" must be a duration in ms or a string like '30s' or '1m'; received ${JSON.stringify(value)}.`);
  }
  return parsed;
}
