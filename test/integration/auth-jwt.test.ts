import request from 'supertest';
import type { Response } from 'supertest';
import { authenticate } from '../../index';
import { expressVersions, listen, RunningApp } from '../helpers/app';
import { closedPort } from '../helpers/upstream';
import { startJwksServer, JwksServer } from '../helpers/jwks-server';
import { createKeyPair, hmacSecret, nowSeconds, randomKid, signHmac, signWith, TestKeyPair, unsignedToken, withSignatureOf } from '../helpers/tokens';

const ISSUER = 'https://idp.test/';
const AUDIENCE = 'orders';

/** A 401 problem+json with the code and challenge, that does not echo the token. */
function expectRejected(res: Response, code: string, token?: string, challenge: RegExp = /^Bearer realm="api", error="invalid_token"/, detail?: string) {
  expect(res.status).toBe(401);
  if (detail !== undefined) expect(res.body.detail).toBe(detail);
  expect(res.headers['content-type']).toContain('application/problem+json');
  expect(res.body).toMatchObject({ status: 401, code, requestId: res.headers['x-request-id'] });
  expect(res.headers['www-authenticate']).toMatch(challenge);
  if (token) {
    expect(res.text).not.toContain(token);
    // Not even the signature part (the part that matters) is echoed.
    expect(res.text).not.toContain(token.split('.')[2] || '\u0000');
  }
}

/** Key pairs generated once per file (RSA generation is the slow part), shared by both Express runs. */
let keys: Promise<TestKeyPair[]> | undefined;
const sharedKeys = () =>
  (keys ??= Promise.all([createKeyPair('RS256'), createKeyPair('ES256'), createKeyPair('PS256'), createKeyPair('RS256'), createKeyPair('RS256')]));

