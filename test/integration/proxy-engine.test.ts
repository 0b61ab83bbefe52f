/**
 * The proxy engine (http-proxy-middleware 3 on http-proxy 1.18.1) never calls util._extend, which Node 22+
 * deprecates at run time (DEP0060, printed on the app's stderr): lib/proxy-engine.ts. Node 20 prints nothing
 * for it even with --pending-deprecation, so the calls are counted here, on every line; the default-exporter
 * tests (tracing-exporter.test.ts) check a real app's stderr on 22 and 24.
 */
import util from 'node:util';
import WebSocket from 'ws';
import type * as Index from '../../index';
import { listen, RunningApp } from '../helpers/app';
import { startUpstream, Upstream } from '../helpers/upstream';
import { closeClient, opened, startWsUpstream, WsUpstream } from '../helpers/websocket';

const node = util as unknown as { _extend: (target: object, source: unknown) => object };

describe('the proxy engine and util._extend (DEP0060)', () => {
  const real = node._extend;
  let calls = 0;
  let upstream: Upstream;
  let wsUpstream: WsUpstream;
  let app: RunningApp;
  let gw: Index.Gateway;

  beforeAll(async () => {
    // Counted from before the engine loads: a copy of http-proxy that bound util._extend would call this.
    node._extend = (target, source) => {
      calls += 1;
      return Object.assign(target, source);
    };
    let gateway!: typeof Index.gateway;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ({ gateway } = require('../../index') as typeof Index);
    });
    upstream = await startUpstream({ name: 'api' });
    wsUpstream = await startWsUpstream();
    gw = gateway({ routes: [{ path: '/api', upstream: upstream.url }, { path: '/live', upstream: wsUpstream.url, ws: true }] });
    app = await listen((req, res) => gw(req as never, res as never, () => res.writeHead(404).end()));
    app.server.on('upgrade', gw.upgrade);
  });
  afterAll(async () => {
    node._extend = real;
    await gw.close();
    await app.close();
    await upstream.close();
    await wsUpstream.close();
  });

  it('puts util._extend back as it found it once the engine has loaded', () => {
    expect(node._extend).not.toBe(real); // the counter above, still in place
    expect(calls).toBe(0);
  });

  it('forwards a request with a body and a WebSocket without calling util._extend', async () => {
    const res = await fetch(`${app.url}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-trace': 'a' }, body: '{"id":1}' });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0].headers['x-trace']).toBe('a');

    const ws = new WebSocket(`${app.url.replace('http', 'ws')}/live`);
    const greeting = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    await opened(ws);
    expect(await greeting).toBe('hello from upstream');
    await closeClient(ws);

    expect(calls).toBe(0);
  });
});
