/**
 * The cache's pure rules: keys (query normalisation, Vary variants, path matching for purges), which requests
 * may use the cache, which answers may be stored and for how long, and when a hit answers 304.
 */
import type { IncomingMessage } from 'node:http';
import { normaliseQuery, parseVary, pathMatches, primaryKey, variantKey } from '../../lib/cache/key';
import { answerDecision, notModified, requestDecision } from '../../lib/cache/policy';

const request = (headers: Record<string, string>, user?: unknown) => ({ headers, user }) as unknown as IncomingMessage;
const rules = { perConsumer: false, credentialHeaders: ['authorization', 'proxy-authorization', 'cookie'], allowClientBypass: false };
const answers = { statuses: new Set([200]), ttlMs: 60_000, respectCacheControl: true };

describe('cache keys', () => {
  it('sorts query parameters by name, keeps the order of repeated names, drops ignored ones, encodes one way', () => {
    expect(normaliseQuery('?b=2&a=1', new Set())).toBe('a=1&b=2');
    expect(normaliseQuery('?a=2&b=1&a=1', new Set())).toBe('a=2&a=1&b=1');
    expect(normaliseQuery('?q=a+b&_=123&utm_source=x', new Set(['_', 'utm_source']))).toBe('q=a%20b');
    expect(normaliseQuery('?q=%61', new Set())).toBe(normaliseQuery('?q=a', new Set()));
    expect(normaliseQuery('', new Set())).toBe('');
    expect(normaliseQuery('?', new Set())).toBe('');
  });

  it('keeps the parts of a key apart, whatever they hold', () => {
    const one = primaryKey({ path: '/a', host: 'h', query: 'x=1', consumer: '' });
    const other = primaryKey({ path: '/a', host: 'h","x=1', query: '', consumer: '' });
    expect(one).not.toBe(other);
    expect(primaryKey({ path: '/a', host: 'h', query: '', consumer: 'jwt:alice' })).not.toBe(primaryKey({ path: '/a', host: 'h', query: '', consumer: '' }));
  });

  it('reads Vary into sorted lower-case names; * stands alone', () => {
    expect(parseVary('Accept-Language, accept-encoding')).toEqual(['accept-encoding', 'accept-language']);
    expect(parseVary('Accept, *')).toEqual(['*']);
    expect(parseVary(undefined)).toEqual([]);
  });

  it('a variant is keyed by the request’s values of the Vary headers; whitespace does not make another one', () => {
    const key = 'k';
    const en = variantKey(key, ['accept-language'], request({ 'accept-language': 'en, fr' }));
    expect(variantKey(key, ['accept-language'], request({ 'accept-language': 'en,fr' }))).toBe(en);
    expect(variantKey(key, ['accept-language'], request({ 'accept-language': 'fr' }))).not.toBe(en);
    expect(variantKey(key, ['accept-language'], request({}))).not.toBe(variantKey(key, ['accept-language'], request({ 'accept-language': '' })));
  });

  it('purges match a path and, as a prefix, what lies under it segment by segment', () => {
    expect(pathMatches('/a/b', '/a', true)).toBe(true);
    expect(pathMatches('/ab', '/a', true)).toBe(false);
    expect(pathMatches('/a/b', '/a/', true)).toBe(true);
    expect(pathMatches('/a/b', '/a', false)).toBe(false);
    expect(pathMatches('/a', '/a', false)).toBe(true);
  });
});

describe('which requests use the cache', () => {
  it('a request with credentials bypasses it without perConsumer, and so does an authenticated one', () => {
    expect(requestDecision(request({ authorization: 'Bearer x' }), rules)).toBe('credentials');
    expect(requestDecision(request({ cookie: 'a=1' }), rules)).toBe('credentials');
    expect(requestDecision(request({}, { id: 'alice', scheme: 'apiKey', scopes: [] }), rules)).toBe('credentials');
    expect(requestDecision(request({}), rules)).toBeUndefined();
  });

  it('with perConsumer, credentials need a verified consumer; anonymous requests use their own entries', () => {
    const per = { ...rules, perConsumer: true };
    expect(requestDecision(request({ authorization: 'Bearer x' }), per)).toBe('credentials');
    expect(requestDecision(request({ authorization: 'Bearer x' }, { id: 'alice', scheme: 'jwt', scopes: [] }), per)).toBeUndefined();
    expect(requestDecision(request({}), per)).toBeUndefined();
  });

  it('a Range request goes upstream as it is', () => {
    expect(requestDecision(request({ range: 'bytes=0-10' }), rules)).toBe('range');
  });

  it('client bypass and refresh headers count only when allowed', () => {
    for (const headers of <Array<Record<string, string>>>[{ 'x-apicache-bypass': 'true' }, { 'cache-control': 'no-cache' }, { pragma: 'no-cache' }, { 'x-apicache-force-fetch': '1' }]) {
      expect(requestDecision(request(headers), rules)).toBeUndefined();
    }
    const allowed = { ...rules, allowClientBypass: true };
    expect(requestDecision(request({ 'x-apicache-bypass': 'true' }), allowed)).toBe('client');
    expect(requestDecision(request({ 'cache-control': 'no-store' }), allowed)).toBe('client');
    expect(requestDecision(request({ 'cache-control': 'max-age=0, no-cache' }), allowed)).toBe('refresh');
    expect(requestDecision(request({ pragma: 'no-cache' }), allowed)).toBe('refresh');
  });
});

