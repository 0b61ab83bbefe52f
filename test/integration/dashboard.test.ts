/**
 * dashboard(): the migration page and its state.json, against a real gateway with a route in every stage, real
 * upstreams and an in-process monolith (dashboard-fixture.ts). Who may open it, what it shows and never shows, and
 * the cutover change with its CSRF protection. Also the recorder's fixed-bound time series, with a fake clock.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import connect from 'connect';
import express from 'express';
import { ConfigError, gateway, GatewayError } from '../../index';
import { GATEWAY_FEATURES } from '../../middleware/features';
import { dashboard, dashboardRecorder, DashboardRecorder } from '../../middleware/dashboard';
import type { DashboardState } from '../../middleware/dashboard';
import type { DashboardView } from '../../lib/dashboard/view';
import { BUCKETS, histogramSlot, quantile } from '../../lib/dashboard/recorder';
import { expressVersions, listen } from '../helpers/app';
import { expectProblem } from '../helpers/problem';
import { signHmac } from '../helpers/tokens';
import { startSlowUpstream, startUpstream } from '../helpers/upstream';
import { waitFor } from '../helpers/wait';
import { BASIC, MigrationShop, OPERATOR, SECRET_EMAIL, startMigrationShop, TARGET_PASSWORD } from './dashboard-fixture';

type StateWithView = DashboardState & { view: DashboardView };

async function getState(shop: MigrationShop, headers: Record<string, string> = { authorization: BASIC }): Promise<{ status: number; text: string; state: StateWithView }> {
  const res = await fetch(`${shop.url}/_frontdoor/state.json`, { headers });
  const text = await res.text();
  return { status: res.status, text, state: res.status === 200 ? (JSON.parse(text) as StateWithView) : (undefined as never) };
}

function routeOf(state: DashboardState, name: string) {
  const route = state.routes.find((candidate) => candidate.name === name);
  if (!route) throw new Error(`no route ${name} in state.json`);
  return route;
}

/** Opens the page as the operator: the CSRF cookie it sets and the token of its forms. */
async function openPage(shop: MigrationShop): Promise<{ cookie: string; token: string; html: string }> {
  const res = await fetch(`${shop.url}/_frontdoor`, { headers: { authorization: BASIC } });
  const html = await res.text();
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
  const token = /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
  return { cookie, token, html };
}

