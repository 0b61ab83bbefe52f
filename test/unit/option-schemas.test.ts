/**
 * Each middleware declares its options once, as a zod schema: every mistake is reported at once with its
 * option path, unknown keys (nested ones too) get a did-you-mean, durations resolve to ms, and `onError`
 * is checked by every middleware.
 */
import express from 'express';
import request from 'supertest';
import { accessLog, authenticate, authorize, gateway, ipFilter, metrics, rateLimit, trace } from '../../index';
import type { RateLimitOptions } from '../../index';
import { parseOptions } from '../../lib/schema';
import { rateLimitSchema } from '../../middleware/rate-limit';
import { configError } from '../helpers/config';

const secret = 'an-hmac-secret-of-at-least-32-bytes!!';

describe('option schemas', () => {
  it('report every mistake at once, each with its option path', () => {
    const err = configError(() => rateLimit({ limit: 0, window: 'soon' }));
    expect(err.issues).toHaveLength(2);
    expect(err.issues.map((issue) => issue.path)).toEqual(['limit', 'window']);
    expect(err.issues[0].message).toBe('"limit" must be a positive integer; received 0.');
    expect(err.issues[1].message).toMatch(/^"window" must be a duration/);
    expect(err.message).toContain('"limit" must be a positive integer');
    expect(err.message).toContain('"window" must be a duration');

    // In a route table, with the route's path in front; a mistake in a sub-object alongside one at the top.
    const route = configError(() => gateway({ routes: [{ path: '/a', upstream: 'http://127.0.0.1:9', auth: { jwt: { secret, algorithms: ['HS256'], clockTolerance: 'later' }, optional: 'yes' as never } }] }));
    expect(route.issues.map((issue) => issue.path)).toEqual(['routes[0].auth.jwt.clockTolerance', 'routes[0].auth.optional']);
  });

  it('suggest the intended name for a typo inside a sub-object (jwt.algoritms)', () => {
    const err = configError(() => authenticate({ jwt: { secret, algoritms: ['HS256'] } as never }));
    expect(err.message).toContain('received an unsupported option "jwt.algoritms". Did you mean "jwt.algorithms"?');
    // …and that the real option is then missing.
    expect(err.issues.map((issue) => issue.path).sort()).toEqual(['jwt.algorithms', 'jwt.algoritms']);

    const routed = configError(() => gateway({ routes: [{ path: '/a', upstream: 'http://127.0.0.1:9', auth: { jwt: { secret, algorithms: ['HS256'], audiance: 'orders' } as never } }] }));
    expect(routed.message).toContain('Did you mean "routes[0].auth.jwt.audience"?');
  });

  it('resolve a duration string to ms: a window of "1m" is a 60-second window', async () => {
    expect(parseOptions(rateLimitSchema(), { window: '1m' }).window).toBe(60_000);
    expect(parseOptions(rateLimitSchema(), {}).window).toBe(60_000);
    expect(parseOptions(rateLimitSchema(), { window: '90s' }).window).toBe(90_000);

    const app = express();
    const limiter = rateLimit({ limit: 5, window: '1m' });
    app.use(limiter, (_req, res) => {
      res.send('ok');
    });
    try {
      const res = await request(app).get('/').expect(200);
      expect(String(res.headers['ratelimit-policy'])).toMatch(/;\s*q=5;\s*w=60(;|$)/);
    } finally {
      await limiter.close();
    }
  });

  it.each<[string, () => unknown]>([
    ['ipFilter', () => ipFilter({ allow: ['10.0.0.0/8'], onError: 'maybe' as never })],
    ['authorize', () => authorize({ scopes: ['orders:read'], onError: 'maybe' as never })],
    ['rateLimit', () => rateLimit({ onError: 'maybe' as never })],
    ['authenticate', () => authenticate({ jwt: { secret, algorithms: ['HS256'] }, onError: 'maybe' as never })],
    ['trace', () => trace({ onError: 'maybe' } as never)],
    ['metrics', () => metrics({ onError: 'maybe' } as never)],
    ['accessLog', () => accessLog({ onError: 'maybe' } as never)],
  ])('%s() checks onError', (_name, build) => {
    const err = configError(build);
    expect(err.issues.map((issue) => issue.path)).toEqual(['onError']);
    expect(err.message).toContain('"onError"');
  });

  it('accept onError: "next" and "respond" where the middleware answers errors', () => {
    for (const onError of ['respond', 'next'] as const) {
      expect(() => ipFilter({ deny: ['10.0.0.0/8'], onError })).not.toThrow();
      expect(() => authorize({ tiers: ['gold'], onError })).not.toThrow();
      expect(() => authenticate({ jwt: { secret, algorithms: ['HS256'] }, onError })).not.toThrow();
      void rateLimit({ onError } as RateLimitOptions).close();
    }
  });

  it('name gateway-level options (trace, metrics, accessLog) with their gateway option', () => {
    expect(configError(() => gateway({ trace: { clientAttributes: 'no' as never }, routes: [] })).issues[0].path).toBe('trace.clientAttributes');
    expect(configError(() => gateway({ metrics: { consumerLabels: true } as never, routes: [] })).message).toContain('Did you mean "metrics.consumerLabel"?');
    expect(configError(() => gateway({ accessLog: { level: 'loud' as never }, routes: [] })).issues[0].path).toBe('accessLog.level');
  });

  it('never put an API key in a message: entries of apiKey.keys are named by position', () => {
    const key = 'a-secret-api-key-9f8e7d6c5b4a';
    const err = configError(() => authenticate({ apiKey: { keys: { [key]: { id: 'acme', scope: ['orders:read'] } as never } } }));
    expect(err.message).toContain('"apiKey.keys" entry #1: received an unsupported option "scope". Did you mean "scopes"?');
    expect(err.message).not.toContain(key);
  });
});
