import { pickRoundRobin, pickSticky, Weighted } from '../../lib/balancer';

function targets(weights: Record<string, number>): Weighted[] {
  return Object.entries(weights).map(([href, weight]) => ({ href, weight, currentWeight: 0 }));
}

function countPicks(candidates: Weighted[], picks: number): Map<string, number> {
  const counts = new Map<string, number>(candidates.map((c) => [c.href, 0]));
  for (let i = 0; i < picks; i++) {
    const chosen = pickRoundRobin(candidates);
    counts.set(chosen.href, (counts.get(chosen.href) ?? 0) + 1);
  }
  return counts;
}

describe('pickRoundRobin (smooth weighted round-robin)', () => {
  it('gives each target exactly its weight share over whole cycles (5:1:1 over 7·N picks)', () => {
    const candidates = targets({ a: 5, b: 1, c: 1 });
    const counts = countPicks(candidates, 7 * 100);
    expect(Object.fromEntries(counts)).toEqual({ a: 500, b: 100, c: 100 });
  });

  it('is plain round-robin for equal weights: every window of 3 picks visits all 3 targets', () => {
    const candidates = targets({ a: 1, b: 1, c: 1 });
    const sequence = Array.from({ length: 30 }, () => pickRoundRobin(candidates).href);
    for (let i = 0; i < sequence.length; i += 3) {
      expect(new Set(sequence.slice(i, i + 3))).toEqual(new Set(['a', 'b', 'c']));
    }
  });

  it('interleaves a heavy target with light ones instead of sending it a burst (5:1:1 → a a b a c a a)', () => {
    const candidates = targets({ a: 5, b: 1, c: 1 });
    const sequence = Array.from({ length: 14 }, () => pickRoundRobin(candidates).href);
    // nginx's documented sequence for weights 5,1,1, repeated.
    expect(sequence.join(' ')).toBe('a a b a c a a a a b a c a a');
    // The light targets are never picked twice in a row and the heavy one never runs more than its share.
    let longestRun = 0;
    let run = 0;
    for (let i = 0; i < sequence.length; i++) {
      run = i > 0 && sequence[i] === sequence[i - 1] ? run + 1 : 1;
      longestRun = Math.max(longestRun, run);
    }
    expect(longestRun).toBeLessThanOrEqual(4);
  });

  it('keeps exact proportions for a 95:5 canary over 2 000 picks', () => {
    const counts = countPicks(targets({ stable: 95, canary: 5 }), 2000);
    expect(counts.get('stable')).toBe(1900);
    expect(counts.get('canary')).toBe(100);
  });

  it('spreads the canary evenly: each block of 20 picks holds exactly one canary pick', () => {
    const candidates = targets({ stable: 95, canary: 5 });
    for (let block = 0; block < 10; block++) {
      const picks = Array.from({ length: 20 }, () => pickRoundRobin(candidates).href);
      expect(picks.filter((href) => href === 'canary')).toHaveLength(1);
    }
  });

  it('rebalances over whatever subset is passed (a target left out gets nothing, the rest stay proportional)', () => {
    const all = targets({ a: 2, b: 1, c: 1 });
    const withoutC = all.filter((t) => t.href !== 'c');
    const counts = countPicks(withoutC, 300);
    expect(Object.fromEntries(counts)).toEqual({ a: 200, b: 100 });
  });

  it('returns the only candidate when there is one', () => {
    const [only] = targets({ solo: 3 });
    for (let i = 0; i < 5; i++) expect(pickRoundRobin([only])).toBe(only);
  });
});

describe('pickSticky (weighted rendezvous hashing)', () => {
  const keys = Array.from({ length: 3000 }, (_, i) => `session-${i}`);

  it('sends the same key to the same target every time', () => {
    const candidates = targets({ 'http://10.0.0.1:4001': 1, 'http://10.0.0.2:4001': 1, 'http://10.0.0.3:4001': 1 });
    for (const key of keys.slice(0, 200)) {
      const first = pickSticky(candidates, key);
      for (let i = 0; i < 3; i++) expect(pickSticky(candidates, key)).toBe(first);
    }
  });

  it('does not depend on candidate order', () => {
    const candidates = targets({ 'http://10.0.0.1:4001': 1, 'http://10.0.0.2:4001': 1, 'http://10.0.0.3:4001': 1 });
    const reversed = [...candidates].reverse();
    for (const key of keys.slice(0, 300)) expect(pickSticky(reversed, key)).toBe(pickSticky(candidates, key));
  });

  it('spreads keys roughly evenly over equal-weight targets', () => {
    const candidates = targets({ 'http://10.0.0.1:4001': 1, 'http://10.0.0.2:4001': 1, 'http://10.0.0.3:4001': 1 });
    const counts = new Map<string, number>();
    for (const key of keys) {
      const href = pickSticky(candidates, key).href;
      counts.set(href, (counts.get(href) ?? 0) + 1);
    }
    expect(counts.size).toBe(3);
    // Expected 1000 each; a fair hash stays well within ±15 %.
    for (const count of counts.values()) {
      expect(count).toBeGreaterThan(850);
      expect(count).toBeLessThan(1150);
    }
  });

  it('honours weights: a weight-3 target gets about three times the keys of a weight-1 target', () => {
    const candidates = targets({ 'http://10.0.0.1:4001': 3, 'http://10.0.0.2:4001': 1 });
    const heavy = keys.filter((key) => pickSticky(candidates, key).href === 'http://10.0.0.1:4001').length;
    // Expected 75 % of 3000 = 2250.
    expect(heavy).toBeGreaterThan(2100);
    expect(heavy).toBeLessThan(2400);
  });

  it('removing one candidate moves only the keys that were on it', () => {
    const candidates = targets({ 'http://10.0.0.1:4001': 1, 'http://10.0.0.2:4001': 1, 'http://10.0.0.3:4001': 1, 'http://10.0.0.4:4001': 1 });
    const removed = candidates[1];
    const remaining = candidates.filter((c) => c !== removed);
    let movedFromRemoved = 0;
    for (const key of keys) {
      const before = pickSticky(candidates, key);
      const after = pickSticky(remaining, key);
      if (before === removed) {
        movedFromRemoved += 1;
        expect(after).not.toBe(removed);
      } else {
        expect(after).toBe(before);
      }
    }
    // The removed target did hold a real share of keys, and they were spread over the others.
    expect(movedFromRemoved).toBeGreaterThan(keys.length / 8);
  });

  it('spreads the keys of a removed candidate over all the remaining ones', () => {
    const candidates = targets({ 'http://10.0.0.1:4001': 1, 'http://10.0.0.2:4001': 1, 'http://10.0.0.3:4001': 1, 'http://10.0.0.4:4001': 1 });
    const removed = candidates[0];
    const remaining = candidates.slice(1);
    const destinations = new Map<string, number>();
    for (const key of keys) {
      if (pickSticky(candidates, key) !== removed) continue;
      const href = pickSticky(remaining, key).href;
      destinations.set(href, (destinations.get(href) ?? 0) + 1);
    }
    expect(destinations.size).toBe(3);
    for (const count of destinations.values()) expect(count).toBeGreaterThan(150);
  });
});
