import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import request from 'supertest';
import { authenticate, ConfigError, proxy } from '../../index';
import { expressVersions, listen, RunningApp } from '../helpers/app';
import { expectProblem } from '../helpers/problem';
import { startUpstream, Upstream } from '../helpers/upstream';
import { hmacSecret, signHmac } from '../helpers/tokens';

const PLAIN_KEY = 'plain-key-0123456789abcdef';
const HASHED_KEY = 'hashed-key-fedcba9876543210';
const LOOKUP_KEY = 'lookup-key-00000000000000000';
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

describe.each(expressVersions)('API key authentication (%s)', (_label, express) => {
  const secret = hmacSecret();
  const keys = {
    [PLAIN_KEY]: { id: 'acme', tier: 'gold', scopes: ['orders:read'] },
    [`sha256:${sha256(HASHED_KEY)}`]: { id: 'globex', scopes: ['orders:write'] },
  };
  const lookupCalls: Array<{ key: string; path: string | undefined }> = [];
  let lookupDown = false;
  const lookup = async (key: string, req: IncomingMessage) => {
    lookupCalls.push({ key, path: req.url });
    await new Promise((resolve) => setImmediate(resolve));
    if (lookupDown) throw new Error('database is down');
    return key === LOOKUP_KEY ? { id: 'from-db', tier: 'silver', scopes: ['db:read'] } : null;
  };
  let upstream: Upstream;
  let app: RunningApp;
  let optionalProxy: ReturnType<typeof proxy>;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'orders' });
    const server = express();
    const me = (req: { user?: unknown }, res: { json(body: unknown): void }) => res.json(req.user);
    server.get('/keys', authenticate({ apiKey: { keys } }), me);
    server.get('/custom-header', authenticate({ apiKey: { header: 'X-Partner-Key', keys } }), me);
    server.get('/query', authenticate({ apiKey: { query: 'api_key', keys } }), me);
    server.get('/lookup', authenticate({ apiKey: { keys, lookup } }), me);
    server.get('/both', authenticate({ jwt: { secret, algorithms: ['HS256'] }, apiKey: { keys } }), me);
    optionalProxy = proxy({ target: upstream.url });
    server.use('/optional', authenticate({ jwt: { secret, algorithms: ['HS256'] }, apiKey: { keys }, optional: true }), optionalProxy);
    app = await listen(server);
  });
  afterAll(async () => {
    await optionalProxy.close();
    await app.close();
    await upstream.close();
  });

  it('accepts a plain configured key and sets the consumer from its entry', async () => {
    const res = await request(app.url).get('/keys').set('X-Api-Key', PLAIN_KEY).expect(200);
    expect(res.body).toEqual({ id: 'acme', scheme: 'apiKey', tier: 'gold', scopes: ['orders:read'] });
  });

  it('accepts a key configured only by its sha256 digest', async () => {
    const res = await request(app.url).get('/keys').set('X-Api-Key', HASHED_KEY).expect(200);
    expect(res.body).toEqual({ id: 'globex', scheme: 'apiKey', scopes: ['orders:write'] });
  });

  it('does not accept the digest itself as a key', async () => {
    const digest = `sha256:${sha256(HASHED_KEY)}`;
    expectProblem(await request(app.url).get('/keys').set('X-Api-Key', digest), 401, 'ERR_AUTH_KEY_INVALID');
    expectProblem(await request(app.url).get('/keys').set('X-Api-Key', sha256(HASHED_KEY)), 401, 'ERR_AUTH_KEY_INVALID');
  });

  it('a wrong key → 401 ERR_AUTH_KEY_INVALID with an ApiKey challenge, and the key is not echoed', async () => {
    const wrong = 'wrong-key-5555555555555555';
    const res = await request(app.url).get('/keys').set('X-Api-Key', wrong);
    expectProblem(res, 401, 'ERR_AUTH_KEY_INVALID');
    expect(res.headers['www-authenticate']).toBe('ApiKey realm="api", header="x-api-key"');
    expect(res.text).not.toContain(wrong);
    // A prefix of a valid key is not valid either.
    expectProblem(await request(app.url).get('/keys').set('X-Api-Key', PLAIN_KEY.slice(0, -1)), 401, 'ERR_AUTH_KEY_INVALID');
  });

  it('no key → 401 ERR_AUTH_MISSING with the ApiKey challenge', async () => {
    const res = await request(app.url).get('/keys');
    expectProblem(res, 401, 'ERR_AUTH_MISSING');
    expect(res.headers['www-authenticate']).toBe('ApiKey realm="api", header="x-api-key"');
  });

  it('reads the key from a configured header name', async () => {
    expect((await request(app.url).get('/custom-header').set('X-Partner-Key', PLAIN_KEY).expect(200)).body.id).toBe('acme');
    const res = await request(app.url).get('/custom-header').set('X-Api-Key', PLAIN_KEY);
    expectProblem(res, 401, 'ERR_AUTH_MISSING');
    expect(res.headers['www-authenticate']).toBe('ApiKey realm="api", header="x-partner-key"');
  });

  it('accepts a key in the query string only when the query option is enabled', async () => {
    expectProblem(await request(app.url).get(`/keys?api_key=${PLAIN_KEY}`), 401, 'ERR_AUTH_MISSING');
    expect((await request(app.url).get(`/query?api_key=${PLAIN_KEY}`).expect(200)).body.id).toBe('acme');
    expect((await request(app.url).get('/query').set('X-Api-Key', PLAIN_KEY).expect(200)).body.id).toBe('acme');
    const wrong = await request(app.url).get('/query?api_key=not-a-valid-key-at-all');
    expectProblem(wrong, 401, 'ERR_AUTH_KEY_INVALID');
    expect(wrong.text).not.toContain('not-a-valid-key-at-all');
  });

  it('asks an async lookup for keys not in the table, with the request', async () => {
    lookupCalls.length = 0;
    const res = await request(app.url).get('/lookup?x=1').set('X-Api-Key', LOOKUP_KEY).expect(200);
    expect(res.body).toEqual({ id: 'from-db', scheme: 'apiKey', tier: 'silver', scopes: ['db:read'] });
    expect(lookupCalls).toEqual([{ key: LOOKUP_KEY, path: '/lookup?x=1' }]);
    // Configured keys still work; an unknown key is refused after the lookup said null.
    expect((await request(app.url).get('/lookup').set('X-Api-Key', PLAIN_KEY).expect(200)).body.id).toBe('acme');
    expectProblem(await request(app.url).get('/lookup').set('X-Api-Key', 'unknown-key-1234567890'), 401, 'ERR_AUTH_KEY_INVALID');
  });

  it('a lookup that throws → 503 ERR_AUTH_UNAVAILABLE with Retry-After, not 401', async () => {
    lookupDown = true;
    try {
      const res = await request(app.url).get('/lookup').set('X-Api-Key', LOOKUP_KEY);
      expectProblem(res, 503, 'ERR_AUTH_UNAVAILABLE');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect(res.text).not.toContain(LOOKUP_KEY);
      expect(res.text).not.toContain('database is down');
    } finally {
      lookupDown = false;
    }
  });

  describe('several schemes on one route', () => {
    it('a JWT alone or an API key alone both work', async () => {
      const token = await signHmac({ sub: 'jwt-user' }, secret);
      expect((await request(app.url).get('/both').set('Authorization', `Bearer ${token}`).expect(200)).body).toMatchObject({ id: 'jwt-user', scheme: 'jwt' });
      expect((await request(app.url).get('/both').set('X-Api-Key', PLAIN_KEY).expect(200)).body).toMatchObject({ id: 'acme', scheme: 'apiKey' });
    });

    it('the first scheme that succeeds wins', async () => {
      const token = await signHmac({ sub: 'jwt-user' }, secret);
      const both = await request(app.url).get('/both').set('Authorization', `Bearer ${token}`).set('X-Api-Key', PLAIN_KEY).expect(200);
      expect(both.body).toMatchObject({ id: 'jwt-user', scheme: 'jwt' });
      const badJwtGoodKey = await request(app.url).get('/both').set('Authorization', 'Bearer garbage').set('X-Api-Key', PLAIN_KEY).expect(200);
      expect(badJwtGoodKey.body).toMatchObject({ id: 'acme', scheme: 'apiKey' });
    });

    it('no credentials → both challenges; a rejected credential is reported, not "missing"', async () => {
      const missing = await request(app.url).get('/both');
      expectProblem(missing, 401, 'ERR_AUTH_MISSING');
      expect(missing.headers['www-authenticate']).toBe('Bearer realm="api", ApiKey realm="api", header="x-api-key"');
      expectProblem(await request(app.url).get('/both').set('X-Api-Key', 'wrong-key-5555555555555555'), 401, 'ERR_AUTH_KEY_INVALID');
      const expired = await signHmac({ sub: 'u', exp: Math.floor(Date.now() / 1000) - 60 }, secret);
      expectProblem(await request(app.url).get('/both').set('Authorization', `Bearer ${expired}`), 401, 'ERR_AUTH_TOKEN_EXPIRED');
    });
  });

  describe('optional: true', () => {
    it('lets a request without credentials through as the anonymous consumer, forwarded upstream', async () => {
      const before = upstream.requests.length;
      const res = await request(app.url).get('/optional/items').set('X-Consumer-Id', 'admin').expect(200);
      expect(res.body.url).toBe('/optional/items');
      expect(upstream.requests.length).toBe(before + 1);
      const headers = upstream.requests[before].headers;
      expect(headers['x-consumer-id']).toBe('anonymous');
      expect(headers['x-consumer-scopes']).toBe('');
      expect(headers['x-consumer-tier']).toBeUndefined();
    });

    it('still forwards an authenticated consumer when credentials are valid', async () => {
      const before = upstream.requests.length;
      await request(app.url).get('/optional/items').set('X-Api-Key', PLAIN_KEY).expect(200);
      expect(upstream.requests[before].headers).toMatchObject({ 'x-consumer-id': 'acme', 'x-consumer-tier': 'gold', 'x-consumer-scopes': 'orders:read' });
    });

    it('an invalid presented token or key is still 401 and nothing is forwarded', async () => {
      const before = upstream.requests.length;
      const forged = await signHmac({ sub: 'admin' }, hmacSecret());
      const res = await request(app.url).get('/optional/items').set('Authorization', `Bearer ${forged}`);
      expectProblem(res, 401, 'ERR_AUTH_TOKEN_INVALID');
      expect(res.text).not.toContain(forged);
      expectProblem(await request(app.url).get('/optional/items').set('X-Api-Key', 'wrong-key-5555555555555555'), 401, 'ERR_AUTH_KEY_INVALID');
      expect(upstream.requests.length).toBe(before);
    });
  });
});

describe('API key configuration errors', () => {
  it('refuses short plain keys, malformed digests and a table without keys or lookup, naming the option', () => {
    expect(() => authenticate({ apiKey: { keys: { short: { id: 'x' } } } })).toThrow(ConfigError);
    expect(() => authenticate({ apiKey: { keys: { short: { id: 'x' } } } })).toThrow(/apiKey\.keys.*shorter than 16/);
    expect(() => authenticate({ apiKey: { keys: { 'sha256:abc': { id: 'x' } } } })).toThrow(/apiKey\.keys/);
    expect(() => authenticate({ apiKey: {} })).toThrow(/apiKey\.keys.*apiKey\.lookup/);
    expect(() => authenticate({ apiKey: { keys: { [PLAIN_KEY]: { id: '' } } } })).toThrow(/apiKey\.keys.*id/);
  });
});
