/**
 * rateLimit() and the gateway's `rateLimit` route option refuse unusable options at construction,
 * with a ConfigError that names the option (no Redis connection is made for these).
 */
import { ConfigError, gateway, rateLimit } from '../../index';
import type { RateLimitOptions } from '../../index';

/** Expects `build` to throw a ConfigError whose message matches every pattern. */
function expectConfigError(build: () => unknown, ...patterns: RegExp[]): void {
  let thrown: unknown;
  try {
    build();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  for (const pattern of patterns) expect((thrown as Error).message).toMatch(pattern);
}

describe('rateLimit() option checks', () => {
  it('names an unknown option and suggests the likely one', () => {
    expectConfigError(() => rateLimit({ limt: 5 } as RateLimitOptions), /"limt"/, /Did you mean "limit"/);
    expectConfigError(() => rateLimit({ legacyHeader: true } as RateLimitOptions), /"legacyHeader"/, /Did you mean "legacyHeaders"/);
  });

  it.each([0, -1, 1.5, '10', NaN])('refuses limit %p, naming "limit"', (limit) => {
    expectConfigError(() => rateLimit({ limit } as RateLimitOptions), /"limit"/);
  });

  it.each(['500ms', 999, 'soon', -1000])('refuses window %p (under 1s or not a duration), naming "window"', (window) => {
    expectConfigError(() => rateLimit({ window }), /"window"/);
  });

  it('accepts a window of exactly 1s and common duration spellings', () => {
    for (const window of [1000, '1s', '1m', '1h']) expect(() => rateLimit({ window })).not.toThrow();
  });

  it('names the tier whose limit is unusable, and an unusable default', () => {
    expectConfigError(() => rateLimit({ tiers: { free: 10, gold: 0 } }), /"tiers\.gold"/);
    expectConfigError(() => rateLimit({ tiers: { free: -5 } }), /"tiers\.free"/);
    expectConfigError(() => rateLimit({ tiers: { free: 10 }, default: 0 }), /"default"/);
  });

  it('refuses an unknown key, onStoreError, ipv6Subnet or an empty name', () => {
    expectConfigError(() => rateLimit({ key: 'user' as 'ip' }), /"key"/);
    expectConfigError(() => rateLimit({ onStoreError: 'ignore' as 'allow' }), /"onStoreError"/);
    expectConfigError(() => rateLimit({ ipv6Subnet: 0 }), /"ipv6Subnet"/);
    expectConfigError(() => rateLimit({ ipv6Subnet: 129 }), /"ipv6Subnet"/);
    expectConfigError(() => rateLimit({ name: '' }), /"name"/);
  });

  it('requires a name with redis, and a usable redis value', () => {
    expectConfigError(() => rateLimit({ redis: 'redis://127.0.0.1:6379' }), /"name"/, /"redis"/);
    expectConfigError(() => rateLimit({ redis: 'http://127.0.0.1:6379', name: 'api' }), /"redis"/);
    expectConfigError(() => rateLimit({ redis: {} as unknown as string, name: 'api' }), /"redis"/);
    expectConfigError(() => rateLimit({ redis: 'redis://127.0.0.1:6379', name: 'api', storeTimeout: 'later' }), /"storeTimeout"/);
  });

  it('refuses options that are not an object', () => {
    expectConfigError(() => rateLimit('100/min' as unknown as RateLimitOptions), /rateLimit\(\)/);
  });
});

describe('gateway rateLimit route option checks', () => {
  const upstream = 'http://127.0.0.1:9';

  it('names the route and option in errors', () => {
    expectConfigError(
      () => gateway({ routes: [{ path: '/a', upstream }, { path: '/b', upstream, rateLimit: { limt: 5 } as RateLimitOptions }] }),
      /"routes\[1\]\.rateLimit\.limt"/,
      /Did you mean "routes\[1\]\.rateLimit\.limit"/,
    );
    expectConfigError(() => gateway({ routes: [{ path: '/a', upstream, rateLimit: { window: '10ms' } }] }), /"routes\[0\]\.rateLimit\.window"/);
    expectConfigError(() => gateway({ routes: [{ path: '/a', upstream, rateLimit: { tiers: { free: 0 } } }] }), /"routes\[0\]\.rateLimit\.tiers\.free"/);
  });

  it('refuses routes that share a counter name with different options', () => {
    expectConfigError(
      () =>
        gateway({
          routes: [
            { path: '/a', upstream, rateLimit: { limit: 5, name: 'shared' } },
            { path: '/b', upstream, rateLimit: { limit: 10, name: 'shared' } },
          ],
        }),
      /"routes\[1\]\.rateLimit"/,
      /"shared"/,
    );
  });

  it('accepts routes that share a counter name with the same options', async () => {
    const gw = gateway({
      routes: [
        { path: '/a', upstream, rateLimit: { limit: 5, name: 'shared' } },
        { path: '/b', upstream, rateLimit: { limit: 5, name: 'shared' } },
      ],
    });
    await gw.close();
  });
});