describe.each(expressVersions)('JWT authentication (%s)', (_label, express) => {
  const secret = hmacSecret();
  let rsa: TestKeyPair;
  let ec: TestKeyPair;
  let pss: TestKeyPair;
  let jwksKey: TestKeyPair;
  let attacker: TestKeyPair;
  let jwks: JwksServer;
  let attackerJwks: JwksServer;
  let app: RunningApp;

  beforeAll(async () => {
    [rsa, ec, pss, jwksKey, attacker] = await sharedKeys();
    jwks = await startJwksServer([jwksKey.jwk]);
    attackerJwks = await startJwksServer([attacker.jwk]);
    const server = express();
    const me = (req: { user?: unknown }, res: { json(body: unknown): void }) => res.json(req.user);
    server.get('/hs', authenticate({ jwt: { secret, algorithms: ['HS256'] } }), me);
    server.get('/rs', authenticate({ jwt: { secret: rsa.publicPem, algorithms: ['RS256'] } }), me);
    server.get('/es', authenticate({ jwt: { secret: ec.publicPem, algorithms: ['ES256'] } }), me);
    server.get('/ps', authenticate({ jwt: { secret: pss.publicPem, algorithms: ['PS256'] } }), me);
    server.get('/jwks', authenticate({ jwt: { jwksUri: jwks.jwksUri, issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256'] } }), me);
    server.get('/tolerant', authenticate({ jwt: { secret, algorithms: ['HS256'], clockTolerance: '30s' } }), me);
    server.get('/no-expiry', authenticate({ jwt: { secret, algorithms: ['HS256'], requireExpiry: false } }), me);
    app = await listen(server);
  });
  afterAll(async () => {
    await app.close();
    await jwks.close();
    await attackerJwks.close();
  });

  const get = (path: string, token?: string) => {
    const req = request(app.url).get(path);
    return token === undefined ? req : req.set('Authorization', `Bearer ${token}`);
  };

  describe('accepts valid tokens of every supported key kind', () => {
    it('HS256 with a shared secret: req.user carries id, scheme, scopes, tier and claims', async () => {
      const token = await signHmac({ sub: 'user-1', tier: 'gold', scope: 'orders:read orders:write', email: 'a@example.com' }, secret);
      const res = await get('/hs', token).expect(200);
      expect(res.body).toEqual({
        id: 'user-1',
        scheme: 'jwt',
        tier: 'gold',
        scopes: ['orders:read', 'orders:write'],
        claims: expect.objectContaining({ sub: 'user-1', tier: 'gold', email: 'a@example.com' }),
      });
    });

    it('RS256 with a PEM public key', async () => {
      const res = await get('/rs', await signWith(rsa, { sub: 'rs-user' })).expect(200);
      expect(res.body).toMatchObject({ id: 'rs-user', scheme: 'jwt', scopes: [] });
    });

    it('ES256 with an EC PEM public key', async () => {
      expect((await get('/es', await signWith(ec, { sub: 'es-user' })).expect(200)).body.id).toBe('es-user');
    });

    it('PS256 with an RSA PEM public key', async () => {
      expect((await get('/ps', await signWith(pss, { sub: 'ps-user' })).expect(200)).body.id).toBe('ps-user');
    });

    it('RS256 from a JWKS endpoint with issuer and audience', async () => {
      const res = await get('/jwks', await signWith(jwksKey, { sub: 'jwks-user', iss: ISSUER, aud: AUDIENCE })).expect(200);
      expect(res.body).toMatchObject({ id: 'jwks-user', scheme: 'jwt' });
      expect(jwks.fetches).toBeGreaterThanOrEqual(1);
    });

    it('reads scopes from a space-separated scope string and from an scp array', async () => {
      const fromScope = await get('/hs', await signHmac({ sub: 'u', scope: 'a:read b:write' }, secret)).expect(200);
      expect(fromScope.body.scopes).toEqual(['a:read', 'b:write']);
      const fromScp = await get('/hs', await signHmac({ sub: 'u', scp: ['c:read', 'd:write'] }, secret)).expect(200);
      expect(fromScp.body.scopes).toEqual(['c:read', 'd:write']);
      const none = await get('/hs', await signHmac({ sub: 'u' }, secret)).expect(200);
      expect(none.body.scopes).toEqual([]);
      expect(none.body).not.toHaveProperty('tier');
    });
  });

  describe('rejects with 401, the right code and a challenge', () => {
    it('no credentials → ERR_AUTH_MISSING with a plain Bearer challenge', async () => {
      const res = await get('/hs');
      expectRejected(res, 'ERR_AUTH_MISSING', undefined, /^Bearer realm="api"$/);
    });

    it('garbage instead of a token → ERR_AUTH_TOKEN_INVALID', async () => {
      const garbage = 'not.a-jwt.at-all-really';
      expectRejected(await get('/hs', garbage), 'ERR_AUTH_TOKEN_INVALID', garbage, undefined, 'The token is malformed or invalid.');
      expectRejected(await get('/rs', 'garbage'), 'ERR_AUTH_TOKEN_INVALID', undefined, undefined, 'The token is malformed or invalid.');
    });

    it('a bad signature → ERR_AUTH_TOKEN_INVALID (HMAC and RSA)', async () => {
      const hs = withSignatureOf(await signHmac({ sub: 'u' }, secret), await signHmac({ sub: 'u' }, hmacSecret()));
      expectRejected(await get('/hs', hs), 'ERR_AUTH_TOKEN_INVALID', hs, undefined, 'The token signature is invalid.');
      const rs = await signWith({ ...attacker, kid: rsa.kid }, { sub: 'u' });
      expectRejected(await get('/rs', rs), 'ERR_AUTH_TOKEN_INVALID', rs, undefined, 'The token signature is invalid.');
    });

    it('an expired token → ERR_AUTH_TOKEN_EXPIRED with error_description', async () => {
      const token = await signHmac({ sub: 'u', exp: nowSeconds() - 60 }, secret);
      const res = await get('/hs', token);
      expectRejected(res, 'ERR_AUTH_TOKEN_EXPIRED', token, undefined, 'The access token has expired.');
      expect(res.headers['www-authenticate']).toBe('Bearer realm="api", error="invalid_token", error_description="The access token expired"');
    });

    it('clockTolerance 30s: expired 10 s ago is accepted, expired 2 min ago is not', async () => {
      const recent = await signHmac({ sub: 'late', exp: nowSeconds() - 10 }, secret);
      expect((await get('/tolerant', recent).expect(200)).body.id).toBe('late');
      const old = await signHmac({ sub: 'late', exp: nowSeconds() - 120 }, secret);
      expectRejected(await get('/tolerant', old), 'ERR_AUTH_TOKEN_EXPIRED', old, undefined, 'The access token has expired.');
    });

    it('nbf in the future → ERR_AUTH_TOKEN_INVALID (within clockTolerance it is accepted)', async () => {
      const token = await signHmac({ sub: 'u', nbf: nowSeconds() + 120 }, secret);
      expectRejected(await get('/hs', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'The token is not valid yet.');
      expectRejected(await get('/tolerant', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'The token is not valid yet.');
      const soon = await signHmac({ sub: 'early', nbf: nowSeconds() + 10 }, secret);
      expect((await get('/tolerant', soon).expect(200)).body.id).toBe('early');
    });

    it('wrong issuer or wrong audience → ERR_AUTH_TOKEN_INVALID', async () => {
      const wrongIss = await signWith(jwksKey, { sub: 'u', iss: 'https://evil.test/', aud: AUDIENCE });
      expectRejected(await get('/jwks', wrongIss), 'ERR_AUTH_TOKEN_INVALID', wrongIss, undefined, 'The token issuer is not accepted.');
      const wrongAud = await signWith(jwksKey, { sub: 'u', iss: ISSUER, aud: 'billing' });
      expectRejected(await get('/jwks', wrongAud), 'ERR_AUTH_TOKEN_INVALID', wrongAud, undefined, 'The token audience is not accepted.');
      const noAud = await signWith(jwksKey, { sub: 'u', iss: ISSUER });
      expectRejected(await get('/jwks', noAud), 'ERR_AUTH_TOKEN_INVALID', noAud, undefined, 'The token audience is not accepted.');
    });

    it('an alg: none token is never accepted', async () => {
      const token = unsignedToken({ sub: 'admin' });
      expectRejected(await get('/hs', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'The token algorithm is not accepted.');
      expectRejected(await get('/rs', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'The token algorithm is not accepted.');
      expectRejected(await get('/jwks', unsignedToken({ sub: 'admin', iss: ISSUER, aud: AUDIENCE })), 'ERR_AUTH_TOKEN_INVALID', undefined, undefined, 'The token algorithm is not accepted.');
    });

    it('an HS256 token signed with the RSA public key PEM as HMAC secret is refused on an RS256 route', async () => {
      const token = await signHmac({ sub: 'admin' }, rsa.publicPem);
      expectRejected(await get('/rs', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'The token algorithm is not accepted.');
      // Also with the PEM's exact bytes minus the trailing newline, a common variant of the attack.
      const trimmed = await signHmac({ sub: 'admin' }, rsa.publicPem.trim());
      expectRejected(await get('/rs', trimmed), 'ERR_AUTH_TOKEN_INVALID', trimmed, undefined, 'The token algorithm is not accepted.');
    });

    it('a token carrying its own jwk header (attacker key) is refused', async () => {
      const embedded = await signWith(attacker, { sub: 'admin', iss: ISSUER, aud: AUDIENCE }, { header: { jwk: attacker.jwk } });
      expectRejected(await get('/rs', embedded), 'ERR_AUTH_TOKEN_INVALID', embedded, undefined, 'Tokens carrying their own key are not accepted.');
      expectRejected(await get('/jwks', embedded), 'ERR_AUTH_TOKEN_INVALID', embedded, undefined, 'Tokens carrying their own key are not accepted.');
    });

    it('a token with a jku header is refused and the attacker JWKS is never fetched', async () => {
      const token = await signWith(attacker, { sub: 'admin', iss: ISSUER, aud: AUDIENCE }, { header: { jku: attackerJwks.jwksUri } });
      expectRejected(await get('/jwks', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'Tokens carrying their own key are not accepted.');
      expectRejected(await get('/rs', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'Tokens carrying their own key are not accepted.');
      expect(attackerJwks.fetches).toBe(0);
    });

    it('a token without exp → 401; accepted with requireExpiry: false', async () => {
      const token = await signHmac({ sub: 'forever' }, secret, { expiresIn: null });
      expectRejected(await get('/hs', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'The token has no expiry.');
      expect((await get('/no-expiry', token).expect(200)).body.id).toBe('forever');
    });

    it('an algorithm outside the allow-list is refused even with the right key', async () => {
      const hs384 = await signHmac({ sub: 'u' }, secret, { alg: 'HS384' });
      expectRejected(await get('/hs', hs384), 'ERR_AUTH_TOKEN_INVALID', hs384, undefined, 'The token algorithm is not accepted.');
      const ps = await signWith({ ...rsa, alg: 'PS256' }, { sub: 'u' });
      expectRejected(await get('/rs', ps), 'ERR_AUTH_TOKEN_INVALID', ps, undefined, 'The token algorithm is not accepted.');
    });

    it('a token without sub → ERR_AUTH_TOKEN_INVALID', async () => {
      const token = await signHmac({ scope: 'a' }, secret);
      expectRejected(await get('/hs', token), 'ERR_AUTH_TOKEN_INVALID', token, undefined, 'The token has no subject.');
    });
  });
});

describe.each(expressVersions)('JWKS key source (%s)', (_label, express) => {
  it('picks up a rotated key without restart and drops the retired one', async () => {
    const keyA = await createKeyPair('RS256', 'key-a');
    const keyB = await createKeyPair('RS256', 'key-b');
    const jwks = await startJwksServer([keyA.jwk]);
    const server = express();
    server.get('/me', authenticate({ jwt: { jwksUri: jwks.jwksUri, algorithms: ['RS256'], jwksRefetchPerMinute: 600 } }), (req, res) => {
      res.json((req as { user?: unknown }).user);
    });
    const app = await listen(server);
    try {
      const tokenA = await signWith(keyA, { sub: 'a' });
      expect((await request(app.url).get('/me').set('Authorization', `Bearer ${tokenA}`).expect(200)).body.id).toBe('a');
      expect((await request(app.url).get('/me').set('Authorization', `Bearer ${tokenA}`).expect(200)).body.id).toBe('a');
      expect(jwks.fetches).toBe(1); // cached

      jwks.setKeys([keyB.jwk]);
      await new Promise((resolve) => setTimeout(resolve, 250)); // past the 100 ms refetch cooldown
      const tokenB = await signWith(keyB, { sub: 'b' });
      expect((await request(app.url).get('/me').set('Authorization', `Bearer ${tokenB}`).expect(200)).body.id).toBe('b');
      expect(jwks.fetches).toBe(2);

      // Key A is gone from the reloaded set.
      const retired = await request(app.url).get('/me').set('Authorization', `Bearer ${tokenA}`);
      expectRejected(retired, 'ERR_AUTH_TOKEN_INVALID', tokenA, undefined, 'The token was signed with an unknown key.');
    } finally {
      await app.close();
      await jwks.close();
    }
  });

  it('a flood of tokens with random kids is 401 and cannot make the gateway hammer the JWKS endpoint', async () => {
    const known = await createKeyPair('RS256');
    const jwks = await startJwksServer([known.jwk]);
    const server = express();
    // The failed-authentication budget would answer 429 after 20 of these; this test is about the JWKS refetch limit.
    server.get('/me', authenticate({ jwt: { jwksUri: jwks.jwksUri, algorithms: ['RS256'], jwksRefetchPerMinute: 6 }, failureLimit: false }), (_req, res) => {
      res.json({ ok: true });
    });
    const app = await listen(server);
    try {
      const tokens = await Promise.all(Array.from({ length: 50 }, () => signWith({ ...known, kid: randomKid() }, { sub: 'flood' })));
      const statuses: number[] = [];
      // Ten at a time, all 50 in a couple of seconds at most.
      for (let i = 0; i < tokens.length; i += 10) {
        const batch = await Promise.all(tokens.slice(i, i + 10).map((token) => request(app.url).get('/me').set('Authorization', `Bearer ${token}`)));
        for (const res of batch) {
          statuses.push(res.status);
          expect(res.body.code).toBe('ERR_AUTH_TOKEN_INVALID');
          expect(res.body.detail).toBe('The token was signed with an unknown key.');
        }
      }
      expect(statuses).toEqual(Array(50).fill(401));
      expect(jwks.fetches).toBeGreaterThanOrEqual(1);
      expect(jwks.fetches).toBeLessThanOrEqual(2);
      // The known key still works.
      await request(app.url).get('/me').set('Authorization', `Bearer ${await signWith(known, { sub: 'ok' })}`).expect(200);
    } finally {
      await app.close();
      await jwks.close();
    }
  });

  it('an endpoint answering 500 or not answering within jwksTimeout → 503; keys already fetched keep working', async () => {
    const known = await createKeyPair('RS256');
    const jwks = await startJwksServer([known.jwk]);
    const server = express();
    const auth = authenticate({ jwt: { jwksUri: jwks.jwksUri, algorithms: ['RS256'], jwksRefetchPerMinute: 600, jwksTimeout: '300ms' } });
    server.get('/me', auth, (_req, res) => {
      res.json({ ok: true });
    });
    const cold = express();
    cold.get('/me', authenticate({ jwt: { jwksUri: jwks.jwksUri, algorithms: ['RS256'], jwksTimeout: '300ms' } }), (_req, res) => {
      res.json({ ok: true });
    });
    const app = await listen(server);
    const coldApp = await listen(cold);
    const bearer = async (kid?: string) => `Bearer ${await signWith(kid ? { ...known, kid } : known, { sub: 'u' })}`;
    try {
      await request(app.url).get('/me').set('Authorization', await bearer()).expect(200);
      jwks.setMode('error');
      const failing = await request(coldApp.url).get('/me').set('Authorization', await bearer());
      expect(failing.status).toBe(503);
      expect(failing.body.code).toBe('ERR_AUTH_UNAVAILABLE');
      jwks.setMode('hang');
      const hanging = await request(coldApp.url).get('/me').set('Authorization', await bearer());
      expect(hanging.status).toBe(503);
      expect(hanging.body.code).toBe('ERR_AUTH_UNAVAILABLE');
      // The warm app still verifies tokens of the key it already has.
      await new Promise((resolve) => setTimeout(resolve, 150));
      await request(app.url).get('/me').set('Authorization', await bearer()).expect(200);
    } finally {
      await app.close();
      await coldApp.close();
      await jwks.close();
    }
  });

  it('a JWKS endpoint that is down at first use answers 503 ERR_AUTH_UNAVAILABLE, not 401', async () => {
    const key = await createKeyPair('RS256');
    const port = await closedPort();
    const server = express();
    server.get('/me', authenticate({ jwt: { jwksUri: `http://127.0.0.1:${port}/jwks.json`, algorithms: ['RS256'] } }), (_req, res) => {
      res.json({ ok: true });
    });
    const app = await listen(server);
    try {
      const token = await signWith(key, { sub: 'u' });
      const res = await request(app.url).get('/me').set('Authorization', `Bearer ${token}`);
      expect(res.status).toBe(503);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.body).toMatchObject({ status: 503, code: 'ERR_AUTH_UNAVAILABLE' });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect(res.text).not.toContain(token);
    } finally {
      await app.close();
    }
  });
});
