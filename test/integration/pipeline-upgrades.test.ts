/**
 * Every feature of the registry says what it does on a WebSocket upgrade, and none is skipped silently:
 * each feature whose rule is `apply` is configured here to refuse, and the upgrade must be refused on the
 * socket with that feature's status and code, without reaching the upstream. A feature added to the
 * registry with `apply` and no fixture below fails this suite.
 */
import type { RouteOptions } from '../../index';
import { GATEWAY_FEATURES, ROUTE_FEATURES } from '../../middleware/features';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { settle } from '../helpers/wait';
import { rawUpgrade, startWsUpstream, WsUpstream } from '../helpers/websocket';

const secret = hmacSecret();
const jwt = { secret, algorithms: ['HS256' as const] };

interface Refusal {
  /** Route options that make this feature refuse the upgrade. */
  route: Partial<RouteOptions>;
  /** Headers of the upgrade (a token, say), and how many upgrades pass before the refusal. */
  headers?: () => Promise<Record<string, string>>;
  passing?: number;
  status: number;
  code: string;
}

/** One refusing configuration per feature whose upgrade rule is `apply` (the final handler excepted). */
const REFUSALS: Record<string, Refusal> = {
  ipFilter: { route: { ipFilter: { deny: ['127.0.0.1'] } }, status: 403, code: 'ERR_IP_DENIED' },
  auth: { route: { auth: { jwt } }, status: 401, code: 'ERR_AUTH_MISSING' },
  authorize: {
    route: { auth: { jwt }, authorize: { scopes: ['chat:join'] } },
    headers: async () => ({ Authorization: `Bearer ${await signHmac({ sub: 'u1', scope: 'chat:read' }, secret)}` }),
    status: 403,
    code: 'ERR_FORBIDDEN_SCOPE',
  },
  rateLimit: { route: { rateLimit: { limit: 1 } }, passing: 1, status: 429, code: 'ERR_RATE_LIMITED' },
};

describe('the feature registry on WebSocket upgrades', () => {
  let upstream: WsUpstream;
  beforeAll(async () => {
    upstream = await startWsUpstream();
  });
  afterAll(() => upstream.close());

  function upgradeApp(route: Partial<RouteOptions>): Promise<GatewayApp> {
    return gatewayApp({ routes: [{ path: '/ws', upstream: upstream.url, ws: true, ...route }] }, { upgrade: true });
  }

  it('declares an upgrade rule for every feature, with a reason wherever it does not apply', () => {
    for (const feature of [...ROUTE_FEATURES, ...GATEWAY_FEATURES]) {
      if (feature.upgrade.apply) continue;
      expect(feature.upgrade.reason.length).toBeGreaterThan(20);
    }
  });

  it('has a refusing fixture for every feature that applies to upgrades', () => {
    const applying = ROUTE_FEATURES.filter((feature) => feature.upgrade.apply && feature.phase !== 'final').map((feature) => feature.option);
    expect(applying.sort()).toEqual(Object.keys(REFUSALS).sort());
  });

  it.each(Object.entries(REFUSALS))('%s refuses an upgrade on the socket, and the upstream never sees it', async (_option, refusal) => {
    const app = await upgradeApp(refusal.route);
    try {
      const headers = (await refusal.headers?.()) ?? {};
      for (let i = 0; i < (refusal.passing ?? 0); i++) expect((await rawUpgrade(app.port, '/ws/room', headers)).status).toBe(101);
      const before = upstream.handshakes.length;
      const answer = await rawUpgrade(app.port, '/ws/room', headers);
      expect(answer.status).toBe(refusal.status);
      expect(answer.headers['content-type']).toBe('application/problem+json');
      expect(answer.headers.connection).toBe('close');
      expect(JSON.parse(answer.body)).toMatchObject({ status: refusal.status, code: refusal.code, requestId: expect.any(String) });
      await settle();
      expect(upstream.handshakes.length).toBe(before);
    } finally {
      await app.close();
    }
  });

  it('lets an upgrade through every applying feature when each allows it', async () => {
    const token = await signHmac({ sub: 'u1', scope: 'chat:join' }, secret);
    const app = await upgradeApp({ ipFilter: { allow: ['127.0.0.1'] }, auth: { jwt }, authorize: { scopes: ['chat:join'] }, rateLimit: { limit: 5 }, cors: true });
    try {
      const answer = await rawUpgrade(app.port, '/ws/room', { Authorization: `Bearer ${token}`, 'X-Consumer-Id': 'forged' });
      expect(answer.status).toBe(101);
      const handshake = upstream.handshakes[upstream.handshakes.length - 1];
      expect(handshake.url).toBe('/ws/room');
      expect(handshake.headers['x-consumer-id']).toBe('u1');
    } finally {
      await app.close();
    }
  });
});
