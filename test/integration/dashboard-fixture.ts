/**
 * A shop halfway through its migration, for the dashboard's suites: a monolith (an in-process Express app) behind
 * a gateway with a route in every stage — monolith only (`admin`), shadow (`users`, compared with a candidate that
 * differs on some users), cutover (`orders`, 50 % sticky by header, with fallback), service only (`catalog`, two
 * targets of which one is dead, one of them with a user and password in its URL), and a service route whose only
 * target is dead so fallback hands every request to the monolith (`payments`). The dashboard is mounted at
 * `/_frontdoor` behind Basic auth.
 */
import express from 'express';
import { gateway } from '../../index';
import type { Gateway } from '../../index';
import { dashboard, dashboardRecorder, DashboardRecorder } from '../../middleware/dashboard';
import type { DashboardOptions } from '../../middleware/dashboard';
import { listen, RunningApp } from '../helpers/app';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';

export const OPERATOR = { username: 'operator', password: 'correct horse battery staple' };
export const BASIC = `Basic ${Buffer.from(`${OPERATOR.username}:${OPERATOR.password}`).toString('base64')}`;
/** The password in a target's URL: it must never reach the page. */
export const TARGET_PASSWORD = 'hunter2-in-the-url';
/** A user's email the shadow redacts: it must never reach the page either. */
export const SECRET_EMAIL = 'grace.private@example.com';

const USERS: Record<string, { id: number; name: string; email: string; plan: string }> = {
  '1': { id: 1, name: 'Ada', email: 'ada.private@example.com', plan: 'pro' },
  '2': { id: 2, name: 'Grace', email: SECRET_EMAIL, plan: 'free' },
};

export interface MigrationShop {
  url: string;
  gw: Gateway;
  recorder: DashboardRecorder;
  app: RunningApp;
  /** Sends a fixed mix of requests to every route; resolves once they are answered. */
  traffic(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Fills the recorder with 15 minutes of made-up traffic before the real requests, so sparklines have a shape
 * (the docs' screenshot). The recorder's clock is shifted back for it, then runs on real time.
 */
function backfill(recorder: DashboardRecorder, shift: { ms: number }): void {
  const start = Date.now() - 15 * 60_000;
  for (let bucket = 0; bucket < 89; bucket++) {
    shift.ms = start + bucket * 10_000 - Date.now();
    const wave = 1 + Math.sin(bucket / 9);
    const perRoute: Array<[string, number, 'service' | 'monolith' | 'edge']> = [
      ['admin', Math.round(2 * wave), 'edge'],
      ['users', Math.round(6 * wave), 'edge'],
      ['orders', Math.round(12 * wave) + 2, bucket % 2 ? 'service' : 'monolith'],
      ['catalog', Math.round(9 * wave) + 1, 'service'],
      ['payments', Math.round(1 + wave), 'monolith'],
    ];
    for (const [route, count, side] of perRoute) {
      for (let i = 0; i < count; i++) {
        const failed = route === 'catalog' && bucket > 60 && bucket < 66 && i === 0;
        recorder.record({ route, durationMs: side === 'service' ? 8 + ((i * 7) % 30) : 20 + ((i * 13) % 60), status: failed ? 502 : 200, side, ...(route === 'orders' ? { cutover: side === 'service' ? 'service' : 'monolith' } : {}), ...(route === 'payments' ? { fallback: 'unavailable' } : {}) });
      }
    }
  }
  shift.ms = 0;
}

export async function startMigrationShop(dashboardOptions: Partial<DashboardOptions> = {}, setup: { history?: boolean } = {}): Promise<MigrationShop> {
  const upstreams: Upstream[] = [];
  const orders = await startUpstream({ name: 'orders-service' });
  upstreams.push(orders);
  const catalog = await startUpstream({
    name: 'catalog-service',
    handler: (req, res) => {
      const broken = req.url?.startsWith('/api/catalog/broken');
      res.writeHead(broken ? 500 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(broken ? { error: 'boom' } : { items: [{ id: 'p-1' }] }));
    },
  });
  upstreams.push(catalog);
  // The candidate of `users`: right about Ada, wrong about Grace's plan (and her email, which is redacted).
  const candidate = await startUpstream({
    name: 'users-v2',
    handler: (req, res) => {
      const id = req.url?.split('/').pop() ?? '';
      const user = USERS[id];
      const answer = id === '2' && user ? { ...user, email: 'someone.else@example.com', plan: 'enterprise' } : user;
      res.writeHead(answer ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer ?? { error: 'not found' }));
    },
  });
  upstreams.push(candidate);
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const catalogWithPassword = catalog.url.replace('http://', `http://svc:${TARGET_PASSWORD}@`);

  const shift = { ms: setup.history ? -15 * 60_000 : 0 };
  const recorder = new DashboardRecorder({ now: () => Date.now() + shift.ms });
  if (setup.history) backfill(recorder, shift);
  const gw = gateway({
    routes: [
      { name: 'admin', path: '/admin', app: true },
      { name: 'users', path: '/api/users', shadow: { candidate: candidate.url, redact: ['email'] } },
      { name: 'orders', path: '/api/orders', upstream: orders.url, cutover: { percent: 50, sticky: { header: 'x-user' } }, fallback: true },
      { name: 'catalog', path: '/api/catalog', upstream: { targets: [dead, catalogWithPassword], retries: 1, health: { passive: { failures: 2, cooldown: '1m' } } } },
      { name: 'payments', path: '/api/payments', upstream: dead, fallback: true },
    ],
  });
  const app = express();
  app.use(dashboardRecorder({ recorder }));
  app.use(gw);
  app.use('/_frontdoor', dashboard({ gateway: gw, recorder, auth: OPERATOR, ...dashboardOptions }));
  app.get('/admin', (_req, res) => void res.json({ page: 'admin' }));
  app.get('/api/users/:id', (req, res) => {
    const user = USERS[req.params.id];
    if (!user) return void res.status(404).json({ error: 'not found' });
    res.json(user);
  });
  app.get('/api/orders/:id', (req, res) => void res.json({ id: req.params.id, from: 'monolith' }));
  app.get('/api/payments', (_req, res) => void res.json({ from: 'monolith' }));
  const running = await listen(app);

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${running.url}${path}`, { headers });
    await res.arrayBuffer();
  };
  return {
    url: running.url,
    gw,
    recorder,
    app: running,
    async traffic() {
      for (let i = 0; i < 3; i++) await get('/admin');
      for (const id of ['1', '2', '1', '2']) await get(`/api/users/${id}`);
      for (let i = 0; i < 24; i++) await get(`/api/orders/${i}`, { 'x-user': `user-${i}` });
      for (let i = 0; i < 4; i++) await get('/api/catalog');
      await get('/api/catalog/broken');
      for (let i = 0; i < 2; i++) await get('/api/payments');
    },
    async close() {
      await running.close();
      await gw.close();
      await Promise.all(upstreams.map((upstream) => upstream.close()));
    },
  };
}
