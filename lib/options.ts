/**
 * Shared option checks: unknown keys are a mistake worth reporting at construction, with the likely
 * intended name ("received an unsupported option `targts`. Did you mean `targets`?").
 */
import { ConfigError } from './errors';

/** Throws a ConfigError for any key of `options` not in `known`, suggesting the closest known name. */
export function assertKnownKeys(options: object, known: readonly string[], prefix = ''): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const suggestion = closest(key, known);
    throw new ConfigError(`received an unsupported option "${prefix}${key}".${suggestion ? ` Did you mean "${prefix}${suggestion}"?` : ` Supported: ${known.join(', ')}.`}`);
  }
}

/** The candidate closest to `word` (edit distance), when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = levenshtein(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      bestDistance = distance;
      best = candidate;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}
