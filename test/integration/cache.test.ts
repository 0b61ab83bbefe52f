/**
 * cache(): alone in front of the proxy and of the app's own handlers, and as the route option `cache`, against
 * a real upstream that counts what reaches it. The leak cases first: one consumer's answer is never another's.
 */
import http from 'node:http';
import express from 'express';
import { gateway, proxy } from '../../index';
import type { Gateway, ProxyMiddleware } from '../../index';
import { cache, cacheControlFor, cacheFeature } from '../../middleware/cache';
import type { CacheMiddleware } from '../../middleware/cache';
import { getContext } from '../../lib/context';
import { SharedParts } from '../../lib/scope';
import { expressVersions, listen, rawRequest, RunningApp } from '../helpers/app';
import { expectConfigError } from '../helpers/config';
import { recordingLogger } from '../helpers/logs';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';
import { sleep } from '../helpers/wait';

const secret = hmacSecret();
const jwt = { secret, algorithms: ['HS256' as const] };

/** The upstream: what it answers depends on the path; every answer says how many requests it has seen. */
function upstreamHandler(seen: { count: number; failNext: Set<string> }) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.count += 1;
    const url = new URL(req.url ?? '/', 'http://upstream');
    const path = url.pathname.replace(/^\/(api|alone|lang|shared|mine|maybe|limited)/, '');
    const body = (extra: Record<string, unknown> = {}) => JSON.stringify({ url: req.url, n: seen.count, ...extra });
    const json = { 'content-type': 'application/json' };
    if (seen.failNext.delete(path)) {
      setTimeout(() => {
        res.writeHead(500, json);
        res.end(body({ failed: true }));
      }, 150);
      return;
    }
    switch (path) {
      case '/cookie':
        res.writeHead(200, { ...json, 'set-cookie': 'session=abc; HttpOnly' });
        return res.end(body());
      case '/private':
      case '/no-store':
      case '/no-cache':
        res.writeHead(200, { ...json, 'cache-control': path.slice(1) });
        return res.end(body());
      case '/max-age-1':
        res.writeHead(200, { ...json, 'cache-control': 'public, max-age=1' });
        return res.end(body());
      case '/s-maxage-1':
        res.writeHead(200, { ...json, 'cache-control': 's-maxage=1, max-age=600' });
        return res.end(body());
      case '/vary':
        res.writeHead(200, { ...json, vary: 'Accept-Language' });
        return res.end(body({ lang: req.headers['accept-language'] ?? null }));
      case '/vary-star':
        res.writeHead(200, { ...json, vary: '*' });
        return res.end(body());
      case '/etag':
        res.writeHead(200, { ...json, etag: 'W/"v1"', 'last-modified': 'Wed, 01 Jan 2025 00:00:00 GMT' });
        return res.end(body());
      case '/big':
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        return res.end(Buffer.alloc(200 * 1024, 7));
      case '/tagged':
        res.writeHead(200, { ...json, 'cache-tag': 'product-7, catalog' });
        return res.end(body());
      case '/raw-headers':
        res.writeHead(200, ['Content-Type', 'text/plain', 'X-One', 'a', 'X-Multi', 'b', 'X-Multi', 'c']);
        return res.end('raw');
      case '/apicache':
        res.writeHead(200, { ...json, 'apicache-store': 'memory', 'apicache-version': '1.6.3' });
        return res.end(body());
      case '/slow':
        setTimeout(() => {
          res.writeHead(200, json);
          res.end(body());
        }, 200);
        return;
      case '/hang':
        setTimeout(() => {
          res.writeHead(200, json);
          res.end(body());
        }, 1500);
        return;
      case '/truncated':
        // Declares 1000 bytes, sends 7, and dies: the proxy can only abort the client's response.
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
        res.write('partial');
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      case '/me':
        res.writeHead(200, json);
        return res.end(body({ caller: req.headers['x-consumer-id'] ?? req.headers.authorization ?? null }));
    }
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) {
      res.writeHead(Number(status[1]), json);
      return res.end(body());
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(path.endsWith('/fails') ? 500 : 201, json);
      return res.end(body());
    }
    res.writeHead(200, json);
    res.end(body());
  };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('cache()', () => {
  const seen = { count: 0, failNext: new Set<string>() };
  let upstream: Upstream;
  let app: RunningApp;
  let gw: Gateway;
  let alone: CacheMiddleware;
  let inFrontOfApp: CacheMiddleware;
  let bypassAllowed: CacheMiddleware;
  let forward: ProxyMiddleware;
  const outcomes: Array<string | undefined> = [];
  let appHandlerCalls = 0;

  beforeAll(async () => {
    upstream = await startUpstream({ handler: upstreamHandler(seen) });
    // Passive health off: the suite asks for 5xx answers on purpose, and an ejected target would answer 503 itself.
    const target = { target: upstream.url, health: { passive: false as const } };
    gw = gateway({
      routes: [
        { path: '/api', upstream: target, cache: { ttl: '30s', ignoreQuery: ['_'], maxEntrySize: '64kb', waitTimeout: '5s' } },
        { path: '/api/short-wait', upstream: target, stripPath: true, cache: { ttl: '30s', waitTimeout: '200ms' } },
        { path: '/shared', upstream: target, auth: { jwt }, cache: { ttl: '30s', logger: recordingLogger() } },
        { path: '/mine', upstream: target, auth: { jwt }, cache: { ttl: '30s', perConsumer: true } },
        { path: '/maybe', upstream: target, auth: { jwt, optional: true }, cache: { ttl: '30s', perConsumer: true } },
        { path: '/limited', upstream: target, rateLimit: { limit: 2, window: '1m' }, cache: { ttl: '30s' } },
      ],
    });
    forward = proxy({ target: upstream.url, health: { passive: false } });
    alone = cache({ ttl: '30s' });
    inFrontOfApp = cache({ ttl: '30s' });
    bypassAllowed = cache({ ttl: '30s', allowClientBypass: true });
    const server = express();
    server.use((req, res, next) => {
      // What metrics and the access log read: the outcome on the request context.
      res.on('finish', () => outcomes.push(getContext(req).cache));
      // A header set before the cache, per request: it must never be replayed from an entry.
      res.setHeader('X-Before', String(Math.random()));
      next();
    });
    server.use(gw);
    server.use('/alone', alone, forward);
    server.use('/lang', bypassAllowed, forward);
    server.use('/app', inFrontOfApp, (req, res) => {
      appHandlerCalls += 1;
      res.set('x-handler', 'app').json({ calls: appHandlerCalls, path: req.path });
    });
    app = await listen(server);
  });
  afterAll(async () => {
    await app.close();
    await gw.close();
    await Promise.all([alone.close(), inFrontOfApp.close(), bypassAllowed.close(), forward.close()]);
    await upstream.close();
  });

  const get = (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> => rawRequest(app.port, { path, headers, method });
  const bearer = async (sub: string) => ({ Authorization: `Bearer ${await signHmac({ sub }, secret)}` });

  /** Requests that reached the upstream while `run` ran. */
  async function upstreamCalls(run: () => Promise<unknown>): Promise<number> {
    const before = seen.count;
    await run();
    return seen.count - before;
  }

  describe('never leaks one caller’s answer to another', () => {
    it('a route with auth but without perConsumer: consumer B never gets A’s body (both bypass)', async () => {
      const a = await get('/shared/me', await bearer('alice'));
      const b = await get('/shared/me', await bearer('bob'));
      expect(JSON.parse(a.body).caller).toBe('alice');
      expect(JSON.parse(b.body).caller).toBe('bob');
      expect(a.headers['x-cache']).toBe('BYPASS');
      expect(b.headers['x-cache']).toBe('BYPASS');
    });

    it('with perConsumer: each consumer gets their own entry, and a repeat is a hit on their own', async () => {
      const a1 = await get('/mine/me', await bearer('alice'));
      const b1 = await get('/mine/me', await bearer('bob'));
      const a2 = await get('/mine/me', await bearer('alice'));
      const b2 = await get('/mine/me', await bearer('bob'));
      expect([a1.headers['x-cache'], b1.headers['x-cache'], a2.headers['x-cache'], b2.headers['x-cache']]).toEqual(['MISS', 'MISS', 'HIT', 'HIT']);
      expect(JSON.parse(a2.body).caller).toBe('alice');
      expect(JSON.parse(b1.body).caller).toBe('bob');
      expect(JSON.parse(b2.body).caller).toBe('bob');
      expect(a2.body).toBe(a1.body);
    });

    it('with perConsumer: an unauthenticated request never reads a consumer’s entry', async () => {
      const a = await get('/maybe/me', await bearer('alice'));
      const anonymous = await get('/maybe/me');
      expect(JSON.parse(a.body).caller).toBe('alice');
      expect(anonymous.headers['x-cache']).toBe('MISS');
      expect(JSON.parse(anonymous.body).caller).toBe('anonymous');
      const again = await get('/maybe/me');
      expect(again.headers['x-cache']).toBe('HIT');
      expect(JSON.parse(again.body).caller).toBe('anonymous');
    });

    it('alone, with no authentication in front: a request with Authorization, Cookie or an API key header neither reads nor fills the cache', async () => {
      await get('/alone/me'); // an anonymous entry exists
      const a = await get('/alone/me', { Authorization: 'Bearer token-of-alice' });
      const b = await get('/alone/me', { Authorization: 'Bearer token-of-bob' });
      const c = await get('/alone/me', { Cookie: 'session=carol' });
      const d = await get('/alone/me', { 'X-Api-Key': 'key-of-dave' });
      expect(JSON.parse(a.body).caller).toBe('Bearer token-of-alice');
      expect(JSON.parse(b.body).caller).toBe('Bearer token-of-bob');
      expect(JSON.parse(c.body).caller).toBeNull();
      expect([a, b, c, d].map((answer) => answer.headers['x-cache'])).toEqual(['BYPASS', 'BYPASS', 'BYPASS', 'BYPASS']);
    });
  });

  it('a repeat is a HIT with Age, the same body and headers, without the upstream; the request id and headers set before the cache are this request’s', async () => {
    const first = await get('/api/items/1');
    const second = await get('/api/items/1');
    expect(first.headers['x-cache']).toBe('MISS');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toBe(first.body);
    expect(second.headers['content-type']).toBe('application/json');
    expect(second.headers.age).toMatch(/^\d+$/);
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
    expect(second.headers['x-before']).not.toBe(first.headers['x-before']);
    expect(await upstreamCalls(() => get('/api/items/1'))).toBe(0);
  });

  it('records the outcome on the request context (HIT, MISS, BYPASS) for metrics, logs and traces', async () => {
    outcomes.length = 0;
    await get('/api/outcome');
    await get('/api/outcome');
    await get('/alone/outcome', { Cookie: 'x=1' });
    await sleep(20);
    expect(outcomes).toEqual(['MISS', 'HIT', 'BYPASS']);
  });

  it('the key: query parameters in any order are one entry, ignoreQuery parameters are left out, other values are other entries', async () => {
    expect((await get('/api/search?b=2&a=1')).headers['x-cache']).toBe('MISS');
    expect((await get('/api/search?a=1&b=2&_=12345')).headers['x-cache']).toBe('HIT');
    expect((await get('/api/search?a=1&b=3')).headers['x-cache']).toBe('MISS');
    expect((await get('/api/search?a=1')).headers['x-cache']).toBe('MISS');
    // Another host is another entry.
    expect((await get('/api/search?a=1', { Host: 'other.example' })).headers['x-cache']).toBe('MISS');
  });

  it('a HEAD is answered from a GET’s entry, without a body; a HEAD miss stores nothing', async () => {
    const got = await get('/api/head-me');
    const head = await get('/api/head-me', {}, 'HEAD');
    expect(head.headers['x-cache']).toBe('HIT');
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(got.body)));
    expect((await get('/api/head-first', {}, 'HEAD')).headers['x-cache']).toBe('MISS');
    expect((await get('/api/head-first')).headers['x-cache']).toBe('MISS');
  });

  it('a conditional hit is answered 304 by ETag (weak comparison) or Last-Modified, and 200 when the validator differs', async () => {
    await get('/api/etag');
    const byTag = await get('/api/etag', { 'If-None-Match': '"other", "v1"' });
    expect(byTag.status).toBe(304);
    expect(byTag.headers['x-cache']).toBe('HIT');
    expect(byTag.headers.etag).toBe('W/"v1"');
    expect(byTag.body).toBe('');
    const byDate = await get('/api/etag', { 'If-Modified-Since': 'Thu, 02 Jan 2025 00:00:00 GMT' });
    expect(byDate.status).toBe(304);
    const changed = await get('/api/etag', { 'If-None-Match': '"v2"' });
    expect(changed.status).toBe(200);
    expect(changed.headers['x-cache']).toBe('HIT');
    const older = await get('/api/etag', { 'If-Modified-Since': 'Tue, 31 Dec 2024 00:00:00 GMT' });
    expect(older.status).toBe(200);
  });

  it.each([
    ['Set-Cookie', '/api/cookie'],
    ['Cache-Control: private', '/api/private'],
    ['Cache-Control: no-store', '/api/no-store'],
    ['Cache-Control: no-cache', '/api/no-cache'],
    ['Vary: *', '/api/vary-star'],
    ['404 (not in statuses)', '/api/status/404'],
    ['401', '/api/status/401'],
    ['403', '/api/status/403'],
    ['407', '/api/status/407'],
    ['500', '/api/status/500'],
    ['503', '/api/status/503'],
  ])('never stores an answer with %s', async (_what, path) => {
    const calls = await upstreamCalls(async () => {
      const first = await get(path);
      const second = await get(path);
      expect(second.headers['x-cache']).toBe('MISS');
      expect(second.status).toBe(first.status);
    });
    expect(calls).toBe(2);
  });

  it('the Set-Cookie of an uncached answer still reaches its own client', async () => {
    const answer = await get('/api/cookie');
    expect(answer.headers['set-cookie']).toEqual(['session=abc; HttpOnly']);
  });

  it('Vary: entries are keyed by the request headers the upstream names', async () => {
    const en = await get('/api/vary', { 'Accept-Language': 'en' });
    const fr = await get('/api/vary', { 'Accept-Language': 'fr' });
    const enAgain = await get('/api/vary', { 'Accept-Language': 'en' });
    const none = await get('/api/vary');
    expect([en, fr, enAgain, none].map((answer) => answer.headers['x-cache'])).toEqual(['MISS', 'MISS', 'HIT', 'MISS']);
    expect(JSON.parse(enAgain.body).lang).toBe('en');
    expect(JSON.parse(fr.body).lang).toBe('fr');
    expect((await get('/api/vary', { 'Accept-Language': 'fr' })).body).toBe(fr.body);
  });

  it('the upstream’s max-age, and s-maxage before it, cap the TTL', async () => {
    await get('/api/max-age-1');
    await get('/api/s-maxage-1');
    expect((await get('/api/max-age-1')).headers['x-cache']).toBe('HIT');
    expect((await get('/api/s-maxage-1')).headers['x-cache']).toBe('HIT');
    await sleep(1100);
    expect((await get('/api/max-age-1')).headers['x-cache']).toBe('MISS');
    expect((await get('/api/s-maxage-1')).headers['x-cache']).toBe('MISS');
  });

  it('client headers that would bypass or refresh the cache are ignored unless the cache allows them', async () => {
    await get('/api/client-bypass');
    for (const headers of <Array<Record<string, string>>>[{ 'x-apicache-bypass': 'true' }, { 'x-apicache-force-fetch': 'true' }, { 'Cache-Control': 'no-cache' }, { Pragma: 'no-cache' }, { 'Cache-Control': 'no-store' }]) {
      expect((await get('/api/client-bypass', headers)).headers['x-cache']).toBe('HIT');
    }
    await get('/lang/refresh');
    expect((await get('/lang/refresh')).headers['x-cache']).toBe('HIT');
    expect((await get('/lang/refresh', { 'Cache-Control': 'no-cache' })).headers['x-cache']).toBe('MISS');
    expect((await get('/lang/refresh', { 'x-apicache-bypass': 'true' })).headers['x-cache']).toBe('BYPASS');
  });

  it('never exposes apicache-* headers', async () => {
    const miss = await get('/api/apicache');
    const hit = await get('/api/apicache');
    expect(hit.headers['x-cache']).toBe('HIT');
    for (const answer of [miss, hit]) expect(Object.keys(answer.headers).filter((name) => name.startsWith('apicache'))).toEqual([]);
  });

  it('an answer over maxEntrySize streams through whole and is not stored', async () => {
    const first = await get('/api/big');
    const second = await get('/api/big');
    expect(first.body.length).toBe(200 * 1024);
    expect(second.body.length).toBe(200 * 1024);
    expect(second.headers['x-cache']).toBe('MISS');
  });

  it('an answer cut off by the upstream mid-body is never stored', async () => {
    const calls = await upstreamCalls(async () => {
      for (let i = 0; i < 2; i++) await expect(get('/api/truncated')).rejects.toThrow();
    });
    expect(calls).toBe(2);
  });

  it('in front of the app’s own handlers: the handler runs once, the repeat is a hit with its headers', async () => {
    const first = await get('/app/page');
    const second = await get('/app/page');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.headers['x-handler']).toBe('app');
    expect(JSON.parse(second.body)).toEqual(JSON.parse(first.body));
    expect(JSON.parse(second.body).calls).toBe(1);
  });

  it('replays headers the handler passed to writeHead as a raw list, repeated ones included', async () => {
    await get('/alone/raw-headers');
    const hit = await get('/alone/raw-headers');
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers['x-one']).toBe('a');
    expect(hit.headers['x-multi']).toBe('b, c');
    expect(hit.body).toBe('raw');
  });

  it('a hit still counts against the rate limit (the cache runs after it)', async () => {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await get('/limited/x')).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  describe('single-flight', () => {
    it('50 concurrent misses for one key make one upstream request; all get its answer', async () => {
      let answers: Answer[] = [];
      const calls = await upstreamCalls(async () => {
        answers = await Promise.all(Array.from({ length: 50 }, () => get('/api/slow')));
      });
      expect(calls).toBe(1);
      expect(new Set(answers.map((answer) => answer.body)).size).toBe(1);
      expect(answers.filter((answer) => answer.headers['x-cache'] === 'MISS')).toHaveLength(1);
      expect(answers.every((answer) => answer.status === 200)).toBe(true);
    });

    it('a failed fill wakes the waiters at once, and they go upstream themselves', async () => {
      seen.failNext.add('/fill-fails');
      const started = Date.now();
      let answers: Answer[] = [];
      const calls = await upstreamCalls(async () => {
        answers = await Promise.all(Array.from({ length: 10 }, () => get('/api/fill-fails')));
      });
      expect(Date.now() - started).toBeLessThan(2000); // woken, not timed out (waitTimeout is 5s)
      expect(answers.filter((answer) => answer.status === 500)).toHaveLength(1);
      expect(answers.filter((answer) => answer.status === 200)).toHaveLength(9);
      expect(calls).toBe(10);
    });

    it('the wait is bounded: past waitTimeout (200 ms here), waiters stop waiting for a slow fill and go upstream', async () => {
      const before = upstream.requests.filter((request) => request.url === '/hang').length;
      const leader = get('/api/short-wait/hang');
      await sleep(20);
      const waiters = await Promise.all(Array.from({ length: 5 }, () => get('/api/short-wait/hang')));
      await leader;
      // Had they waited for the 1.5 s fill, they would have been served its answer and the upstream seen one request.
      expect(upstream.requests.filter((request) => request.url === '/hang').length - before).toBe(6);
      expect(waiters.every((answer) => answer.status === 200 && answer.headers['x-cache'] === 'MISS')).toBe(true);
    });
  });

  describe('invalidation', () => {
    it('a successful unsafe method purges its path’s entries (every query); a failed one does not', async () => {
      await get('/api/things/1');
      await get('/api/things/1?view=full');
      await get('/api/things/2');
      expect((await get('/api/things/1', {}, 'POST')).status).toBe(201);
      expect((await get('/api/things/1')).headers['x-cache']).toBe('MISS');
      expect((await get('/api/things/1?view=full')).headers['x-cache']).toBe('MISS');
      expect((await get('/api/things/2')).headers['x-cache']).toBe('HIT');
      await get('/api/things/fails');
      expect((await get('/api/things/fails', {}, 'DELETE')).status).toBe(500);
      expect((await get('/api/things/fails')).headers['x-cache']).toBe('HIT');
    });

    it('invalidate(prefix) purges the path and what lies under it, segment by segment', async () => {
      for (const path of ['/alone/catalog', '/alone/catalog/7', '/alone/catalog/7?x=1', '/alone/catalogue']) await get(path);
      expect(await alone.invalidate('/alone/catalog')).toBe(3);
      expect((await get('/alone/catalog/7')).headers['x-cache']).toBe('MISS');
      expect((await get('/alone/catalog')).headers['x-cache']).toBe('MISS');
      expect((await get('/alone/catalogue')).headers['x-cache']).toBe('HIT');
      expect(await alone.invalidate('/alone/catalog', { prefix: false })).toBe(1);
      expect((await get('/alone/catalog/7')).headers['x-cache']).toBe('HIT');
      await expect(alone.invalidate('no-slash')).rejects.toThrow(/starting with "\/"/);
    });

    it('invalidateTag() purges the entries tagged by the upstream; the tag header never reaches the client', async () => {
      const miss = await get('/alone/tagged');
      expect(miss.headers['cache-tag']).toBeUndefined();
      const hit = await get('/alone/tagged');
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.headers['cache-tag']).toBeUndefined();
      expect(await alone.invalidateTag('catalog')).toBe(1);
      expect((await get('/alone/tagged')).headers['x-cache']).toBe('MISS');
    });
  });

  describe('options', () => {
    it('mistakes are ConfigErrors naming the option', () => {
      expectConfigError(() => cache({ ttl: 'soon' }), /"ttl"/);
      expectConfigError(() => cache({} as never), /"ttl"/);
      expectConfigError(() => cache({ ttl: '1m', statuses: [200, 500] }), /"statuses\[1\]"/, /server errors/);
      expectConfigError(() => cache({ ttl: '1m', statuses: [200, 401] }), /"statuses"/, /never cached/);
      expectConfigError(() => cache({ ttl: '1m', maxBytes: 'lots' }), /"maxBytes"/);
      expectConfigError(() => cache({ ttl: '1m', redis: 'http://localhost' }), /"redis"/);
      expectConfigError(() => cache({ ttl: '1m', ttlMs: 5 } as never), /"ttlMs"/, /Did you mean "ttl"/);
    });

    it('in a route: option paths, onError refused, perConsumer needs auth', () => {
      expectConfigError(() => gateway({ routes: [{ path: '/x', upstream: 'http://127.0.0.1:1', cache: { ttl: 'soon' } }] }), /routes\[0\]\.cache\.ttl/);
      expectConfigError(() => gateway({ routes: [{ path: '/x', upstream: 'http://127.0.0.1:1', cache: { ttl: '1m', onError: 'next' } as never }] }), /routes\[0\]\.cache\.onError/);
      expectConfigError(() => gateway({ routes: [{ path: '/x', upstream: 'http://127.0.0.1:1', cache: { ttl: '1m', perConsumer: true } }] }), /perConsumer/, /has no "auth"/);
    });

    it('a route with auth and a cache without perConsumer is warned about: it would cache nothing for authenticated callers', async () => {
      const logger = recordingLogger();
      const built = gateway({ routes: [{ path: '/x', upstream: 'http://127.0.0.1:1', auth: { jwt }, cache: { ttl: '1m', logger } }] });
      await built.close();
      expect(logger.warnings.join('\n')).toMatch(/bypasses the cache.*perConsumer/);
    });
  });
});

