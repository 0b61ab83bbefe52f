/**
 * The shadow report of one route: tallies of outcomes, the fields that differ most, the noise learned from a
 * secondary, and a bounded sample of recent mismatches and candidate errors with configured fields redacted.
 * Memory is bounded whatever the traffic: counters, at most `maxFields` field paths, `samples` samples, each
 * with at most `DIFFERENCES_PER_SAMPLE` differences whose values are cut to a preview.
 */
import { covers, generalise, NoiseModel } from '../diff';
import type { Difference } from '../diff';
import { WILDCARD } from '../json-paths';
import type { JsonPath } from '../json-paths';

/** Why a copy was not compared although the request was chosen for shadowing. */
export type SkipReason = 'concurrency' | 'requestTooLarge' | 'requestUnavailable' | 'primaryTooLarge' | 'primaryIncomplete';
/** Why a request was not chosen for shadowing at all. */
export type NotShadowedReason = 'method' | 'sampling';
export type ShadowOutcome = 'match' | 'mismatch' | 'candidateError' | 'skipped';

/** One difference as a sample shows it. */
export interface ShadowDifference {
  /** `status`, `headers.content-type`, `body` (compared by bytes), `body.items[0].price`. */
  path: string;
  kind: Difference['kind'];
  primary?: unknown;
  candidate?: unknown;
}

export interface ShadowSample {
  /** ISO time the comparison ended. */
  time: string;
  requestId: string;
  method: string;
  /** The path shadowed, without its query string (it may carry tokens). */
  path: string;
  outcome: 'mismatch' | 'candidateError';
  status: { primary: number; candidate?: number };
  /** The first differences (mismatch). */
  differences?: ShadowDifference[];
  /** How many differences the sample leaves out. */
  moreDifferences?: number;
  /** The candidate's error code (candidateError): `ERR_UPSTREAM_TIMEOUT`, `ERR_UPSTREAM_UNAVAILABLE`… */
  error?: string;
}

/** What `gw.shadowReport(route)` and the standalone middleware's `report()` return: plain JSON data. */
export interface ShadowReport {
  route: string;
  /** The candidate's targets. */
  candidate: string[];
  /** The secondary's targets (noise detection), or none. */
  secondary: string[];
  /** ISO time the tallies started (construction, or the last reset). */
  since: string;
  /** Requests the route saw, shadowed or not. */
  requests: number;
  /** Copies by outcome: the candidate's answer matched, differed, failed, or was not compared. */
  outcomes: Record<ShadowOutcome, number>;
  /** Why copies were skipped. */
  skipped: Record<SkipReason, number>;
  /** Requests not shadowed by choice: an unsafe method (without `unsafe: true`), or left out by `percent`. */
  notShadowed: Record<NotShadowedReason, number>;
  /** Candidate failures by error code. */
  candidateErrors: Record<string, number>;
  /** Secondary failures (those requests were compared with the noise learned so far). */
  secondaryErrors: number;
  /** Fields (generalised: `body.items[*].price`) that differed in mismatches, most frequent first. */
  fields: Array<{ path: string; count: number }>;
  /** Noise: fields that differed between primary and secondary, and how many candidate differences they hid. */
  noise: { fields: Array<{ path: string; count: number }>; ignoredDifferences: number };
  /** The most recent mismatches and candidate errors, newest last. */
  samples: ShadowSample[];
}

export interface StoreOptions {
  route: string;
  candidate: string[];
  secondary: string[];
  /** Samples kept. */
  samples: number;
  /** Body paths whose values samples never show. */
  redact: readonly JsonPath[];
}

/** Per-sample cap on differences, and on field paths counted per route. */
export const DIFFERENCES_PER_SAMPLE = 10;
const MAX_FIELDS = 200;
/** A value whose JSON is longer is shown as a preview. */
const MAX_VALUE_CHARS = 256;
/** Header values never shown. */
const SECRET_HEADERS = new Set(['headers.set-cookie', 'headers.authorization', 'headers.cookie', 'headers.proxy-authorization', 'headers.www-authenticate', 'headers.x-api-key']);

export class ShadowStore {
  readonly noise = new NoiseModel();
  private since = new Date();
  private requests = 0;
  private outcomes!: Record<ShadowOutcome, number>;
  private skipped!: Record<SkipReason, number>;
  private notShadowed!: Record<NotShadowedReason, number>;
  private candidateErrors = new Map<string, number>();
  private secondaryErrors = 0;
  private fields = new Map<string, number>();
  private ignoredByNoise = 0;
  private samples: ShadowSample[] = [];

  constructor(readonly options: StoreOptions) {
    this.reset();
  }

  seen(): void {
    this.requests += 1;
  }

  notChosen(reason: NotShadowedReason): void {
    this.notShadowed[reason] += 1;
  }

  skip(reason: SkipReason): void {
    this.outcomes.skipped += 1;
    this.skipped[reason] += 1;
  }

  match(): void {
    this.outcomes.match += 1;
  }