describe('which answers are stored, and for how long', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');

  it('stores a plain 200 for the configured TTL', () => {
    expect(answerDecision(200, { 'content-type': 'application/json' }, answers, now)).toEqual({ store: true, ttlMs: 60_000, vary: [] });
  });

  it.each([
    ['a status not listed', 404, {}],
    ['Set-Cookie', 200, { 'set-cookie': ['a=1'] }],
    ['private', 200, { 'cache-control': 'private' }],
    ['private="set-cookie"', 200, { 'cache-control': 'max-age=60, private="set-cookie"' }],
    ['no-store', 200, { 'cache-control': 'no-store' }],
    ['no-cache', 200, { 'cache-control': 'public, No-Cache' }],
    ['Pragma: no-cache without max-age', 200, { pragma: 'no-cache' }],
    ['Vary: *', 200, { vary: '*' }],
    ['max-age=0', 200, { 'cache-control': 'max-age=0' }],
    ['a malformed max-age', 200, { 'cache-control': 'max-age=soon' }],
    ['an Expires in the past', 200, { expires: 'Tue, 31 Dec 2024 00:00:00 GMT' }],
    ['a malformed Expires', 200, { expires: '0' }],
    ['Content-Range', 200, { 'content-range': 'bytes 0-1/2' }],
  ])('never stores an answer with %s', (_what, status, headers) => {
    expect(answerDecision(status, headers, answers, now).store).toBe(false);
  });

  it('s-maxage, then max-age, then Expires cap the TTL; never lengthen it; respectCacheControl: false ignores them', () => {
    const ttl = (headers: Record<string, string>, rulesUsed = answers) => {
      const decision = answerDecision(200, headers, rulesUsed, now);
      return decision.store ? decision.ttlMs : 0;
    };
    expect(ttl({ 'cache-control': 'max-age=10' })).toBe(10_000);
    expect(ttl({ 'cache-control': 's-maxage=5, max-age=10' })).toBe(5_000);
    expect(ttl({ 'cache-control': 'max-age=600' })).toBe(60_000);
    expect(ttl({ expires: 'Wed, 01 Jan 2025 00:00:20 GMT', date: 'Wed, 01 Jan 2025 00:00:00 GMT' })).toBe(20_000);
    expect(ttl({ 'cache-control': 'max-age=10' }, { ...answers, respectCacheControl: false })).toBe(60_000);
  });

  it('an encoded answer varies on Accept-Encoding even when the upstream forgot to say so', () => {
    expect(answerDecision(200, { 'content-encoding': 'gzip', vary: 'Accept-Language' }, answers, now)).toMatchObject({ vary: ['accept-encoding', 'accept-language'] });
  });
});

describe('conditional requests on a hit', () => {
  const stored = { etag: 'W/"v1"', 'last-modified': 'Wed, 01 Jan 2025 00:00:00 GMT' };

  it('If-None-Match by weak comparison, in a list, or *', () => {
    expect(notModified({ 'if-none-match': '"v1"' }, stored)).toBe(true);
    expect(notModified({ 'if-none-match': '"a", W/"v1"' }, stored)).toBe(true);
    expect(notModified({ 'if-none-match': '*' }, stored)).toBe(true);
    expect(notModified({ 'if-none-match': '"v2"' }, stored)).toBe(false);
    expect(notModified({ 'if-none-match': '"v1"' }, {})).toBe(false);
  });

  it('If-None-Match wins over If-Modified-Since', () => {
    expect(notModified({ 'if-none-match': '"v2"', 'if-modified-since': 'Thu, 02 Jan 2025 00:00:00 GMT' }, stored)).toBe(false);
  });

  it('If-Modified-Since against Last-Modified; a malformed date is not a match', () => {
    expect(notModified({ 'if-modified-since': 'Wed, 01 Jan 2025 00:00:00 GMT' }, stored)).toBe(true);
    expect(notModified({ 'if-modified-since': 'Tue, 31 Dec 2024 00:00:00 GMT' }, stored)).toBe(false);
    expect(notModified({ 'if-modified-since': 'yesterday' }, stored)).toBe(false);
  });
});
