/**
 * Shutdown: proxy().close() and gateway().close() resolve, close the pooled keep-alive connections
 * (the upstream sees them close, long before its own keep-alive timeout), and stop active health
 * checks. This suite itself must leave no open handles (checked with `jest --detectOpenHandles`).
 */
import type { Socket } from 'node:net';
import request from 'supertest';
import { gateway, proxy } from '../../index';
import { expressVersions, listen } from '../helpers/app';
import { gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';
import { sleep, waitFor } from '../helpers/wait';

/** Follows the upstream's TCP connections from now on: how many are open, and a wait for all to close. */
function trackSockets(upstream: Upstream) {
  const open = new Set<Socket>();
  let accepted = 0;
  let waiter: (() => void) | undefined;
  upstream.server.on('connection', (socket: Socket) => {
    accepted += 1;
    open.add(socket);
    socket.on('close', () => {
      open.delete(socket);
      if (open.size === 0 && waiter) waiter();
    });
  });
  return {
    get open() {
      return open.size;
    },
    get accepted() {
      return accepted;
    },
    /** Resolves true once every connection is closed, false if some are still open after `ms`. */
    allClosed(ms: number): Promise<boolean> {
      if (open.size === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiter = undefined;
          resolve(false);
        }, ms);
        waiter = () => {
          clearTimeout(timer);
          waiter = undefined;
          resolve(true);
        };
      });
    },
  };
}

/** Health-check requests the upstream has received so far. */
const healthChecks = (upstream: Upstream) => upstream.requests.filter((r) => r.url === '/health').length;

describe.each(expressVersions)('close() frees pooled upstream connections (%s)', (_label, express) => {
  it('proxy().close() resolves and the upstream sees every pooled keep-alive socket close', async () => {
    const upstream = await startUpstream({ name: 'pooled' });
    const sockets = trackSockets(upstream);
    const p = proxy({ target: upstream.url });
    const server = express();
    server.use(p);
    const app = await listen(server);
    try {
      // Concurrent requests open several pooled connections; they stay open (keep-alive) afterwards.
      await Promise.all(Array.from({ length: 4 }, (_, i) => request(app.url).get(`/items/${i}`).expect(200)));
      await request(app.url).get('/items/again').expect(200);
      await sleep(100);
      expect(sockets.accepted).toBeGreaterThanOrEqual(1);
      expect(sockets.open).toBe(sockets.accepted); // the pool kept them all
      await expect(p.close()).resolves.toBeUndefined();
      // The upstream's own keep-alive timeout is 5 s: closing within 2 s is the gateway's doing.
      expect(await sockets.allClosed(2_000)).toBe(true);
    } finally {
      await p.close();
      await app.close();
      await upstream.close();
    }
  });

  it('gateway().close() resolves and closes the pooled sockets of every route', async () => {
    const orders = await startUpstream({ name: 'orders' });
    const users = await startUpstream({ name: 'users' });
    const ordersSockets = trackSockets(orders);
    const usersSockets = trackSockets(users);
    const app = await gatewayApp(
      {
        routes: [
          { path: '/orders', upstream: orders.url },
          { path: '/users', upstream: { targets: [users.url] } },
        ],
      },
      { express },
    );
    try {
      await Promise.all([
        request(app.url).get('/orders/1').expect(200),
        request(app.url).get('/orders/2').expect(200),
        request(app.url).get('/users/1').expect(200),
      ]);
      await sleep(100);
      expect(ordersSockets.open).toBeGreaterThanOrEqual(1);
      expect(usersSockets.open).toBeGreaterThanOrEqual(1);
      await expect(app.gw.close()).resolves.toBeUndefined();
      expect(await ordersSockets.allClosed(2_000)).toBe(true);
      expect(await usersSockets.allClosed(2_000)).toBe(true);
    } finally {
      await app.close();
      await orders.close();
      await users.close();
    }
  });
});

describe('close() stops active health checks', () => {
  it('proxy(): after close() the upstream /health receives no more checks', async () => {
    const upstream = await startUpstream({ name: 'checked' });
    const p = proxy({ target: upstream.url, health: { active: { interval: '100ms', timeout: '1s' } } });
    try {
      // The checks run: the first one at once, then every 100 ms.
      await waitFor(() => healthChecks(upstream) >= 3, 2_000);
      await p.close();
      await sleep(50); // a check already on the wire when close() ran may still land
      const afterClose = healthChecks(upstream);
      await sleep(350); // three more intervals
      expect(healthChecks(upstream)).toBe(afterClose);
    } finally {
      await p.close();
      await upstream.close();
    }
  });

  it('gateway(): after close() no route keeps checking its upstream', async () => {
    const a = await startUpstream({ name: 'a' });
    const b = await startUpstream({ name: 'b' });
    const gw = gateway({
      routes: [
        { path: '/a', upstream: { target: a.url, health: { active: { interval: 100 } } } },
        { path: '/b', upstream: { targets: [b.url], health: { active: { path: '/health', interval: '100ms' } } } },
      ],
    });
    try {
      await waitFor(() => healthChecks(a) >= 2 && healthChecks(b) >= 2, 2_000);
      await gw.close();
      await sleep(50);
      const afterClose = [healthChecks(a), healthChecks(b)];
      await sleep(350);
      expect([healthChecks(a), healthChecks(b)]).toEqual(afterClose);
    } finally {
      await gw.close();
      await a.close();
      await b.close();
    }
  });

  it('close() may be called more than once', async () => {
    const upstream = await startUpstream();
    const p = proxy({ target: upstream.url, health: { active: true } });
    const gw = gateway({ routes: [{ path: '/x', upstream: { target: upstream.url, health: { active: true } } }] });
    try {
      await expect(p.close()).resolves.toBeUndefined();
      await expect(p.close()).resolves.toBeUndefined();
      await expect(gw.close()).resolves.toBeUndefined();
      await expect(gw.close()).resolves.toBeUndefined();
    } finally {
      await upstream.close();
    }
  });
});
