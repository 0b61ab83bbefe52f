import type { IncomingMessage } from 'node:http';
import type { ConfigError } from '../../lib/errors';
import { UpstreamOptions, UpstreamPool, UpstreamTarget } from '../../lib/upstream-pool';
import { configError as thrownConfigError } from '../helpers/config';

const A = 'http://127.0.0.1:4001';
const B = 'http://127.0.0.1:4002';
const C = 'http://127.0.0.1:4003';

/** The pool only reads headers from the request. */
function req(headers: Record<string, string> = {}): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

const pools: UpstreamPool[] = [];
function pool(options: UpstreamOptions, prefix?: string): UpstreamPool {
  const created = new UpstreamPool(options, prefix);
  pools.push(created);
  return created;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

/** The ConfigError a pool of `options` throws. */
const configError = (options: UpstreamOptions, prefix?: string): ConfigError => thrownConfigError(() => pool(options, prefix));

describe('UpstreamPool configuration errors name the option', () => {
  it('missing target', () => {
    expect(configError({}).message).toMatch(/"target"/);
    expect(configError({ targets: [] }).message).toMatch(/"target"/);
  });

  it('both target and targets', () => {
    const message = configError({ target: A, targets: [B] }).message;
    expect(message).toContain('"target"');
    expect(message).toContain('"targets"');
  });

  it('a URL that is not absolute, or not http(s)', () => {
    expect(configError({ target: 'not a url' }).message).toContain('"target"');
    expect(configError({ targets: [A, '127.0.0.1:4002'] }).message).toContain('"targets[1]"');
    expect(configError({ targets: [A, { url: 'ftp://127.0.0.1/' }] }).message).toContain('"targets[1]"');
  });

  it.each([0, -1, Number.NaN])('weight %p', (weight) => {
    expect(configError({ targets: [{ url: A, weight }, B] }).message).toContain('"targets[0].weight"');
  });

  it('mixed http and https targets', () => {
    expect(configError({ targets: [A, 'https://127.0.0.1:4443'] }).message).toContain('"targets"');
  });

  it('tls on http targets', () => {
    expect(configError({ target: A, tls: { rejectUnauthorized: false } }).message).toContain('"tls"');
  });

  it('sticky with neither header nor cookie', () => {
    expect(configError({ targets: [A, B], sticky: {} }).message).toContain('"sticky"');
  });

  it('prefixes the option path given by the caller (e.g. a gateway route)', () => {
    expect(configError({ targets: [A, { url: B, weight: 0 }] }, 'routes[2].upstream.').message).toContain('"routes[2].upstream.targets[1].weight"');
    expect(configError({ targets: [A, B], sticky: {} }, 'routes[0].upstream.').message).toContain('"routes[0].upstream.sticky"');
  });

  it('accepts a valid configuration', () => {
    const p = pool({ targets: [A, { url: B, weight: 3 }] });
    expect(p.targets.map((t) => [t.href, t.weight, t.state])).toEqual([
      [A, 1, 'healthy'],
      [B, 3, 'healthy'],
    ]);
  });
});

describe('UpstreamPool passive health', () => {
  const T0 = 1_700_000_000_000;
  beforeEach(() => {
    // Only the clock is faked: ejection and cooldowns are computed from Date.now().
    jest.useFakeTimers({ now: T0, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'] });
  });
  afterEach(() => {
    jest.useRealTimers();
  });
  const advance = (ms: number) => jest.setSystemTime(Date.now() + ms);

  function recordEvents(p: UpstreamPool) {
    const events: Array<[string, string, number?]> = [];
    p.on('eject', (target, cooldown) => events.push(['eject', target.href, cooldown]));
    p.on('recover', (target) => events.push(['recover', target.href]));
    return events;
  }

  it('ejects a target after N consecutive failures and stops picking it', () => {
    const p = pool({ targets: [A, B], health: { passive: { failures: 3, cooldown: 1000 } } });
    const events = recordEvents(p);
    const [a] = p.targets;
    expect(p.reportFailure(a)).toBe(false);
    expect(p.reportFailure(a)).toBe(false);
    expect(a.state).toBe('healthy');
    expect(p.reportFailure(a)).toBe(true);
    expect(a.state).toBe('ejected');
    expect(a.ejectedUntil).toBe(T0 + 1000);
    expect(events).toEqual([['eject', A, 1000]]);
    for (let i = 0; i < 10; i++) expect(p.pick(req())?.href).toBe(B);
  });

  it('a success resets the failure count', () => {
    const p = pool({ targets: [A, B], health: { passive: { failures: 3 } } });
    const [a] = p.targets;
    p.reportFailure(a);
    p.reportFailure(a);
    p.reportSuccess(a);
    expect(a.failures).toBe(0);
    p.reportFailure(a);
    p.reportFailure(a);
    expect(a.state).toBe('healthy');
    expect(p.reportFailure(a)).toBe(true);
    expect(a.state).toBe('ejected');
  });

  it('lets exactly one trial through after the cooldown; a failed trial ejects again for twice as long, capped by maxCooldown', () => {
    const p = pool({ target: A, health: { passive: { failures: 1, cooldown: 100, maxCooldown: 350 } } });
    const events = recordEvents(p);
    const [a] = p.targets;
    const cooldowns: number[] = [];

    p.reportFailure(a);
    for (let round = 0; round < 4; round++) {
      const cooldown = a.ejectedUntil - Date.now();
      cooldowns.push(cooldown);
      advance(cooldown - 1);
      expect(p.pick(req())).toBeUndefined(); // still cooling down
      advance(1);
      const trial = p.pick(req());
      expect(trial).toBe(a);
      // One trial at a time: while it is in flight nothing else goes to the target.
      expect(p.pick(req())).toBeUndefined();
      expect(p.pick(req())).toBeUndefined();
      expect(p.reportFailure(a)).toBe(true);
      expect(a.state).toBe('ejected');
    }
    cooldowns.push(a.ejectedUntil - Date.now());
    expect(cooldowns).toEqual([100, 200, 350, 350, 350]);
    expect(events.map(([, , ms]) => ms)).toEqual([100, 200, 350, 350, 350]);
  });

  it('a successful trial makes the target healthy again and resets the cooldown growth', () => {
    const p = pool({ targets: [A, B], health: { passive: { failures: 2, cooldown: 100 } } });
    const events = recordEvents(p);
    const [a] = p.targets;
    p.reportFailure(a);
    p.reportFailure(a);
    advance(100);
    // Round-robin over A (trial) and B: the trial is handed out once.
    const picks = Array.from({ length: 6 }, () => p.pick(req())?.href);
    expect(picks.filter((href) => href === A)).toHaveLength(1);
    expect(p.reportFailure(a)).toBe(true);
    expect(a.ejectedUntil - Date.now()).toBe(200);
    advance(200);
    expect(p.pick(req(), new Set([p.targets[1]]))).toBe(a);
    p.reportSuccess(a);
    expect(a.state).toBe('healthy');
    expect(a.ejections).toBe(0);
    expect(events).toEqual([
      ['eject', A, 100],
      ['eject', A, 200],
      ['recover', A],
    ]);
    // Healthy again: it is back in the rotation, and a new outage starts from the base cooldown.
    const after = Array.from({ length: 4 }, () => p.pick(req())?.href);
    expect(after.filter((href) => href === A)).toHaveLength(2);
    p.reportFailure(a);
    p.reportFailure(a);
    expect(a.ejectedUntil - Date.now()).toBe(100);
  });

  it('a trial that ends without a verdict (client gone) frees the slot for another trial', () => {
    const p = pool({ target: A, health: { passive: { failures: 1, cooldown: 100 } } });
    const [a] = p.targets;
    p.reportFailure(a);
    advance(100);
    expect(p.pick(req())).toBe(a);
    expect(p.pick(req())).toBeUndefined();
    p.release(a);
    expect(p.pick(req())).toBe(a);
  });

  it('failures of requests sent before the ejection do not extend the cooldown (one outage → base cooldown)', () => {
    const p = pool({ targets: [A, B], health: { passive: { failures: 2, cooldown: 100, maxCooldown: 10_000 } } });
    const events = recordEvents(p);
    const [a] = p.targets;
    // Ten requests were picked while A was healthy (five went to A); A goes down and all five fail.
    const inFlight = Array.from({ length: 10 }, () => p.pick(req())!).filter((t) => t === a);
    expect(inFlight).toHaveLength(5);
    for (const target of inFlight) p.reportFailure(target);
    expect(a.state).toBe('ejected');
    expect(events.filter(([type]) => type === 'eject')).toEqual([['eject', A, 100]]);
    expect(a.ejectedUntil - Date.now()).toBe(100);
  });

  it('a late failure of a request sent before the ejection, arriving during the trial, is not the trial’s verdict', () => {
    const p = pool({ target: A, health: { passive: { failures: 1, cooldown: 100, maxCooldown: 10_000 } } });
    const [a] = p.targets;
    const early = p.pick(req())!; // sent while A was healthy
    const trialOfEarly = early.state === 'ejected';
    p.reportFailure(a, false); // another request's failure ejects A
    advance(100);
    const trial = p.pick(req())!;
    expect(trial).toBe(a);
    expect(trial.state).toBe('ejected');
    // The early request fails now (a long timeout): neither a re-ejection nor a freed trial slot.
    expect(p.reportFailure(early, trialOfEarly)).toBe(false);
    expect(p.pick(req())).toBeUndefined();
    p.release(early, trialOfEarly);
    expect(p.pick(req())).toBeUndefined();
    // The trial's own failure ejects again, for twice as long.
    expect(p.reportFailure(a, true)).toBe(true);
    expect(a.ejectedUntil - Date.now()).toBe(200);
  });

  it('passive: false never ejects', () => {
    const p = pool({ targets: [A, B], health: { passive: false } });
    const [a] = p.targets;
    for (let i = 0; i < 50; i++) expect(p.reportFailure(a)).toBe(false);
    expect(a.state).toBe('healthy');
    const picks = Array.from({ length: 10 }, () => p.pick(req())?.href);
    expect(picks.filter((href) => href === A)).toHaveLength(5);
  });

  it('uses the defaults: 3 failures and a 10 s cooldown', () => {
    const p = pool({ targets: [A, B] });
    const [a] = p.targets;
    p.reportFailure(a);
    p.reportFailure(a);
    expect(a.state).toBe('healthy');
    p.reportFailure(a);
    expect(a.state).toBe('ejected');
    expect(a.ejectedUntil - Date.now()).toBe(10_000);
  });

  it('retryAfterSeconds is the time until the soonest ejected target may be tried, rounded up, at least 1', () => {
    const p = pool({ targets: [A, B], health: { passive: { failures: 1, cooldown: 2500 } } });
    const [a, b] = p.targets;
    p.reportFailure(a);
    expect(p.retryAfterSeconds()).toBe(3);
    advance(1000);
    p.reportFailure(b); // B ejected later, so it becomes free later than A
    expect(p.retryAfterSeconds()).toBe(2); // A: 1500 ms left
    advance(1400);
    expect(p.retryAfterSeconds()).toBe(1); // A: 100 ms left
    advance(500);
    expect(p.retryAfterSeconds()).toBe(1); // A's cooldown is over: never 0 or negative
  });

  it('retryAfterSeconds follows the grown cooldown', () => {
    const p = pool({ target: A, health: { passive: { failures: 1, cooldown: '4s', maxCooldown: '1m' } } });
    const [a] = p.targets;
    p.reportFailure(a);
    expect(p.retryAfterSeconds()).toBe(4);
    advance(4000);
    p.pick(req());
    p.reportFailure(a);
    expect(p.retryAfterSeconds()).toBe(8);
  });
});

describe('UpstreamPool.pick', () => {
  it('skips excluded targets and returns undefined when all are excluded', () => {
    const p = pool({ targets: [A, B, C] });
    const [a, b, c] = p.targets;
    const exclude = new Set<UpstreamTarget>([a]);
    const picks = Array.from({ length: 10 }, () => p.pick(req(), exclude)?.href);
    expect(picks).not.toContain(A);
    expect(new Set(picks)).toEqual(new Set([B, C]));
    expect(p.pick(req(), new Set([a, b]))).toBe(c);
    expect(p.pick(req(), new Set([a, b, c]))).toBeUndefined();
  });

  it('round-robins over equal targets', () => {
    const p = pool({ targets: [A, B, C] });
    const picks = Array.from({ length: 9 }, () => p.pick(req())?.href);
    expect(picks.filter((h) => h === A)).toHaveLength(3);
    expect(picks.filter((h) => h === B)).toHaveLength(3);
    expect(picks.filter((h) => h === C)).toHaveLength(3);
  });

  it('sticky by header (case-insensitive name) and by cookie: the same key keeps its target', () => {
    const byHeader = pool({ targets: [A, B, C], sticky: { header: 'X-Session' } });
    const byCookie = pool({ targets: [A, B, C], sticky: { cookie: 'sid' } });
    const seenHeader = new Set<string>();
    const seenCookie = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const key = `user-${i}`;
      const first = byHeader.pick(req({ 'x-session': key }));
      for (let j = 0; j < 3; j++) expect(byHeader.pick(req({ 'x-session': key }))).toBe(first);
      seenHeader.add(first!.href);
      const cookie = `theme=dark; sid=${key}; lang=en`;
      const firstCookie = byCookie.pick(req({ cookie }));
      for (let j = 0; j < 3; j++) expect(byCookie.pick(req({ cookie: `sid=${key}` }))).toBe(firstCookie);
      seenCookie.add(firstCookie!.href);
    }
    // Different keys reach every target.
    expect(seenHeader.size).toBe(3);
    expect(seenCookie.size).toBe(3);
  });

  it('a sticky key moves while its target is ejected and comes back after it recovers', () => {
    const p = pool({ targets: [A, B, C], sticky: { header: 'x-session' }, health: { passive: { failures: 1, cooldown: 60_000 } } });
    const key = { 'x-session': 'cart-42' };
    const home = p.pick(req(key))!;
    p.reportFailure(home);
    const elsewhere = p.pick(req(key))!;
    expect(elsewhere).not.toBe(home);
    expect(p.pick(req(key))).toBe(elsewhere);
    p.reportSuccess(home); // e.g. a late success proves it is back
    expect(p.pick(req(key))).toBe(home);
  });

  it('without a sticky key, requests are balanced normally', () => {
    const p = pool({ targets: [A, B], sticky: { cookie: 'sid' } });
    const picks = Array.from({ length: 10 }, () => p.pick(req({ cookie: 'other=1' }))?.href);
    expect(picks.filter((h) => h === A)).toHaveLength(5);
  });

  it('close() marks the pool closed, so observers stop reporting it', async () => {
    const p = pool({ target: A });
    expect(p.isClosed).toBe(false);
    await p.close();
    expect(p.isClosed).toBe(true);
  });
});
