/**
 * Target selection: smooth weighted round-robin (nginx's algorithm: exact proportions, evenly spread,
 * plain round-robin when weights are equal) and weighted rendezvous hashing for sticky keys (a key
 * keeps its target while that target is up, and only the keys of a failed target move).
 */

export interface Weighted {
  readonly weight: number;
  readonly href: string;
  /** Running score of smooth weighted round-robin; owned by the balancer. */
  currentWeight: number;
}

/** Picks the next of `candidates` by smooth weighted round-robin. `candidates` must not be empty. */
export function pickRoundRobin<T extends Weighted>(candidates: readonly T[]): T {
  if (candidates.length === 1) return candidates[0];
  let total = 0;
  let best = candidates[0];
  for (const candidate of candidates) {
    candidate.currentWeight += candidate.weight;
    total += candidate.weight;
    if (candidate.currentWeight > best.currentWeight) best = candidate;
  }
  best.currentWeight -= total;
  return best;
}

/** Picks the candidate with the highest weighted rendezvous score for `key`. */
export function pickSticky<T extends Weighted>(candidates: readonly T[], key: string): T {
  let best = candidates[0];
  let bestScore = -Infinity;
  for (const candidate of candidates) {
    // Uniform hash in (0,1); -w/ln(u) is the standard weighted rendezvous score.
    const unit = (fnv1a(key + '\u0000' + candidate.href) + 0.5) / 4294967296;
    const score = -candidate.weight / Math.log(unit);
    if (score > bestScore) {
      bestScore = score;
      best = candidate;
    }
  }
  return best;
}

/** 32-bit FNV-1a with a final avalanche (murmur3 fmix32), so similar keys spread evenly. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
