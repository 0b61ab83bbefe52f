/**
 * The explicit "hand back to the app" exit: a route with `app: true` runs its policies, then the app's own
 * handlers answer, seeing the request as the client sent it and the consumer as req.user.
 */
import express from 'express';
import { ConfigError, gateway } from '../../index';
import type { Gateway } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { hmacSecret, signHmac } from '../helpers/tokens';

const secret = hmacSecret();

describe('routes handed back to the app', () => {
  let app: RunningApp;
  let gw: Gateway;

  beforeAll(async () => {
    gw = gateway({ routes: [{ path: '/admin', auth: { jwt: { secret, algorithms: ['HS256'] } }, authorize: { scopes: ['admin'] }, app: true }] });
    const server = express();
    server.use(gw);
    server.get('/admin/users', (req, res) => res.json({ servedBy: 'monolith', url: req.url, user: (req as { user?: { id: string } }).user?.id, authorization: Boolean(req.headers.authorization) }));
    app = await listen(server);
  });
  afterAll(async () => {
    await app.close();
    await gw.close();
  });

  it('answers the route policies at the edge', async () => {
    const res = await rawRequest(app.port, { path: '/admin/users' });
    expect(res.status).toBe(401);
    const reader = await rawRequest(app.port, { path: '/admin/users', headers: { Authorization: `Bearer ${await signHmac({ sub: 'u1', scope: 'read' }, secret)}` } });
    expect(reader.status).toBe(403);
  });

  it('then lets the app answer, with the consumer and the request as sent', async () => {
    const res = await rawRequest(app.port, { path: '/admin/users?page=2', headers: { Authorization: `Bearer ${await signHmac({ sub: 'root', scope: 'admin' }, secret)}` } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ servedBy: 'monolith', url: '/admin/users?page=2', user: 'root', authorization: true });
  });

  it('needs exactly one final handler', () => {
    expect(() => gateway({ routes: [{ path: '/a', app: true, upstream: 'http://127.0.0.1:9' }] })).toThrow(/more than one final handler/);
    expect(() => gateway({ routes: [{ path: '/a', app: 'yes' as never }] })).toThrow(ConfigError);
    expect(() => gateway({ routes: [{ path: '/a' }] })).toThrow(/Missing "routes\[0\]\.upstream".*app: true/);
  });
});
