/**
 * headers(): request changes reach the upstream (templates filled from the consumer and the request),
 * response changes reach the client, identity headers stay the gateway's own, and no value with a line
 * break ever reaches a header.
 */
import express from 'express';
import { ConfigError, gateway, headers, proxy } from '../../index';
import type { Gateway, ProxyMiddleware } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';

const secret = hmacSecret();

describe('headers()', () => {
  let upstream: Upstream;
  let app: RunningApp;
  let gw: Gateway;
  let alone: ProxyMiddleware;

  beforeAll(async () => {
    upstream = await startUpstream({
      handler: (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', server: 'orders/1.2', 'x-powered-by': 'Express', 'x-old': 'kept' });
        res.end(JSON.stringify({ url: req.url }));
      },
    });
    gw = gateway({
      routes: [
        {
          path: '/api',
          name: 'orders',
          upstream: upstream.url,
          auth: { jwt: { secret, algorithms: ['HS256'] } },
          headers: {
            request: { set: { 'x-gateway': 'frontdoor', 'x-caller': '${consumer.id}/${consumer.tier}@${route}' }, remove: ['x-internal-debug'], rename: { 'x-old-trace': 'x-trace' }, append: { via: 'frontdoor' } },
            response: { remove: ['server', 'x-powered-by'], rename: { 'x-old': 'x-new' }, set: { 'x-request': '${requestId}' } },
          },
        },
      ],
    });
    alone = proxy({ target: upstream.url });
    const server = express();
    server.use(gw);
    server.use('/plain', headers({ request: { set: { 'x-who': '${consumer.id}' } } }), alone);
    app = await listen(server);
  });
  afterAll(async () => {
    await app.close();
    await gw.close();
    await alone.close();
    await upstream.close();
  });

  const token = (claims: Record<string, unknown>) => signHmac(claims, secret);

  it('changes the request the upstream gets, with templates filled in', async () => {
    const res = await rawRequest(app.port, { path: '/api/orders', headers: { Authorization: `Bearer ${await token({ sub: 'alice', tier: 'gold' })}`, 'X-Internal-Debug': '1', 'X-Old-Trace': 't-1', Via: '1.1 edge' } });
    expect(res.status).toBe(200);
    const received = upstream.requests[upstream.requests.length - 1].headers;
    expect(received['x-gateway']).toBe('frontdoor');
    expect(received['x-caller']).toBe('alice/gold@orders');
    expect(received['x-internal-debug']).toBeUndefined();
    expect(received['x-old-trace']).toBeUndefined();
    expect(received['x-trace']).toBe('t-1');
    expect(received.via).toBe('1.1 edge, frontdoor');
    expect(received['x-consumer-id']).toBe('alice');
  });

  it('changes the answer the client gets', async () => {
    const res = await rawRequest(app.port, { path: '/api/orders', headers: { Authorization: `Bearer ${await token({ sub: 'alice' })}` } });
    expect(res.headers.server).toBeUndefined();
    expect(res.headers['x-powered-by']).toBeUndefined();
    expect(res.headers['x-old']).toBeUndefined();
    expect(res.headers['x-new']).toBe('kept');
    expect(res.headers['x-request']).toBe(res.headers['x-request-id']);
  });

  it('refuses a templated value with a line break: 400, nothing forwarded', async () => {
    const before = upstream.requests.length;
    const res = await rawRequest(app.port, { path: '/api/orders', headers: { Authorization: `Bearer ${await token({ sub: 'evil\r\nx-admin: 1' })}` } });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).code).toBe('ERR_BAD_HEADER_VALUE');
    expect(upstream.requests.length).toBe(before);
  });

  it('works alone in front of proxy(), with an empty template when there is no consumer', async () => {
    expect((await rawRequest(app.port, { path: '/plain/x' })).status).toBe(200);
    expect(upstream.requests[upstream.requests.length - 1].headers['x-who']).toBe('');
  });

  it('fails at construction on a static line break, an unknown template, and an identity header', () => {
    expect(() => headers({ request: { set: { 'x-a': 'one\ntwo' } } })).toThrow(/"request\.set\.x-a" contains CR, LF or NUL/);
    expect(() => headers({ request: { set: { 'x-a': '${consumer.email}' } } })).toThrow(/unknown template \$\{consumer\.email\}/);
    expect(() => headers({ request: { remove: ['X-Consumer-Id'] } })).toThrow(ConfigError);
    expect(() => headers({ request: { remove: ['X-Consumer-Id'] }, allowIdentityOverride: true })).not.toThrow();
    expect(() => headers({ request: { set: { 'x-a': '${env.FRONTDOOR_SURELY_UNSET_VAR}' } } })).toThrow(/not set/);
  });
});
