/**
 * gw.routes(): the current table as data — what the CLI, the dashboard and users' own tests read: paths,
 * methods, features in pipeline order, the migration stage, and the targets with their health right now.
 */
import { gateway } from '../../index';
import { rawRequest, listen } from '../helpers/app';
import { closedPort, startUpstream } from '../helpers/upstream';
import express from 'express';

describe('gw.routes()', () => {
  it('describes every route of the current table, with live target health', async () => {
    const service = await startUpstream({ name: 'service' });
    const down = `http://127.0.0.1:${await closedPort()}`;
    const gw = gateway({
      routes: [
        { path: '/admin', app: true, auth: { apiKey: { keys: { ['k'.repeat(32)]: { id: 'ops' } } } } },
        { name: 'orders', path: '/api/orders/:id', methods: ['GET'], upstream: service.url, shadow: { candidate: service.url } },
        { name: 'carts', path: '/api/carts', upstream: { targets: [service.url, down], retries: 1, health: { passive: { failures: 1, cooldown: '1m' } } }, cutover: { percent: 25 }, fallback: true, rateLimit: { limit: 100, window: '1m' } },
        { name: 'users', path: '/api/users', upstream: service.url },
      ],
    });
    const app = express();
    app.use(gw);
    const running = await listen(app);
    try {
      const byName = Object.fromEntries(gw.routes().map((route) => [route.name, route]));
      expect(byName['/admin']).toMatchObject({ path: '/admin', stage: 'monolith', final: 'app', features: ['auth', 'app'], targets: [] });
      expect(byName.orders).toMatchObject({ path: '/api/orders/:id', methods: ['GET', 'HEAD'], stage: 'shadow', features: ['shadow', 'upstream'] });
      expect(byName.carts).toMatchObject({ stage: 'cutover', cutover: 25, features: ['rateLimit', 'cutover', 'fallback', 'upstream'] });
      expect(byName.users).toMatchObject({ stage: 'service', final: 'upstream', targets: [{ url: service.url, healthy: true, state: 'healthy' }] });
      gw.setCutover('carts', 100);
      // Round robin sends one of two requests to the dead target, which one failure ejects.
      for (let i = 0; i < 2; i++) await rawRequest(running.port, { path: `/api/carts/${i}` });
      const carts = gw.routes().find((route) => route.name === 'carts');
      expect(carts?.cutover).toBe(100);
      expect(carts?.targets).toEqual(expect.arrayContaining([expect.objectContaining({ url: down, healthy: false, state: 'ejected' }), expect.objectContaining({ url: service.url, healthy: true })]));
    } finally {
      await running.close();
      await gw.close();
      await service.close();
    }
  });
});

describe('gw.reset()', () => {
  it('forgets counters, cached answers, failed-authentication counts and ejected targets, for test suites', async () => {
    const service = await startUpstream({ name: 'service' });
    const down = `http://127.0.0.1:${await closedPort()}`;
    const key = 'k'.repeat(32);
    const gw = gateway({
      routes: [
        { name: 'limited', path: '/limited', upstream: service.url, rateLimit: { limit: 2, window: '1h' } },
        { name: 'cached', path: '/cached', upstream: service.url, cache: { ttl: '1h' } },
        { name: 'keyed', path: '/keyed', upstream: service.url, auth: { apiKey: { keys: { [key]: { id: 'ops' } } }, failureLimit: { limit: 2, window: '1h' } } },
        { name: 'pool', path: '/pool', upstream: { targets: [service.url, down], retries: 1, health: { passive: { failures: 1, cooldown: '1h' } } } },
      ],
    });
    const app = express();
    app.use(gw);
    const running = await listen(app);
    const status = async (path: string, headers: Record<string, string> = {}) => (await rawRequest(running.port, { path, headers })).status;
    try {
      expect([await status('/limited/1'), await status('/limited/2'), await status('/limited/3')]).toEqual([200, 200, 429]);
      await rawRequest(running.port, { path: '/cached/1' });
      expect((await rawRequest(running.port, { path: '/cached/1' })).headers['x-cache']).toBe('HIT');
      expect([await status('/keyed', { 'x-api-key': 'wrong'.repeat(8) }), await status('/keyed', { 'x-api-key': 'wrong'.repeat(8) }), await status('/keyed', { 'x-api-key': key })]).toEqual([401, 401, 429]);
      for (let i = 0; i < 2; i++) await rawRequest(running.port, { path: `/pool/${i}` });
      expect(gw.routes().find((route) => route.name === 'pool')?.targets.find((target) => target.url === down)?.state).toBe('ejected');

      await gw.reset();

      expect(await status('/limited/4')).toBe(200);
      expect((await rawRequest(running.port, { path: '/cached/1' })).headers['x-cache']).toBe('MISS');
      expect(await status('/keyed', { 'x-api-key': key })).toBe(200);
      expect(gw.routes().find((route) => route.name === 'pool')?.targets.every((target) => target.state === 'healthy')).toBe(true);
    } finally {
      await running.close();
      await gw.close();
      await service.close();
    }
  });
});