function postForm(shop: MigrationShop, fields: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(`${shop.url}/_frontdoor/cutover`, {
    method: 'POST',
    redirect: 'manual',
    headers: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
}

async function problemOf(res: Response) {
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

describe('dashboard(): construction', () => {
  const gw = gateway({ routes: [{ path: '/api', upstream: 'http://127.0.0.1:9' }] });
  afterAll(() => gw.close());

  it('refuses to mount without auth unless public: true, naming the options', () => {
    expect(() => dashboard({ gateway: gw })).toThrow(ConfigError);
    expect(() => dashboard({ gateway: gw })).toThrow(/"auth".*"public: true"/);
    expect(() => dashboard({ gateway: gw, public: true })).not.toThrow();
  });

  it('refuses a public dashboard that allows changes, and auth together with public', () => {
    expect(() => dashboard({ gateway: gw, public: true, allowChanges: true })).toThrow(/"allowChanges" needs "auth"/);
    expect(() => dashboard({ gateway: gw, public: true, auth: OPERATOR })).toThrow(/"public" is true but "auth"/);
  });

  it('names the option that is wrong', () => {
    expect(() => dashboard({ gateway: {} as never, public: true })).toThrow(/"gateway"/);
    expect(() => dashboard({ gateway: gw, auth: { username: 'ops', password: '' } })).toThrow(/"auth.password"/);
    expect(() => dashboard({ gateway: gw, auth: { apiKey: [] } })).toThrow(/"auth.apiKey"/);
    expect(() => dashboard({ gateway: gw, auth: { jwt: { secret: 'x'.repeat(32), algorithms: ['HS256'] }, optional: true } })).toThrow(/"auth.optional"/);
    expect(() => dashboard({ gateway: gw, auth: { jwt: { algorithms: ['HS256'] } } as never })).toThrow(/auth\.jwt/);
    expect(() => dashboard({ gateway: gw, auth: OPERATOR, refresh: '10ms' })).toThrow(/"refresh"/);
    expect(() => dashboard({ gateway: gw, auth: OPERATOR, csrfSecret: 'short' })).toThrow(/"csrfSecret"/);
    expect(() => dashboard({ gateway: gw, auth: OPERATOR, colour: 'red' } as never)).toThrow(/colour/);
  });
});

describe('dashboard(): who may open it', () => {
  let shop: MigrationShop;
  beforeAll(async () => {
    shop = await startMigrationShop();
  });
  afterAll(() => shop.close());

  it('answers 401 problem+json with a Basic challenge without credentials, for the page, state.json and assets', async () => {
    for (const path of ['/_frontdoor', '/_frontdoor/state.json', '/_frontdoor/dashboard.js']) {
      const res = await fetch(`${shop.url}${path}`);
      const problem = await problemOf(res);
      expectProblem(problem, 401, 'ERR_AUTH_MISSING');
      expect(problem.headers['www-authenticate']).toMatch(/^Basic realm="frontdoor dashboard"/);
      expect(problem.body).not.toContain('routes');
    }
  });

  it('refuses a wrong password with 401, and lets the right one in', async () => {
    const wrong = await fetch(`${shop.url}/_frontdoor/state.json`, { headers: { authorization: `Basic ${Buffer.from('operator:guess').toString('base64')}` } });
    expectProblem(await problemOf(wrong), 401, 'ERR_AUTH_KEY_INVALID');
    expect((await getState(shop)).status).toBe(200);
  });

  it('takes an API key in its header or as the Basic password, stored as a digest', async () => {
    const key = 'k'.repeat(40);
    const digest = `sha256:${createHash('sha256').update(key).digest('hex')}`;
    const gw = gateway({ routes: [{ path: '/api', upstream: 'http://127.0.0.1:9' }] });
    const app = express();
    app.use('/ops', dashboard({ gateway: gw, auth: { apiKey: [digest] } }));
    const running = await listen(app);
    try {
      expect((await fetch(`${running.url}/ops/state.json`, { headers: { 'x-api-key': key } })).status).toBe(200);
      expect((await fetch(`${running.url}/ops/state.json`, { headers: { authorization: `Basic ${Buffer.from(`anyone:${key}`).toString('base64')}` } })).status).toBe(200);
      const wrong = await fetch(`${running.url}/ops/state.json`, { headers: { 'x-api-key': 'nope' } });
      expectProblem(await problemOf(wrong), 401, 'ERR_AUTH_KEY_INVALID');
      expectProblem(await problemOf(await fetch(`${running.url}/ops/`)), 401, 'ERR_AUTH_MISSING');
    } finally {
      await running.close();
      await gw.close();
    }
  });

  it('takes authenticate() options (a JWT here) and your own middleware', async () => {
    const secret = 'dashboard-jwt-secret-that-is-long-enough';
    const gw = gateway({ routes: [{ path: '/api', upstream: 'http://127.0.0.1:9' }] });
    const app = express();
    app.use('/jwt', dashboard({ gateway: gw, auth: { jwt: { secret, algorithms: ['HS256'] } } }));
    app.use('/own', dashboard({ gateway: gw, auth: (req, res, next) => (req.headers['x-staff'] === 'yes' ? next() : next(new GatewayError('ERR_FORBIDDEN', { detail: 'Staff only.' }))) }));
    const running = await listen(app);
    try {
      expectProblem(await problemOf(await fetch(`${running.url}/jwt/state.json`)), 401, 'ERR_AUTH_MISSING');
      const token = await signHmac({ sub: 'ops-1' }, secret);
      expect((await fetch(`${running.url}/jwt/state.json`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      expect((await fetch(`${running.url}/own/state.json`, { headers: { 'x-staff': 'yes' } })).status).toBe(200);
      // Your middleware's refusal is answered as problem+json.
      const refused = expectProblem(await problemOf(await fetch(`${running.url}/own/state.json`)), 403, 'ERR_FORBIDDEN');
      expect(refused.detail).toBe('Staff only.');
    } finally {
      await running.close();
      await gw.close();
    }
  });
});

describe('dashboard(): state.json of a gateway with a route in every stage', () => {
  let shop: MigrationShop;
  let state: StateWithView;
  let text: string;
  beforeAll(async () => {
    shop = await startMigrationShop();
    await shop.traffic();
    // Shadow copies are compared once the primary's answer ended: wait for all four.
    await waitFor(() => {
      const report = shop.gw.shadowReport('users');
      return report !== undefined && report.outcomes.match + report.outcomes.mismatch === 4;
    });
    ({ state, text } = await getState(shop));
  });
  afterAll(() => shop.close());

  it('lists every route with its stage, in migration order', () => {
    expect(state.routes.map((route) => [route.name, route.stage])).toEqual([
      ['admin', 'monolith'],
      ['users', 'shadow'],
      ['orders', 'cutover'],
      ['catalog', 'service'],
      ['payments', 'service'],
    ]);
    expect(state.stages).toEqual({ monolith: 1, shadow: 1, cutover: 1, service: 2 });
    expect(state.recording).toBe(true);
    expect(state.allowChanges).toBe(false);
  });

  it('counts requests, rates and 5xx answers per route', () => {
    expect(routeOf(state, 'admin').requests).toBe(3);
    expect(routeOf(state, 'users').requests).toBe(4);
    expect(routeOf(state, 'orders').requests).toBe(24);
    const catalog = routeOf(state, 'catalog');
    expect(catalog.requests).toBe(5);
    expect(catalog.errors).toBe(1);
    expect(catalog.errorRatio).toBeCloseTo(0.2, 5);
    expect(catalog.rps).toBeGreaterThan(0);
    expect(routeOf(state, 'admin').errorRatio).toBe(0);
    expect(catalog.series.requests).toHaveLength(BUCKETS);
    expect(catalog.series.requests.reduce((sum, count) => sum + count, 0)).toBe(5);
    expect(catalog.series.errors.reduce((sum, count) => sum + count, 0)).toBe(1);
  });

  it('gives latency of the service and of the monolith where each answered', () => {
    const orders = routeOf(state, 'orders');
    expect(orders.cutover).toEqual({ percent: 50, service: expect.any(Number), monolith: expect.any(Number) });
    expect(orders.cutover!.service + orders.cutover!.monolith).toBe(24);
    expect(orders.cutover!.service).toBeGreaterThan(0);
    expect(orders.cutover!.monolith).toBeGreaterThan(0);
    expect(orders.latency.service).toMatchObject({ requests: orders.cutover!.service, errors: 0 });
    expect(orders.latency.monolith).toMatchObject({ requests: orders.cutover!.monolith, errors: 0 });
    for (const side of [orders.latency.service!, orders.latency.monolith!]) {
      expect(side.p50Ms).toBeGreaterThan(0);
      expect(side.p99Ms).toBeGreaterThanOrEqual(side.p50Ms);
    }
    expect(routeOf(state, 'admin').latency).toEqual({ service: null, monolith: expect.objectContaining({ requests: 3 }) });
    expect(routeOf(state, 'catalog').latency).toEqual({ service: expect.objectContaining({ requests: 5, errors: 1 }), monolith: null });
  });

  it('shows the shadow match ratio and the latest differences, redacted as the shadow says', () => {
    const users = routeOf(state, 'users');
    expect(users.shadow).toMatchObject({ compared: 4, match: 2, mismatch: 2, matchRatio: 0.5 });
    expect(users.shadow!.samples[0]).toMatchObject({ method: 'GET', path: '/api/users/2', primary: 200, candidate: 200 });
    const differences = users.shadow!.samples[0].differences;
    expect(differences).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'body.plan', primary: 'free', candidate: 'enterprise' })]));
    expect(differences.find((difference) => difference.path === 'body.email')).toMatchObject({ primary: '[redacted]', candidate: '[redacted]' });
    expect(users.shadow!.fields.map((field) => field.path)).toContain('body.plan');
    expect(state.view.texts[`routes.${state.routes.indexOf(users)}.shadow`]).toBe('50.0 % of 4');
  });

  it('counts fallbacks by trigger', () => {
    expect(routeOf(state, 'payments').fallbacks).toEqual({ total: 2, byTrigger: { unavailable: 2 } });
    expect(routeOf(state, 'payments').latency.monolith).toMatchObject({ requests: 2 });
    expect(routeOf(state, 'orders').fallbacks).toEqual({ total: 0, byTrigger: {} });
    expect(routeOf(state, 'admin').fallbacks).toBeNull();
  });

  it('lists the upstream targets with their health and last error, without the password in a URL', () => {
    const catalog = state.upstreams.find((upstream) => upstream.routes.includes('catalog'));
    expect(catalog?.targets).toHaveLength(2);
    const [dead, live] = catalog!.targets;
    // The dead target is payments' too: its last error names whichever route failed on it last.
    expect(dead).toMatchObject({ health: 'ejected', lastError: { code: 'ECONNREFUSED', route: expect.stringMatching(/^(catalog|payments)$/) } });
    expect(dead.retryInSeconds === null || dead.retryInSeconds > 0).toBe(true);
    expect(live).toMatchObject({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), health: 'healthy', lastError: { code: 'HTTP 500' } });
    const u = state.upstreams.indexOf(catalog!);
    expect(state.view.texts[`upstreams.${u}.0.health`]).toMatch(/^ejected/);
    expect(state.view.tones[`upstreams.${u}.0.health`]).toBe('bad');
    expect(state.view.texts[`upstreams.${u}.1.health`]).toBe('healthy');
    expect(state.view.texts[`upstreams.${u}.0.lastError`]).toMatch(/^ECONNREFUSED, \d+ s ago \((catalog|payments)\)$/);
    expect(text).not.toContain(TARGET_PASSWORD);
  });

  it('never shows a secret, a redacted value or a full identity', () => {
    expect(text).not.toContain(TARGET_PASSWORD);
    expect(text).not.toContain(SECRET_EMAIL);
    expect(text).not.toContain(OPERATOR.password);
  });

  it('formats what the page shows in view, with tones', () => {
    const index = state.routes.findIndex((route) => route.name === 'catalog');
    expect(state.view.texts[`routes.${index}.errors`]).toBe('20.0 %');
    expect(state.view.tones[`routes.${index}.errors`]).toBe('bad');
    expect(state.view.texts[`routes.${state.routes.findIndex((route) => route.name === 'payments')}.fallbacks`]).toBe('unavailable 2');
    expect(state.view.sparks).toHaveLength(state.routes.length);
    expect(state.view.sparks[index].requests.split(' ')).toHaveLength(BUCKETS);
  });

  it('serves a page with every route, stage and number, under a CSP without inline script or style', async () => {
    const res = await fetch(`${shop.url}/_frontdoor`, { headers: { authorization: BASIC } });
    const html = await res.text();
    expect(res.headers.get('content-security-policy')).toBe("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    for (const route of state.routes) expect(html).toContain(`data-route="${route.name}"`);
    for (const stage of ['monolith', 'shadow', 'cutover', 'service']) expect(html).toContain(`<span class="stage" data-stage="${stage}">${stage}</span>`);
    expect(html).toContain('>20.0 %<');
    expect(html).toContain('>50 %<');
    // Every script is a file the handler serves; no style or event handler attribute.
    expect(html.match(/<script[^>]*>/g)).toEqual([expect.stringMatching(/^<script src="\/_frontdoor\/dashboard\.js\?v=[\w-]+" defer>$/)]);
    expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/i);
    expect(html).not.toContain('<form');
    expect(html).not.toContain(TARGET_PASSWORD);
    expect(html).not.toContain(SECRET_EMAIL);
  });

  it('serves its assets itself, with ETags', async () => {
    for (const [path, type] of [['/_frontdoor/dashboard.js', 'text/javascript'], ['/_frontdoor/dashboard.css', 'text/css'], ['/_frontdoor/favicon.svg', 'image/svg+xml']]) {
      const res = await fetch(`${shop.url}${path}`, { headers: { authorization: BASIC } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      const etag = res.headers.get('etag') ?? '';
      expect((await fetch(`${shop.url}${path}`, { headers: { authorization: BASIC, 'if-none-match': etag } })).status).toBe(304);
    }
    // Unknown paths under the mount are the app's (a 404 here).
    expect((await fetch(`${shop.url}/_frontdoor/nothing`, { headers: { authorization: BASIC } })).status).toBe(404);
  });

  it('follows a reload of the gateway: new stages, a new page shape', async () => {
    const before = state.view.shape;
    const orders = shop.gw.routes().find((route) => route.name === 'orders');
    const target = orders!.targets[0].url;
    await shop.gw.reload({
      routes: [
        { name: 'admin', path: '/admin', app: true },
        { name: 'orders', path: '/api/orders', upstream: target },
      ],
    });
    const { state: after } = await getState(shop);
    expect(after.routes.map((route) => [route.name, route.stage])).toEqual([
      ['admin', 'monolith'],
      ['orders', 'service'],
    ]);
    // The numbers recorded before the reload stay with the route's name.
    expect(routeOf(after, 'orders').requests).toBe(24);
    expect(after.view.shape).not.toBe(before);
  });
});

describe('dashboard(): changing a cutover percentage', () => {
  it('is refused (403) when changes are off, and the page has no form', async () => {
    const shop = await startMigrationShop();
    try {
      const { html } = await openPage(shop);
      expect(html).not.toContain('<form');
      const res = await postForm(shop, { route: 'orders', percent: '80' });
      const problem = expectProblem(await problemOf(res), 403, 'ERR_FORBIDDEN');
      expect(problem.detail).toMatch(/read-only.*allowChanges: true/);
      expect(shop.gw.control<{ percent: number }>('orders', 'cutover')?.percent).toBe(50);
    } finally {
      await shop.close();
    }
  });

  describe('with allowChanges: true', () => {
    let shop: MigrationShop;
    beforeAll(async () => {
      shop = await startMigrationShop({ allowChanges: true });
    });
    afterAll(() => shop.close());

    it('changes the percentage with a form post carrying the token and its cookie, then redirects to the page', async () => {
      const { cookie, token, html } = await openPage(shop);
      expect(cookie).toMatch(/^frontdoor_dashboard_csrf=[\w-]{43}$/);
      expect(html).toContain('<form class="cutover" method="post" action="/_frontdoor/cutover">');
      const res = await postForm(shop, { csrf: token, route: 'orders', percent: '80' }, { cookie });
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe('/_frontdoor/');
      expect(shop.gw.control<{ percent: number }>('orders', 'cutover')?.percent).toBe(80);
      const { state } = await getState(shop);
      expect(routeOf(state, 'orders').cutover?.percent).toBe(80);
      // Who changed it, masked: the page never shows an identity in full.
      expect(state.changes[0]).toMatchObject({ route: 'orders', from: 50, to: 80, by: 'op•••' });
      expect(JSON.stringify(state)).not.toContain('operator');
    });

    it('takes JSON with the token in X-CSRF-Token and answers JSON', async () => {
      const { cookie, token } = await openPage(shop);
      const res = await fetch(`${shop.url}/_frontdoor/cutover`, {
        method: 'POST',
        headers: { authorization: BASIC, cookie, 'content-type': 'application/json', 'x-csrf-token': token },
        body: JSON.stringify({ route: 'orders', percent: 12.5 }),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ route: 'orders', from: 80, to: 12.5 });
      expect(shop.gw.control<{ percent: number }>('orders', 'cutover')?.percent).toBe(12.5);
    });

    it('refuses a post without the token, without the cookie, with a forged token, or from another site (403)', async () => {
      const { cookie, token } = await openPage(shop);
      const attempts: Array<[Record<string, string>, Record<string, string>, RegExp]> = [
        [{ route: 'orders', percent: '100' }, { cookie }, /token is missing/],
        [{ csrf: token, route: 'orders', percent: '100' }, {}, /cookie is missing/],
        [{ csrf: `${token.slice(0, -2)}xx`, route: 'orders', percent: '100' }, { cookie }, /does not match/],
        [{ csrf: token, route: 'orders', percent: '100' }, { cookie, origin: 'https://evil.example' }, /another origin/],
        [{ csrf: token, route: 'orders', percent: '100' }, { cookie, 'sec-fetch-site': 'cross-site' }, /another site/],
      ];
      for (const [fields, headers, detail] of attempts) {
        const problem = expectProblem(await problemOf(await postForm(shop, fields, headers)), 403, 'ERR_FORBIDDEN');
        expect(problem.detail).toMatch(detail);
      }
      // A token of another cookie does not do either.
      const other = await openPage(shop);
      expectProblem(await problemOf(await postForm(shop, { csrf: other.token, route: 'orders', percent: '100' }, { cookie })), 403, 'ERR_FORBIDDEN');
      expect(shop.gw.control<{ percent: number }>('orders', 'cutover')?.percent).not.toBe(100);
    });

    it('refuses a change without credentials (401) before anything else', async () => {
      const { cookie, token } = await openPage(shop);
      const res = await fetch(`${shop.url}/_frontdoor/cutover`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${token}&route=orders&percent=100` });
      expectProblem(await problemOf(res), 401, 'ERR_AUTH_MISSING');
    });

    it('answers 400 for a route without cutover or a percentage out of range, 415 for another body type, 413 past 4 kB', async () => {
      const { cookie, token } = await openPage(shop);
      const noCutover = expectProblem(await problemOf(await postForm(shop, { csrf: token, route: 'catalog', percent: '10' }, { cookie })), 400, 'ERR_BAD_REQUEST_BODY');
      expect(noCutover.detail).toMatch(/route "catalog" has no cutover; routes with one: orders/);
      expectProblem(await problemOf(await postForm(shop, { csrf: token, route: 'orders', percent: '101' }, { cookie })), 400, 'ERR_BAD_REQUEST_BODY');
      expectProblem(await problemOf(await postForm(shop, { csrf: token, route: 'orders', percent: 'lots' }, { cookie })), 400, 'ERR_BAD_REQUEST_BODY');
      const text = await fetch(`${shop.url}/_frontdoor/cutover`, { method: 'POST', headers: { authorization: BASIC, cookie, 'content-type': 'text/plain' }, body: 'percent=1' });
      expectProblem(await problemOf(text), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      const large = await postForm(shop, { csrf: token, route: 'orders', percent: '1', pad: 'x'.repeat(5000) }, { cookie });
      expectProblem(await problemOf(large), 413, 'ERR_BODY_TOO_LARGE');
    });
  });
});

describe('dashboard(): mounting', () => {
  it('serves at the root of a node:http server (the admin port), with links from the root', async () => {
    const upstream = await startUpstream();
    const gw = gateway({ routes: [{ name: 'api', path: '/api', upstream: upstream.url }] });
    const handler = dashboard({ gateway: gw, public: true, title: 'Shop <edge>' });
    const server = http.createServer((req, res) => handler(req, res, undefined as never));
    const running = await listen(server.listeners('request')[0] as http.RequestListener);
    try {
      const res = await fetch(`${running.url}/`);
      const html = await res.text();
      expect(res.status).toBe(200);
      expect(html).toContain('<title>Shop &lt;edge&gt; · migration</title>');
      expect(html).toContain('src="/dashboard.js?v=');
      expect(html).toContain('data-base=""');
      // Nothing records requests into the default recorder here: the page says how to turn it on.
      expect(html).toContain('dashboard: true');
      expect((await fetch(`${running.url}/nothing`)).status).toBe(404);
    } finally {
      await running.close();
      await gw.close();
      await upstream.close();
    }
  });

  it.each(expressVersions)('mounts under a path on %s, its links starting there', async (_label, makeExpress) => {
    const gw = gateway({ routes: [{ name: 'api', path: '/api', upstream: 'http://127.0.0.1:9' }] });
    const app = makeExpress();
    app.use('/ops/dash', dashboard({ gateway: gw, auth: OPERATOR }));
    app.use((_req, res) => void res.status(404).send('app 404'));
    const running = await listen(app);
    try {
      for (const path of ['/ops/dash', '/ops/dash/']) {
        const html = await (await fetch(`${running.url}${path}`, { headers: { authorization: BASIC } })).text();
        expect(html).toContain('src="/ops/dash/dashboard.js?v=');
        expect(html).toContain('data-base="/ops/dash"');
      }
      const other = await fetch(`${running.url}/ops/dash/other`, { headers: { authorization: BASIC } });
      expect(other.status).toBe(404);
      // What falls through to the app carries none of the page's headers.
      expect(other.headers.get('content-security-policy')).toBeNull();
      expect(await other.text()).toBe('app 404');
    } finally {
      await running.close();
      await gw.close();
    }
  });

  it('mounts under a path on connect', async () => {
    const gw = gateway({ routes: [{ name: 'api', path: '/api', upstream: 'http://127.0.0.1:9' }] });
    const app = connect();
    app.use('/ops', dashboard({ gateway: gw, auth: OPERATOR }) as connect.NextHandleFunction);
    const running = await listen(app as unknown as http.RequestListener);
    try {
      const html = await (await fetch(`${running.url}/ops`, { headers: { authorization: BASIC } })).text();
      expect(html).toContain('src="/ops/dashboard.js?v=');
      const state = await fetch(`${running.url}/ops/state.json`, { headers: { authorization: BASIC } });
      expect(((await state.json()) as DashboardState).routes.map((route) => route.name)).toEqual(['api']);
    } finally {
      await running.close();
      await gw.close();
    }
  });

  // Turns on by itself once dashboardFeature is registered in GATEWAY_FEATURES (middleware/features.ts).
  const registered = GATEWAY_FEATURES.some((feature) => feature.option === 'dashboard');
  (registered ? it : it.skip)('records through the gateway option dashboard: { recorder } (needs dashboardFeature registered)', async () => {
    const upstream = await startUpstream();
    const recorder = new DashboardRecorder();
    const gw = gateway({ dashboard: { recorder }, routes: [{ name: 'api', path: '/api', upstream: upstream.url }] } as never);
    const app = express();
    app.use(gw);
    app.use('/_frontdoor', dashboard({ gateway: gw, recorder, auth: OPERATOR }));
    const running = await listen(app);
    try {
      for (let i = 0; i < 3; i++) await (await fetch(`${running.url}/api/${i}`)).arrayBuffer();
      await waitFor(() => recorder.window('api', 60)?.requests === 3);
      const res = await fetch(`${running.url}/_frontdoor/state.json`, { headers: { authorization: BASIC } });
      const state = (await res.json()) as DashboardState;
      expect(state.recording).toBe(true);
      expect(routeOf(state, 'api')).toMatchObject({ requests: 3, latency: { service: { requests: 3 } } });
    } finally {
      await running.close();
      await gw.close();
      await upstream.close();
    }
    // A closed gateway stops feeding the recorder.
    expect(recorder.fed).toBe(false);
  });

  // Turns on by itself once gw.routes() reports each target's requests in flight (see docs/dashboard.md).
  const probe = gateway({ routes: [{ path: '/probe', upstream: 'http://127.0.0.1:9' }] });
  const reportsInFlight = 'inFlight' in (probe.routes()[0]?.targets[0] ?? {});
  void probe.close();
  (reportsInFlight ? it : it.skip)('shows the requests in flight to each target (needs inFlight in gw.routes())', async () => {
    const slow = await startSlowUpstream('slow', 1000);
    const gw = gateway({ routes: [{ name: 'api', path: '/api', upstream: slow.url }] });
    const app = express();
    app.use(gw);
    app.use('/_frontdoor', dashboard({ gateway: gw, auth: OPERATOR }));
    const running = await listen(app);
    try {
      const pending = [fetch(`${running.url}/api/1`), fetch(`${running.url}/api/2`)];
      const inFlight = async () => ((await (await fetch(`${running.url}/_frontdoor/state.json`, { headers: { authorization: BASIC } })).json()) as DashboardState).upstreams[0].targets[0].inFlight;
      const deadline = Date.now() + 3000;
      let seen = await inFlight();
      while (seen !== 2 && Date.now() < deadline) seen = await inFlight();
      expect(seen).toBe(2);
      await Promise.all(pending.map(async (answer) => (await answer).arrayBuffer()));
      expect(await inFlight()).toBe(0);
    } finally {
      await running.close();
      await gw.close();
      await slow.close();
    }
  });

  it('counts a request once when the standalone recorder is mounted twice', async () => {
    const upstream = await startUpstream();
    const recorder = new DashboardRecorder();
    const gw = gateway({ routes: [{ name: 'api', path: '/api', upstream: upstream.url }] });
    const app = express();
    const record = dashboardRecorder({ recorder });
    app.use(record);
    app.use(record);
    app.use(gw);
    const running = await listen(app);
    try {
      await (await fetch(`${running.url}/api/1`)).arrayBuffer();
      await (await fetch(`${running.url}/elsewhere`)).arrayBuffer();
      await waitFor(() => recorder.window('api', 60)?.requests === 1);
      expect(recorder.routeNames()).toEqual(['api']);
    } finally {
      record.close();
      await running.close();
      await gw.close();
      await upstream.close();
    }
  });
});

describe('DashboardRecorder: 15 minutes in fixed memory', () => {
  it('keeps 90 buckets of 10 s, reusing a bucket when its 10 s come round again', () => {
    let now = 1_000_000_000_000;
    const recorder = new DashboardRecorder({ now: () => now });
    recorder.record({ route: 'r', durationMs: 5, status: 200, side: 'service' });
    now += 10_000;
    recorder.record({ route: 'r', durationMs: 5, status: 503, side: 'service' });
    let series = recorder.series('r');
    expect(series.requests.slice(-2)).toEqual([1, 1]);
    expect(series.errors.slice(-2)).toEqual([0, 1]);
    // 15 minutes on, the first two buckets have left the window and their slots are reused.
    now += 15 * 60_000;
    recorder.record({ route: 'r', durationMs: 5, status: 200, side: 'service' });
    series = recorder.series('r');
    expect(series.requests.reduce((sum, count) => sum + count, 0)).toBe(1);
    expect(recorder.window('r', 300)?.requests).toBe(1);
  });

  it('answers windows of the last minute and five minutes, never claiming time before it started', () => {
    let now = 2_000_000_000_000;
    const recorder = new DashboardRecorder({ now: () => now });
    for (let i = 0; i < 30; i++) {
      recorder.record({ route: 'r', durationMs: 10, status: 200, side: 'monolith', cutover: 'monolith' });
      now += 1000;
    }
    const minute = recorder.window('r', 60)!;
    expect(minute.requests).toBe(30);
    expect(minute.seconds).toBeCloseTo(30, 0);
    expect(minute.cutover).toEqual({ service: 0, monolith: 30 });
    now += 120_000;
    expect(recorder.window('r', 60)).toBeUndefined();
    expect(recorder.window('r', 300)?.requests).toBe(30);
  });

  it('estimates percentiles within 25 %', () => {
    const histogram = new Uint32Array(56);
    for (let ms = 1; ms <= 1000; ms++) histogram[histogramSlot(ms)]++;
    const p50 = quantile(histogram, 1000, 0.5);
    const p99 = quantile(histogram, 1000, 0.99);
    expect(p50).toBeGreaterThan(500 * 0.75);
    expect(p50).toBeLessThan(500 * 1.25);
    expect(p99).toBeGreaterThan(990 * 0.75);
    expect(p99).toBeLessThan(990 * 1.25);
  });

  it('keeps at most maxRoutes routes, dropping the one seen least recently, and a bounded set of target errors', () => {
    let now = 3_000_000_000_000;
    const recorder = new DashboardRecorder({ now: () => now, maxRoutes: 3, maxTargets: 2 });
    for (const route of ['a', 'b', 'c', 'a', 'd']) {
      recorder.record({ route, durationMs: 1, status: 200, side: 'edge' });
      now += 1;
    }
    expect(recorder.routeNames().sort()).toEqual(['a', 'c', 'd']);
    recorder.upstreamFailed('http://x', 'ECONNREFUSED', 'a');
    recorder.upstreamFailed('http://y', 'HTTP 502', 'a');
    recorder.upstreamFailed('http://z', 'ERR_UPSTREAM_TIMEOUT', 'a');
    expect(recorder.lastError('http://x')).toBeUndefined();
    expect(recorder.lastError('http://z')).toMatchObject({ code: 'ERR_UPSTREAM_TIMEOUT' });
  });
});