describe.each(expressVersions)('cache() alone on %s, and on a bare node:http server', (_label, makeExpress) => {
  it('caches what the app’s own handler answers, and HEAD reads it', async () => {
    let calls = 0;
    const middleware = cache({ ttl: '1m' });
    const server = makeExpress();
    server.get('/page', middleware, (_req, res) => {
      calls += 1;
      res.json({ calls });
    });
    const app = await listen(server);
    try {
      const first = await rawRequest(app.port, { path: '/page' });
      const second = await rawRequest(app.port, { path: '/page' });
      const head = await rawRequest(app.port, { path: '/page', method: 'HEAD' });
      expect([first.headers['x-cache'], second.headers['x-cache'], head.headers['x-cache']]).toEqual(['MISS', 'HIT', 'HIT']);
      expect(JSON.parse(second.body)).toEqual({ calls: 1 });
      // Express's own weak ETag makes a conditional repeat a 304 from the cache.
      expect((await rawRequest(app.port, { path: '/page', headers: { 'If-None-Match': String(first.headers.etag) } })).status).toBe(304);
      expect(calls).toBe(1);
    } finally {
      await app.close();
      await middleware.close();
    }
  });

  it('works on node:http without Express (no originalUrl, no res.json)', async () => {
    let calls = 0;
    const middleware = cache({ ttl: '1m' });
    const app = await listen((req, res) =>
      middleware(req, res, () => {
        calls += 1;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`call ${calls}`);
      }),
    );
    try {
      await rawRequest(app.port, { path: '/x?b=1&a=2' });
      const hit = await rawRequest(app.port, { path: '/x?a=2&b=1' });
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.body).toBe('call 1');
    } finally {
      await app.close();
      await middleware.close();
    }
  });
});

