/**
 * The bytes the client sent are the bytes the upstream gets (adoption issue, item 2). The payloads that
 * re-serialisation breaks — a 20-digit id, a decimal written 1.10, a duplicate key, form arrays — arrive
 * unchanged when the gateway runs before the body parsers, and when a parser ran first with
 * `verify: keepRawBody`. Without either, the body is re-serialised and the gateway warns once per route.
 */
import { keepRawBody } from '../../index';
import { expressVersions, rawRequest, RunningApp } from '../helpers/app';
import { ExpressApp, GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';

const JSON_BODY = '{"id": 12345678901234567890, "price": 1.10, "a":1, "a":2}';
const FORM_BODY = 'a[]=1&a[]=2&c';

describe.each(expressVersions)('request body bytes (%s)', (_label, express) => {
  let upstream: Upstream;
  let warnings: string[];
  let spy: jest.SpyInstance;
  const started: GatewayApp[] = [];

  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    for (const app of started) await app.close();
    await upstream.close();
  });
  beforeEach(() => {
    warnings = [];
    spy = jest.spyOn(console, 'warn').mockImplementation((message: unknown) => {
      warnings.push(String(message));
    });
  });
  afterEach(() => spy.mockRestore());

  async function start(setup: 'gateway first' | 'parsers with keepRawBody' | 'parsers first'): Promise<RunningApp> {
    const verify = setup === 'parsers with keepRawBody' ? keepRawBody : undefined;
    const parsers = (server: ExpressApp) => server.use(express.json({ verify }), express.urlencoded({ extended: true, verify }));
    const app = await gatewayApp({ routes: [{ path: '/api', upstream: upstream.url, name: 'orders' }] }, setup === 'gateway first' ? { express, after: parsers } : { express, before: parsers });
    started.push(app);
    return app;
  }

  async function send(app: RunningApp, type: string, body: string): Promise<string> {
    const res = await rawRequest(app.port, { method: 'POST', path: '/api/orders', headers: { 'content-type': type, 'content-length': String(Buffer.byteLength(body)) }, body });
    expect(res.status).toBe(200);
    const received = upstream.requests[upstream.requests.length - 1];
    expect(Number(received.headers['content-length'])).toBe(received.body.length);
    return received.body.toString('utf8');
  }

  it.each(['gateway first', 'parsers with keepRawBody'] as const)('forwards the JSON and form bytes unchanged (%s), without a warning', async (setup) => {
    const app = await start(setup);
    expect(await send(app, 'application/json', JSON_BODY)).toBe(JSON_BODY);
    expect(await send(app, 'application/x-www-form-urlencoded', FORM_BODY)).toBe(FORM_BODY);
    expect(warnings).toEqual([]);
  });

  it('re-serialises a body parsed before the gateway and warns once for the route, naming the fix', async () => {
    const app = await start('parsers first');
    expect(await send(app, 'application/json', JSON_BODY)).toBe('{"id":12345678901234567000,"price":1.1,"a":2}');
    expect(await send(app, 'application/json', JSON_BODY)).not.toBe(JSON_BODY);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/route "orders"/);
    expect(warnings[0]).toMatch(/keepRawBody/);
  });
});
