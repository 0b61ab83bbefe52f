import { dropSegments, normalisePath, normaliseTarget, splitUrl } from '../../lib/path';

describe('normalisePath', () => {
  it.each(['/', '/api/orders', '/api/orders/7', '/a-b_c.d~e/f', '/api/v1.2/items'])('leaves the clean path %s unchanged', (path) => {
    expect(normalisePath(path)).toEqual({ ok: true, path });
  });

  it('decodes percent-encoded unreserved characters, in either case', () => {
    expect(normalisePath('/api/%6Frders/7')).toEqual({ ok: true, path: '/api/orders/7' });
    expect(normalisePath('/api/%6frders')).toEqual({ ok: true, path: '/api/orders' });
    expect(normalisePath('/%7euser')).toEqual({ ok: true, path: '/~user' });
    expect(normalisePath('/a%2Db%5Fc')).toEqual({ ok: true, path: '/a-b_c' });
  });

  it('keeps other escapes encoded but upper-cases them', () => {
    expect(normalisePath('/caf%c3%a9')).toEqual({ ok: true, path: '/caf%C3%A9' });
    expect(normalisePath('/a%20b')).toEqual({ ok: true, path: '/a%20b' });
    expect(normalisePath('/q%3fx')).toEqual({ ok: true, path: '/q%3Fx' });
  });

  it('collapses runs of slashes', () => {
    expect(normalisePath('//a///b')).toEqual({ ok: true, path: '/a/b' });
    expect(normalisePath('/api//orders//7/')).toEqual({ ok: true, path: '/api/orders/7/' });
  });

  it('keeps dots that are part of a segment name', () => {
    expect(normalisePath('/a/..b/c.')).toEqual({ ok: true, path: '/a/..b/c.' });
    expect(normalisePath('/a/.well-known')).toEqual({ ok: true, path: '/a/.well-known' });
  });

  it.each([
    ['/a/../b', 'raw dot-dot segment'],
    ['/a/./b', 'raw dot segment'],
    ['/a/%2e%2e/b', 'encoded dot-dot, lower case'],
    ['/a/%2E%2E/b', 'encoded dot-dot, upper case'],
    ['/a/.%2E/b', 'half-encoded dot-dot'],
    ['/a/%2E/b', 'encoded dot segment'],
    ['/a/..', 'trailing dot-dot'],
    ['/a/.', 'trailing dot'],
    ['/a//../b', 'dot-dot after collapsed slashes'],
    ['/a%2fb', 'encoded slash, lower case'],
    ['/a%2Fb', 'encoded slash, upper case'],
    ['/a%5cb', 'encoded backslash'],
    ['/a\\b', 'raw backslash'],
    ['/a%00b', 'encoded NUL'],
    ['/a%1Fb', 'encoded control character'],
    ['/a%7Fb', 'encoded DEL'],
    ['/a\x01b', 'raw control character'],
    ['/%zz', 'malformed escape'],
    ['/a%2', 'truncated escape'],
    ['a/b', 'no leading slash'],
  ])('rejects %j (%s) with a reason', (path) => {
    const result = normalisePath(path);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(typeof result.reason).toBe('string');
    expect(result.reason.length).toBeGreaterThan(0);
  });

  it('names the problem in the reason', () => {
    const dots = normalisePath('/a/%2e%2e/b');
    const slash = normalisePath('/a%2Fb');
    const malformed = normalisePath('/%zz');
    expect(!dots.ok && dots.reason).toMatch(/\.\./);
    expect(!slash.ok && slash.reason).toMatch(/slash/i);
    expect(!malformed.ok && malformed.reason).toMatch(/percent|malformed/i);
  });

  it.each([
    ['/api/orders/%2e%2e/admin', '/api/admin'],
    ['/api/orders/../admin', '/api/admin'],
    ['/api/orders/.%2E/admin', '/api/admin'],
    ['/api/orders%2fadmin', '/api/orders/admin'],
    ['/api/orders/..%2fadmin', '/api/admin'],
    ['/public/../api/orders', '/api/orders'],
    ['/a/./b', '/a/b'],
    ['/a%5cb', '/a/b'],
    ['/a/..', '/'],
    ['/../../etc', '/etc'],
  ])('gives %s the lenient reading %s', (path, lenient) => {
    const result = normalisePath(path);
    expect(result).toMatchObject({ ok: false, lenient });
  });

  it('keeps the raw form as the lenient reading when decoding is impossible', () => {
    expect(normalisePath('/%zz')).toMatchObject({ ok: false, lenient: '/%zz' });
  });
});

