/**
 * rateLimit() and the gateway's `rateLimit` route option refuse unusable options at construction,
 * with a ConfigError that names the option (no Redis connection is made for these).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gateway, rateLimit } from '../../index';
import type { Gateway, RateLimitOptions } from '../../index';
import { expectConfigError } from '../helpers/config';

/** The status a gateway answers for one request, served by a bare http server on a loopback port. */
async function statusOf(gw: Gateway, path: string, method = 'GET'): Promise<number> {
  const server = http.createServer((req, res) => gw(req, res, () => res.end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
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

  it('accepts routes that share a counter name with the same resolved options, and they count together', async () => {
    // '1m' and 60000 are the same window once resolved; the defaults are filled in before comparing.
    const gw = gateway({
      routes: [
        { path: '/a', upstream: 'http://127.0.0.1:9', rateLimit: { limit: 2, name: 'shared', window: '1m' } },
        { path: '/b', upstream: 'http://127.0.0.1:9', rateLimit: { limit: 2, name: 'shared', window: 60_000, key: 'ip' } },
      ],
    });
    try {
      const statuses: number[] = [];
      for (const path of ['/a', '/b', '/a', '/b']) statuses.push(await statusOf(gw, path));
      // Two requests pass the shared counter (then fail upstream: nothing listens on port 9); the rest are limited.
      expect(statuses).toEqual([502, 502, 429, 429]);
    } finally {
      await gw.close();
    }
  });

  it('compares a key function by identity', () => {
    const byTenant = (req: { headers: Record<string, unknown> }) => String(req.headers['x-tenant']);
    const same = gateway({
      routes: [
        { path: '/a', upstream, rateLimit: { name: 'tenant', key: byTenant } },
        { path: '/b', upstream, rateLimit: { name: 'tenant', key: byTenant } },
      ],
    });
    void same.close();
    expectConfigError(
      () =>
        gateway({
          routes: [
            { path: '/a', upstream, rateLimit: { name: 'tenant', key: byTenant } },
            { path: '/b', upstream, rateLimit: { name: 'tenant', key: (req) => String(req.headers['x-tenant']) } },
          ],
        }),
      /"routes\[1\]\.rateLimit"/,
    );
  });

  it('gives unnamed routes on one path with different methods their own counters', async () => {
    const gw = gateway({
      routes: [
        { path: '/orders', methods: ['GET'], upstream: 'http://127.0.0.1:9', rateLimit: { limit: 1 } },
        { path: '/orders', methods: ['POST'], upstream: 'http://127.0.0.1:9', rateLimit: { limit: 1 } },
      ],
    });
    try {
      expect(await statusOf(gw, '/orders', 'GET')).toBe(502);
      expect(await statusOf(gw, '/orders', 'POST')).toBe(502);
      expect(await statusOf(gw, '/orders', 'POST')).toBe(429);
    } finally {
      await gw.close();
    }
  });
});
