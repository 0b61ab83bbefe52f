import type { KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { authenticate, ConfigError } from '../../index';
import { createKeyResolver, KeyResolver, TokenRejected } from '../../lib/jwt-keys';
import { configError as thrownConfigError } from '../helpers/config';
import { createKeyPair, hmacSecret, signHmac, signWith, TestKeyPair, unsignedToken } from '../helpers/tokens';

const option = (key: string) => `jwt.${key}`;
type ResolverOptions = Parameters<typeof createKeyResolver>[0];

/** The ConfigError thrown by createKeyResolver(options). */
const configError = (options: ResolverOptions): ConfigError => thrownConfigError(() => createKeyResolver(options, option));

function resolveKey(resolve: KeyResolver, token: string): Promise<KeyObject> {
  return new Promise((resolvePromise, reject) => {
    resolve({} as IncomingMessage, token, (err, key) => (err ? reject(err) : resolvePromise(key as KeyObject)));
  });
}

describe('createKeyResolver configuration errors', () => {
  let rsa: TestKeyPair;
  let ec: TestKeyPair;
  const secret = hmacSecret(); // 64 hex chars = 64 bytes

  beforeAll(async () => {
    [rsa, ec] = await Promise.all([createKeyPair('RS256'), createKeyPair('ES256')]);
  });

  it('missing or empty algorithms → names jwt.algorithms', () => {
    expect(configError({ secret }).message).toMatch(/"jwt\.algorithms" is required/);
    expect(configError({ secret, algorithms: [] }).message).toMatch(/"jwt\.algorithms" is required/);
    expect(configError({ secret, algorithms: 'HS256' }).message).toMatch(/"jwt\.algorithms"/);
  });

  it('HS256 with a PEM public key → names jwt.algorithms and jwt.secret', () => {
    const message = configError({ secret: rsa.publicPem, algorithms: ['HS256'] }).message;
    expect(message).toMatch(/"jwt\.algorithms" has HS256/);
    expect(message).toContain('"jwt.secret"');
  });

  it('RS256 with an HMAC secret → names jwt.algorithms and jwt.secret', () => {
    const message = configError({ secret, algorithms: ['RS256'] }).message;
    expect(message).toMatch(/"jwt\.algorithms" has RS256/);
    expect(message).toContain('"jwt.secret"');
    expect(configError({ secret, algorithms: ['HS256', 'ES256'] }).message).toMatch(/ES256/);
  });

  it('an algorithm of the wrong key family for the PEM → names jwt.algorithms', () => {
    expect(configError({ secret: rsa.publicPem, algorithms: ['ES256'] }).message).toMatch(/"jwt\.algorithms" has ES256/);
    expect(configError({ secret: ec.publicPem, algorithms: ['RS256'] }).message).toMatch(/"jwt\.algorithms" has RS256/);
  });

  it('an ES algorithm on another curve than the PEM key → names jwt.algorithms and the algorithm that fits', async () => {
    const p384 = await createKeyPair('ES384');
    const message = configError({ secret: p384.publicPem, algorithms: ['ES256', 'ES384'] }).message;
    expect(message).toMatch(/"jwt\.algorithms" has ES256, but the EC public key in "jwt\.secret" is on curve secp384r1; allow only ES384\./);
    expect(configError({ secret: ec.publicPem, algorithms: ['ES512'] }).message).toMatch(/has ES512.*curve prime256v1; allow only ES256/);
    expect(() => createKeyResolver({ secret: p384.publicPem, algorithms: ['ES384'] }, option)).not.toThrow();
  });

  it('an HMAC secret shorter than 32 bytes → names jwt.secret; 32 bytes is accepted', () => {
    expect(configError({ secret: 'x'.repeat(31), algorithms: ['HS256'] }).message).toMatch(/"jwt\.secret" is shorter than 32 bytes/);
    expect(configError({ secret: Buffer.alloc(16, 1), algorithms: ['HS256'] }).message).toMatch(/"jwt\.secret"/);
    expect(() => createKeyResolver({ secret: 'x'.repeat(32), algorithms: ['HS256'] }, option)).not.toThrow();
    expect(configError({ secret: '', algorithms: ['HS256'] }).message).toMatch(/"jwt\.secret"/);
  });

  it('both secret and jwksUri, or neither → names both options', () => {
    for (const options of [{ secret, jwksUri: 'http://127.0.0.1:1/jwks.json', algorithms: ['HS256'] }, { algorithms: ['RS256'] }]) {
      const message = configError(options).message;
      expect(message).toContain('"jwt.secret"');
      expect(message).toContain('"jwt.jwksUri"');
    }
  });

  it('HS256 with jwksUri → names jwt.algorithms and jwt.jwksUri', () => {
    const message = configError({ jwksUri: 'http://127.0.0.1:1/jwks.json', algorithms: ['RS256', 'HS256'] }).message;
    expect(message).toMatch(/"jwt\.algorithms" has HS256/);
    expect(message).toContain('"jwt.jwksUri"');
  });

  it('EdDSA → names jwt.algorithms and says it is unsupported', () => {
    expect(configError({ secret: rsa.publicPem, algorithms: ['EdDSA'] }).message).toMatch(/"jwt\.algorithms": EdDSA is not supported/);
    expect(configError({ jwksUri: 'http://127.0.0.1:1/jwks.json', algorithms: ['RS256', 'EdDSA'] }).message).toMatch(/EdDSA/);
  });

  it('unknown algorithms such as none → names jwt.algorithms', () => {
    expect(configError({ secret, algorithms: ['none'] }).message).toMatch(/"jwt\.algorithms" has "none"/);
    expect(configError({ secret, algorithms: ['hs256'] }).message).toMatch(/"jwt\.algorithms"/);
  });

  it('a relative jwksUri, a non-positive refetch rate and malformed PEM → name their options', () => {
    expect(configError({ jwksUri: '/jwks.json', algorithms: ['RS256'] }).message).toMatch(/"jwt\.jwksUri" must be an absolute URL/);
    expect(configError({ jwksUri: 'http://127.0.0.1:1/jwks.json', algorithms: ['RS256'], jwksRefetchPerMinute: 0 }).message).toMatch(/"jwt\.jwksRefetchPerMinute"/);
    expect(configError({ jwksUri: 'http://127.0.0.1:1/jwks.json', algorithms: ['RS256'], jwksRefetchPerMinute: -1 }).message).toMatch(/"jwt\.jwksRefetchPerMinute"/);
    expect(configError({ secret: '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n', algorithms: ['RS256'] }).message).toMatch(/"jwt\.secret" looks like PEM/);
  });

  it('authenticate() names the jwt.* option path in its errors', () => {
    expect(() => authenticate({ jwt: { secret, algorithms: [] } })).toThrow(/"jwt\.algorithms"/);
    expect(() => authenticate({ jwt: { secret: 'short', algorithms: ['HS256'] } })).toThrow(/"jwt\.secret"/);
    expect(() => authenticate({ jwt: { secret, algorithms: ['EdDSA' as never] } })).toThrow(/EdDSA/);
    expect(() => authenticate({ jwt: { secret, algorithms: ['HS256'], clockTolerance: 'soon' } })).toThrow(/jwt\.clockTolerance/);
    expect(() => authenticate({ jwt: { secret, algorithms: ['HS256'], secrt: 'x' } as never })).toThrow(/jwt\.secrt/);
  });
});

describe('createKeyResolver pins the key to the allow-list', () => {
  it('resolves the configured key for a well-formed token of an allowed algorithm', async () => {
    const secret = hmacSecret();
    const { resolve, algorithms } = createKeyResolver({ secret, algorithms: ['HS256'] }, option);
    expect(algorithms).toEqual(['HS256']);
    const key = await resolveKey(resolve, await signHmac({ sub: 'u' }, secret));
    expect(key.type).toBe('secret');
    expect(key.export().toString('utf8')).toBe(secret);
  });

  it('refuses alg none, other algorithms and embedded keys before any verification', async () => {
    const rsa = await createKeyPair('RS256');
    const { resolve } = createKeyResolver({ secret: rsa.publicPem, algorithms: ['RS256'] }, option);
    expect((await resolveKey(resolve, await signWith(rsa, { sub: 'u' }))).asymmetricKeyType).toBe('rsa');
    await expect(resolveKey(resolve, unsignedToken({ sub: 'u' }))).rejects.toBeInstanceOf(TokenRejected);
    await expect(resolveKey(resolve, await signHmac({ sub: 'u' }, rsa.publicPem))).rejects.toThrow(/invalid algorithm/);
    for (const header of [{ jwk: rsa.jwk }, { jku: 'http://127.0.0.1:1/jwks.json' }, { x5u: 'http://127.0.0.1:1/cert.pem' }, { x5c: ['MIIB'] }]) {
      await expect(resolveKey(resolve, await signWith(rsa, { sub: 'u' }, { header }))).rejects.toThrow(/own key/);
    }
    await expect(resolveKey(resolve, 'garbage')).rejects.toBeInstanceOf(TokenRejected);
  });
});