describe('route caches of one gateway', () => {
  it('cacheControlFor(shared) purges a path or a tag in every route’s store (what gw.cache would expose)', async () => {
    const shared = new SharedParts();
    const scope = (routeName: string, route: Record<string, unknown>) => ({ optionPrefix: 'routes[0].', routeName, methods: undefined, hosts: undefined, route, gateway: {}, shared });
    const first = cacheFeature.build({ ttl: '1m' }, scope('/a', { cache: { ttl: '1m' } }));
    const second = cacheFeature.build({ ttl: '1m' }, scope('/b', { cache: { ttl: '1m' } }));
    const server = express();
    server.use('/a', first.handler!, (_req, res) => res.set('cache-tag', 'common').send('a'));
    server.use('/b', second.handler!, (_req, res) => res.set('cache-tag', 'common').send('b'));
    const app = await listen(server);
    try {
      for (const path of ['/a/1', '/b/1', '/b/2']) await rawRequest(app.port, { path });
      const control = cacheControlFor(shared);
      expect(await control.invalidate('/b/1')).toBe(1);
      expect((await rawRequest(app.port, { path: '/b/1' })).headers['x-cache']).toBe('MISS');
      expect(await control.invalidateTag('common')).toBe(3);
      expect((await rawRequest(app.port, { path: '/a/1' })).headers['x-cache']).toBe('MISS');
    } finally {
      await app.close();
      await shared.close();
    }
  });

  it('gw.cache purges every route’s store, and a reload that keeps a cache keeps its entries', async () => {
    const seen = { count: 0 };
    const origin = await startUpstream({
      handler: (req, res) => {
        seen.count += 1;
        res.writeHead(200, { 'content-type': 'application/json', 'cache-tag': 'catalog' });
        res.end(JSON.stringify({ url: req.url, n: seen.count }));
      },
    });
    const route = { path: '/catalog', upstream: origin.url, cache: { ttl: '1m' } };
    const gw = gateway({ routes: [route] });
    const server = express();
    server.use(gw);
    const app = await listen(server);
    const xCache = async (path: string) => (await rawRequest(app.port, { path })).headers['x-cache'];
    try {
      expect(await xCache('/catalog/1')).toBe('MISS');
      expect(await xCache('/catalog/1')).toBe('HIT');
      // An unrelated reload keeps the route's store and what it holds.
      await gw.reload({ routes: [route, { path: '/other', upstream: origin.url }] });
      expect(await xCache('/catalog/1')).toBe('HIT');
      expect(await gw.cache.invalidateTag('catalog')).toBe(1);
      expect(await xCache('/catalog/1')).toBe('MISS');
      expect(await gw.cache.invalidate('/catalog')).toBe(1);
      expect(await xCache('/catalog/1')).toBe('MISS');
      expect(seen.count).toBe(3);
    } finally {
      await app.close();
      await gw.close();
      await origin.close();
    }
  });

  it('routes naming one store share it, and must give it the same store options', async () => {
    expectConfigError(
      () =>
        gateway({
          routes: [
            { path: '/a', upstream: 'http://127.0.0.1:1', cache: { ttl: '1m', name: 'catalog', maxEntries: 10 } },
            { path: '/b', upstream: 'http://127.0.0.1:1', cache: { ttl: '1m', name: 'catalog', maxEntries: 20 } },
          ],
        }),
      /shares the cache "catalog"/,
    );
    const built = gateway({
      routes: [
        { path: '/a', upstream: 'http://127.0.0.1:1', cache: { ttl: '1m', name: 'catalog' } },
        { path: '/b', upstream: 'http://127.0.0.1:1', cache: { ttl: '5m', name: 'catalog', perConsumer: false } },
      ],
    });
    await built.close();
  });
});