  mismatch(sample: Omit<ShadowSample, 'outcome' | 'time' | 'differences' | 'moreDifferences'>, differences: readonly Difference[]): ShadowSample {
    this.outcomes.mismatch += 1;
    const counted = new Set(differences.map((difference) => generalise(difference.path)));
    for (const field of counted) {
      const seen = this.fields.get(field);
      if (seen !== undefined) this.fields.set(field, seen + 1);
      else if (this.fields.size < MAX_FIELDS) this.fields.set(field, 1);
    }
    const shown = differences.slice(0, DIFFERENCES_PER_SAMPLE).map((difference) => this.redacted(difference));
    return this.keep({ ...sample, outcome: 'mismatch', time: new Date().toISOString(), differences: shown, ...(differences.length > shown.length ? { moreDifferences: differences.length - shown.length } : {}) });
  }

  candidateError(sample: Omit<ShadowSample, 'outcome' | 'time'>): ShadowSample {
    this.outcomes.candidateError += 1;
    const code = sample.error ?? 'error';
    this.candidateErrors.set(code, (this.candidateErrors.get(code) ?? 0) + 1);
    return this.keep({ ...sample, outcome: 'candidateError', time: new Date().toISOString() });
  }

  secondaryFailed(): void {
    this.secondaryErrors += 1;
  }

  /** A candidate difference left out as noise. */
  ignoredAsNoise(): void {
    this.ignoredByNoise += 1;
  }

  /** The differences as a sample or log line shows them: redacted, long values cut. */
  redacted(difference: Difference): ShadowDifference {
    const shown: ShadowDifference = { path: difference.path, kind: difference.kind };
    const secret = SECRET_HEADERS.has(difference.path) || (difference.path.startsWith('body') && this.options.redact.some((pattern) => covers(pattern, difference.at)));
    const show = (value: unknown) => (secret ? '[redacted]' : preview(redactWithin(value, difference.at, this.options.redact)));
    if ('primary' in difference) shown.primary = show(difference.primary);
    if ('candidate' in difference) shown.candidate = show(difference.candidate);
    return shown;
  }

  report(): ShadowReport {
    const { route, candidate, secondary } = this.options;
    return {
      route,
      candidate,
      secondary,
      since: this.since.toISOString(),
      requests: this.requests,
      outcomes: { ...this.outcomes },
      skipped: { ...this.skipped },
      notShadowed: { ...this.notShadowed },
      candidateErrors: Object.fromEntries(this.candidateErrors),
      secondaryErrors: this.secondaryErrors,
      fields: [...this.fields].map(([path, count]) => ({ path, count })).sort((a, b) => b.count - a.count || a.path.localeCompare(b.path)),
      noise: { fields: this.noise.list(), ignoredDifferences: this.ignoredByNoise },
      samples: this.samples.map((sample) => ({ ...sample })),
    };
  }

  /** Starts the tallies, samples and learned noise afresh (after a fix to the candidate). */
  reset(): void {
    this.since = new Date();
    this.requests = 0;
    this.outcomes = { match: 0, mismatch: 0, candidateError: 0, skipped: 0 };
    this.skipped = { concurrency: 0, requestTooLarge: 0, requestUnavailable: 0, primaryTooLarge: 0, primaryIncomplete: 0 };
    this.notShadowed = { method: 0, sampling: 0 };
    this.candidateErrors.clear();
    this.secondaryErrors = 0;
    this.fields.clear();
    this.ignoredByNoise = 0;
    this.samples = [];
    this.noise.clear();
  }

  private keep(sample: ShadowSample): ShadowSample {
    if (this.options.samples > 0) {
      this.samples.push(sample);
      if (this.samples.length > this.options.samples) this.samples.shift();
    }
    return sample;
  }
}

/**
 * A copy of `value` (found at `at`) with what the redact patterns reach below it replaced by `[redacted]`; the
 * value itself when none reaches below it. (A pattern reaching `at` itself or above was handled by the caller.)
 */
function redactWithin(value: unknown, at: ReadonlyArray<string | number>, patterns: readonly JsonPath[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  const below = patterns.filter((pattern) => pattern.length > at.length && covers(pattern.slice(0, at.length), at)).map((pattern) => pattern.slice(at.length));
  if (below.length === 0) return value;
  try {
    const copy = structuredClone(value);
    for (const rest of below) redactAt(copy, rest);
    return copy;
  } catch {
    return '[redacted]'; // nested too deeply to copy: shown as nothing rather than unredacted
  }
}

function redactAt(value: unknown, path: JsonPath): void {
  if (path.length === 0 || value === null || typeof value !== 'object') return;
  const [head, ...rest] = path;
  const keys: Array<string | number> = head === WILDCARD ? (Array.isArray(value) ? [...value.keys()] : []) : [head];
  for (const key of keys) {
    const container = value as Record<string | number, unknown>;
    if (!Object.hasOwn(container, key)) continue;
    if (rest.length === 0) container[key] = '[redacted]';
    else redactAt(container[key], rest);
  }
}

/** Values longer than MAX_VALUE_CHARS as JSON are shown as the start of their JSON. */
function preview(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'string' && value.length > MAX_VALUE_CHARS ? `${value.slice(0, MAX_VALUE_CHARS)}…` : value;
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    return '[not serialisable]';
  }
  return json.length > MAX_VALUE_CHARS ? { preview: `${json.slice(0, MAX_VALUE_CHARS)}…`, chars: json.length } : value;
}