describe('splitUrl', () => {
  it('splits a URL into pathname and query suffix', () => {
    expect(splitUrl('/api/orders?x=1&y=2')).toEqual({ pathname: '/api/orders', search: '?x=1&y=2' });
  });

  it('returns an empty search when there is no query', () => {
    expect(splitUrl('/api/orders')).toEqual({ pathname: '/api/orders', search: '' });
  });

  it('splits at the first "?" only', () => {
    expect(splitUrl('/a?b=?c')).toEqual({ pathname: '/a', search: '?b=?c' });
  });

  it('keeps a bare "?"', () => {
    expect(splitUrl('/a?')).toEqual({ pathname: '/a', search: '?' });
  });

  it('does not treat an encoded %3F as the query separator', () => {
    expect(splitUrl('/a%3Fb?c')).toEqual({ pathname: '/a%3Fb', search: '?c' });
  });
});

describe('normalisePath: ";" path parameters and "#" (security regressions)', () => {
  it.each([
    ['/admin;jsessionid=0/x', 'raw ";" parameter'],
    ['/public/..;/admin/x', '"..;" dot segment with parameters'],
    ['/a;x=1/b', 'raw ";" in a segment'],
    ['/admin%3Bx/y', 'encoded ";", upper case'],
    ['/admin%3bx/y', 'encoded ";", lower case'],
  ])('rejects %j (%s) by default', (path) => {
    const result = normalisePath(path);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/;/);
  });

  it.each(['/api/public/..#', '/api/public/..#x', '/api/public/%2e%2e#', '/api/public/.#', '/a#b'])('rejects a raw "#" in %j', (path) => {
    const result = normalisePath(path);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/#/);
  });

  it('rejects an encoded ";" even with { semicolons: true }: servers disagree on whether it separates parameters', () => {
    expect(normalisePath('/admin%3Bx/y', { semicolons: true }).ok).toBe(false);
    expect(normalisePath('/admin%3bx/y', { semicolons: true }).ok).toBe(false);
  });

  it('rejects "#" even with { semicolons: true }', () => {
    expect(normalisePath('/a/..#', { semicolons: true }).ok).toBe(false);
  });

  it('with { semicolons: true } keeps the parameters in the path and matches on the segment names', () => {
    expect(normalisePath('/admin;x=1/y', { semicolons: true })).toEqual({ ok: true, path: '/admin;x=1/y', match: '/admin/y' });
  });

  it.each(['/a/..;x/b', '/a/.;/b', '/a/..;/b', '/public/..;/admin/x'])('with { semicolons: true } still rejects the dot segment with parameters %j', (path) => {
    const result = normalisePath(path, { semicolons: true });
    expect(result.ok).toBe(false);
  });
});

describe('normaliseTarget: "#" in the query (security regressions)', () => {
  it('rejects a "#" in the query string', () => {
    const result = normaliseTarget('/api/public/x?a=1#frag');
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/#/);
  });

  it('accepts the same target without the fragment', () => {
    expect(normaliseTarget('/api/public/x?a=1')).toMatchObject({ ok: true, path: '/api/public/x', search: '?a=1' });
  });
});

describe('dropSegments (stripPath on a normalised path)', () => {
  it('drops the first two segments and keeps the parameters of the rest: /api/orders;v=1/7 → /7', () => {
    expect(dropSegments('/api/orders;v=1/7', 2)).toBe('/7');
  });

  it('returns "/" when every segment is dropped: /api, 1 → /', () => {
    expect(dropSegments('/api', 1)).toBe('/');
  });

  it('returns the path unchanged for a count of 0', () => {
    expect(dropSegments('/a/b', 0)).toBe('/a/b');
  });
});
