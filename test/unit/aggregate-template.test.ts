/**
 * URL templates of aggregated calls: parsed at construction (unknown placeholders and malformed text are
 * ConfigErrors naming the option), filled at request time with every value encoded for its place, so no value
 * can add a segment, a query parameter, a fragment or a dot segment.
 */
import { ConfigError } from '../../lib/errors';
import { compileTemplate, renderTemplate, valueAt } from '../../lib/aggregate/template';
import type { Source } from '../../lib/aggregate/template';

const values: Record<string, unknown> = { 'params.id': '7', 'query.limit': '10', 'headers.accept-language': 'fr', 'consumer.id': 'alice', 'consumer.tier': 'gold' };
const lookupFrom = (extra: Record<string, unknown> = {}) => (source: Source) => {
  const key = source.from === 'call' ? `${source.call}.${source.path.join('.')}` : `${source.from}.${source.key}`;
  return { ...values, ...extra }[key];
};
const render = (text: string, extra: Record<string, unknown> = {}, calls: string[] = ['profile']) => renderTemplate(compileTemplate(text, 'calls.x.url', calls), lookupFrom(extra));

describe('compileTemplate', () => {
  it('reads the sources and the calls a template uses', () => {
    const template = compileTemplate('/users/{params.id}/for/{profile.segment.name}?limit={query.limit}&lang={headers.Accept-Language}', 'opt', ['profile']);
    expect(template.calls).toEqual(['profile']);
    expect(template.path.filter((part) => typeof part !== 'string').map((part) => (part as { source: Source }).source)).toEqual([
      { from: 'params', key: 'id' },
      { from: 'call', call: 'profile', path: ['segment', 'name'] },
    ]);
    // Header names are matched case-insensitively, as Node lower-cases them.
    expect(template.query?.some((part) => typeof part !== 'string' && part.source.from === 'headers' && part.source.key === 'accept-language')).toBe(true);
  });

  it.each([
    ['users/{params.id}', /must be a path starting with "\/"/],
    ['/users/{params.id', /without its "}"/],
    ['/users/{profle.name}', /unknown placeholder \{profle\.name\}\. Did you mean \{profile\.name\}\?/],
    ['/users/{consumer.email}', /unknown placeholder \{consumer\.email\}/],
    ['/users/{profile}', /unknown placeholder \{profile\}/],
    ['/users/{params.}', /unknown placeholder/],
    ['/users/x#frag', /"#" outside a placeholder/],
    ['/users/a b', /outside a placeholder/],
    ['/users/}', /outside a placeholder/],
  ])('refuses %j', (text, message) => {
    expect(() => compileTemplate(text, 'routes[0].aggregate.calls.x.url', ['profile'])).toThrow(ConfigError);
    expect(() => compileTemplate(text, 'routes[0].aggregate.calls.x.url', ['profile'])).toThrow(message);
    expect(() => compileTemplate(text, 'routes[0].aggregate.calls.x.url', ['profile'])).toThrow(/routes\[0\]\.aggregate\.calls\.x\.url/);
  });
});

describe('renderTemplate', () => {
  it('fills every source', () => {
    expect(render('/u/{params.id}/{consumer.id}/{consumer.tier}?limit={query.limit}&lang={headers.accept-language}&seg={profile.segment}', { 'profile.segment': 'vip' })).toEqual({
      ok: true,
      url: '/u/7/alice/gold?limit=10&lang=fr&seg=vip',
    });
  });

  it.each([
    ['../admin', '/users/..%2Fadmin/orders'],
    ['a/b?x=1', '/users/a%2Fb%3Fx%3D1/orders'],
    ['a#b', '/users/a%23b/orders'],
    ['%2e%2e', '/users/%252e%252e/orders'],
    ['a\\b', '/users/a%5Cb/orders'],
    ['x\r\nHost: evil', '/users/x%0D%0AHost%3A%20evil/orders'],
    ['é', '/users/%C3%A9/orders'],
    ['a..b', '/users/a..b/orders'],
  ])('encodes the path value %j as one segment', (value, url) => {
    expect(render('/users/{params.id}/orders', { 'params.id': value })).toEqual({ ok: true, url });
  });

  it('encodes query values so they cannot add parameters', () => {
    expect(render('/o?user={query.limit}&x=1', { 'query.limit': '1&admin=true#x' })).toEqual({ ok: true, url: '/o?user=1%26admin%3Dtrue%23x&x=1' });
  });

  it.each(['.', '..'])('refuses a path value that makes the dot segment %j', (value) => {
    const result = render('/users/{params.id}/orders', { 'params.id': value });
    expect(result).toEqual({ ok: false, reason: `{params.id} would make the path segment "${value}"` });
  });

  it('refuses a path value that leaves a segment empty, but not an empty query value', () => {
    expect(render('/users/{params.id}/orders', { 'params.id': '' })).toEqual({ ok: false, reason: '{params.id} is empty, which would change the path' });
    expect(render('/users/7?limit={query.limit}', { 'query.limit': '' })).toEqual({ ok: true, url: '/users/7?limit=' });
  });

  it('accepts a dot value inside a larger segment, and text around placeholders', () => {
    expect(render('/files/v{params.id}.json', { 'params.id': '..' })).toEqual({ ok: true, url: '/files/v...json' });
  });

  it.each([
    [undefined, '{params.id} has no value'],
    [null, '{params.id} has no value'],
    [{ a: 1 }, '{params.id} is not a string or a number'],
    [['a'], '{params.id} is not a string or a number'],
    [Number.NaN, '{params.id} is not a string or a number'],
    ['\ud800', '{params.id} cannot be encoded in a URL'],
  ])('fails on the value %p with the reason', (value, reason) => {
    expect(render('/users/{params.id}', { 'params.id': value })).toEqual({ ok: false, reason });
  });

  it('takes numbers and booleans from results', () => {
    expect(render('/p/{profile.level}?vip={profile.vip}', { 'profile.level': 3, 'profile.vip': true })).toEqual({ ok: true, url: '/p/3?vip=true' });
  });
});

describe('valueAt', () => {
  it('walks own properties only', () => {
    const value = JSON.parse('{"a":{"b":[{"c":"deep"}]}}');
    expect(valueAt(value, ['a', 'b', '0', 'c'])).toBe('deep');
    expect(valueAt(value, ['a', 'missing'])).toBeUndefined();
    expect(valueAt(value, ['constructor', 'name'])).toBeUndefined();
    expect(valueAt(value, ['__proto__'])).toBeUndefined();
    expect(valueAt('text', ['length'])).toBeUndefined();
  });
});
