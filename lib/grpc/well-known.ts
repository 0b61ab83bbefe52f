/**
 * The canonical proto3 JSON forms of the well-known types that are strings: Timestamp (RFC 3339, UTC, 0/3/6/9
 * fraction digits), Duration (`"1.5s"`) and FieldMask (`"user.displayName,price"`). Pure conversions; each parse
 * throws an Error whose message says what the form must be.
 */

export interface SecondsNanos {
  /** Seconds as a decimal string (int64). */
  seconds: string;
  nanos: number;
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;
// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range protobuf allows.
const MIN_SECONDS = -62135596800;
const MAX_SECONDS = 253402300799;

/** `"2024-05-01T10:00:00.5Z"` → `{ seconds, nanos }`. */
export function parseTimestamp(text: string): SecondsNanos {
  const match = TIMESTAMP.exec(text);
  if (!match) throw new Error('must be an RFC 3339 timestamp such as "2024-05-01T10:00:00Z"');
  const [, year, month, day, hour, minute, second, fraction, , sign, offsetHours, offsetMinutes] = match;
  const ms = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second));
  const check = new Date(ms);
  // Date.UTC rolls over (Feb 30 → Mar 2): a date that does not exist is refused. Years below 100 are set by hand.
  check.setUTCFullYear(Number(year));
  if (check.getUTCMonth() !== Number(month) - 1 || check.getUTCDate() !== Number(day) || Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) {
    throw new Error('must be an RFC 3339 timestamp of a real date and time');
  }
  let seconds = Math.floor(check.getTime() / 1000);
  if (sign) seconds -= (sign === '+' ? 1 : -1) * (Number(offsetHours) * 3600 + Number(offsetMinutes) * 60);
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS) throw new Error('must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z');
  return { seconds: String(seconds), nanos: fraction ? Number(fraction.padEnd(9, '0')) : 0 };
}

/** `{ seconds, nanos }` → `"2024-05-01T10:00:00.500Z"`. */
export function formatTimestamp(seconds: number, nanos: number): string {
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS || nanos < 0 || nanos > 999_999_999) throw new Error('timestamp out of range');
  const date = new Date(seconds * 1000);
  const base = date.toISOString().replace(/\.\d{3}Z$/, '');
  // Years below 1000 (and the sign-extended forms toISOString gives beyond 9999) cannot occur in range.
  return `${base}${fractionOf(nanos)}Z`;
}

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const MAX_DURATION_SECONDS = 315_576_000_000n;

/** `"-1.5s"` → `{ seconds: '-1', nanos: -500000000 }`. */
export function parseDuration(text: string): SecondsNanos {
  const match = DURATION.exec(text);
  if (!match) throw new Error('must be a duration in seconds such as "1.5s"');
  const [, minus, whole, fraction] = match;
  const seconds = BigInt(whole);
  if (seconds > MAX_DURATION_SECONDS) throw new Error('must be at most 315576000000s (10 000 years)');
  const nanos = fraction ? Number(fraction.padEnd(9, '0')) : 0;
  return { seconds: minus && seconds !== 0n ? `-${seconds}` : String(seconds), nanos: minus ? -nanos : nanos };
}

/** `{ seconds, nanos }` → `"1.500s"`. */
export function formatDuration(seconds: bigint, nanos: number): string {
  const negative = seconds < 0n || nanos < 0;
  const whole = seconds < 0n ? -seconds : seconds;
  return `${negative ? '-' : ''}${whole}${fractionOf(Math.abs(nanos))}s`;
}

/** The fraction of a second as protobuf prints it: none, or 3, 6 or 9 digits. */
function fractionOf(nanos: number): string {
  if (nanos === 0) return '';
  const digits = String(nanos).padStart(9, '0');
  if (digits.endsWith('000000')) return `.${digits.slice(0, 3)}`;
  if (digits.endsWith('000')) return `.${digits.slice(0, 6)}`;
  return `.${digits}`;
}

/** `"user.displayName,price"` → `['user.display_name', 'price']`. */
export function parseFieldMask(text: string): string[] {
  if (text === '') return [];
  return text.split(',').map((path) => {
    if (!/^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*$/.test(path)) throw new Error(`must be a comma-separated list of lowerCamelCase field paths; ${JSON.stringify(path)} is not one`);
    return path.replace(/[A-Z]/g, (char) => `_${char.toLowerCase()}`);
  });
}

/** `['user.display_name', 'price']` → `"user.displayName,price"`. */
export function formatFieldMask(paths: readonly string[]): string {
  return paths.map((path) => path.replace(/_([a-z0-9])/g, (_match, char: string) => char.toUpperCase())).join(',');
}
