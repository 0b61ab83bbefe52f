/**
 * aggregate()'s construction checks: every unusable option is a ConfigError naming its path — unknown call
 * names in `after` and templates, cycles, reserved call names (`errors`), a bad deadline, placeholders in a
 * host, credentials in a URL — so a mistake never surfaces as a request failing later.
 */
import { ConfigError, gateway } from '../../index';
import { aggregate } from '../../middleware/aggregate';
import type { AggregateOptions } from '../../middleware/aggregate';

const URL = 'http://127.0.0.1:4002';

function configError(options: unknown, prefix = ''): ConfigError {
  let middleware: ReturnType<typeof aggregate> | undefined;
  try {
    middleware = aggregate(options as AggregateOptions, prefix);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  void middleware.close();
  throw new Error('expected a ConfigError');
}

describe('aggregate() options', () => {
  it('accepts the mobile home-screen example', async () => {
    const middleware = aggregate({
      calls: {
        profile: { url: 'http://users:4002/users/{consumer.id}' },
        orders: { url: 'http://orders:4001/orders?user={consumer.id}&limit={query.limit}', optional: true, timeout: '300ms' },
        recs: { url: 'http://recs:4003/for/{profile.segment}', after: ['profile'], optional: true },
      },
      deadline: '1s',
      shape: (results) => ({ name: (results.profile as { name: string }).name, orders: results.orders ?? [], recs: results.recs ?? [] }),
    });
    expect(middleware.pools.map((pool) => pool.targets[0].href).sort()).toEqual(['http://orders:4001', 'http://recs:4003', 'http://users:4002']);
    await middleware.close();
  });

  it('shares one pool between calls to the same target', async () => {
    const middleware = aggregate({ calls: { a: { url: `${URL}/a` }, b: { url: `${URL}/b` }, c: { upstream: URL, path: '/c' } } });
    expect(middleware.pools).toHaveLength(1);
    await middleware.close();
  });

  it.each<[string, unknown, RegExp]>([
    ['no options', undefined, /aggregate\(\) needs options/],
    ['no calls', { calls: {} }, /"calls" needs at least one call/],
    ['a call named errors', { calls: { errors: { url: URL } } }, /"calls\.errors": "errors" cannot name a call/],
    ['a call named __proto__-like', { calls: { constructor: { url: URL } } }, /"calls\.constructor".*reserved/],
    ['a call named like a source', { calls: { query: { url: URL } } }, /"calls\.query".*reserved/],
    ['a call name with a dot', { calls: { 'a.b': { url: URL } } }, /"calls\.a\.b": a call name/],
    ['an unknown after', { calls: { profile: { url: URL }, recs: { url: URL, after: ['profle'] } } }, /"calls\.recs\.after\[0\]" names the call "profle", which does not exist\. Did you mean "profile"\?/],
    ['a call after itself', { calls: { a: { url: URL, after: ['a'] } } }, /"calls\.a\.after\[0\]": a call cannot wait for itself/],
    ['a cycle', { calls: { a: { url: URL, after: ['c'] }, b: { url: URL, after: ['a'] }, c: { url: URL, after: ['b'] } } }, /"calls\.a\.after" makes a cycle: a → c → b → a/],
    ['a template reading a call it does not wait for', { calls: { profile: { url: URL }, recs: { url: `${URL}/for/{profile.segment}` } } }, /"calls\.recs" reads the result of "profile".*add after: \['profile'\]/],
    ['an unknown call in a template', { calls: { recs: { url: `${URL}/for/{profil.segment}` }, profile: { url: URL } } }, /"calls\.recs\.url" uses the unknown placeholder \{profil\.segment\}\. Did you mean \{profile\.segment\}\?/],
    ['a bad deadline', { calls: { a: { url: URL } }, deadline: 'soon' }, /"deadline" must be a duration/],
    ['a zero deadline', { calls: { a: { url: URL } }, deadline: 0 }, /"deadline" must be longer than 0 ms/],
    ['a bad timeout', { calls: { a: { url: URL, timeout: -1 } } }, /"calls\.a\.timeout" must be a duration/],
    ['a bad maxBytes', { calls: { a: { url: URL, maxBytes: 'lots' } } }, /"calls\.a\.maxBytes" must be a size/],
    ['a typo in a call', { calls: { a: { url: URL, optinal: true } } }, /"calls\.a\.optinal"\. Did you mean "calls\.a\.optional"\?/],
    ['url and upstream', { calls: { a: { url: URL, upstream: URL } } }, /"calls\.a" has "url" and "upstream"/],
    ['neither url nor upstream', { calls: { a: { optional: true } } }, /"calls\.a" needs "url", or "upstream" and "path"/],
    ['upstream without path', { calls: { a: { upstream: URL } } }, /"calls\.a\.path" is missing/],
    ['a relative url', { calls: { a: { url: '/users/1' } } }, /"calls\.a\.url" must be an absolute http\(s\) URL/],
    ['a placeholder in the host', { calls: { a: { url: 'http://{query.host}:4002/x' } } }, /"calls\.a\.url" has a placeholder in its host/],
    ['credentials in the url', { calls: { a: { url: 'http://user:pw@127.0.0.1:4002/x' } } }, /"calls\.a\.url" must not carry credentials/],
    ['a credential header in a template', { calls: { a: { url: `${URL}/x?t={headers.authorization}` } } }, /"calls\.a" puts the client's authorization header into a URL/],
    ['a named upstream used alone', { calls: { a: { upstream: 'users', path: '/x' } } }, /aggregate\(\) used alone has no named upstreams/],
    ['forwarding a header the gateway sets', { calls: { a: { url: URL, forward: ['host'] } } }, /"calls\.a\.forward" lists "host"/],
    ['too many calls', { calls: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`c${i}`, { url: URL }])) }, /has 33 calls; at most 32/],
    ['a bad maxInFlight', { calls: { a: { url: URL } }, maxInFlight: 0 }, /"maxInFlight" must be a positive integer/],
    ['a shape that is not a function', { calls: { a: { url: URL } }, shape: 'x' }, /"shape" must be a function/],
  ])('refuses %s', (_what, options, message) => {
    expect(configError(options).message).toMatch(message);
  });

  it('names the route option path in a gateway', () => {
    expect(() => gateway({ routes: [{ path: '/home', aggregate: { calls: { errors: { url: URL } } } }] })).toThrow(/routes\[0\]\.aggregate\.calls\.errors/);
    expect(() => gateway({ routes: [{ path: '/home', aggregate: { calls: { a: { url: URL } }, deadline: 'x' } }] })).toThrow(/routes\[0\]\.aggregate\.deadline/);
  });
});
