/**
 * Sizes in options accept bytes or `bytes`-style strings ('1mb', '512kb'), as Express's body parsers do.
 */
import bytes from 'bytes';
import { ConfigError } from './errors';

/** A size: bytes as a number, or a string such as `'1mb'`, `'512kb'`. */
export type ByteSize = number | string;

// bytes.parse() reads '1mbb' and '1 parsec' as 1 byte: a mistyped size must be an error, not a tiny limit.
const SIZE = /^\s*\d+(?:\.\d+)?\s*(?:b|kb|mb|gb|tb|pb)?\s*$/i;

/** Parses a size to bytes; `undefined` when it is not a non-negative whole number of bytes. */
export function toBytes(value: unknown): number | undefined {
  const parsed = typeof value === 'number' ? value : typeof value === 'string' && SIZE.test(value) ? bytes.parse(value) : NaN;
  return typeof parsed === 'number' && Number.isSafeInteger(parsed) && parsed >= 0 ? parsed : undefined;
}

/** Parses a size option, or throws a ConfigError naming it. */
export function parseByteSize(value: unknown, option: string): number {
  const parsed = toBytes(value);
  if (parsed === undefined) throw new ConfigError(`"${option}" must be a size in bytes or a string like '1mb' or '512kb'; received ${JSON.stringify(value)}.`);
  return parsed;
}
