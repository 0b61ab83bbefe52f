/**
 * Errors that only the gateway sees reach an operator: problemHandler() turns any error into a problem
 * document (an app error no longer reaches Express's HTML page), and a 500 the gateway answers — a throwing
 * access rule — logs its cause while the client sees a generic problem.
 */
import express from 'express';
import request from 'supertest';
import { problemHandler } from '../../index';
import { listen } from '../helpers/app';
import { gatewayApp } from '../helpers/gateway-app';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';

describe('errors only the gateway sees', () => {
  let upstream: Upstream;
  let logged: unknown[][];
  let spy: jest.SpyInstance;
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(() => upstream.close());
  beforeEach(() => {
    logged = [];
    spy = jest.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      logged.push(args);
    });
  });
  afterEach(() => spy.mockRestore());

  it('problemHandler() answers an app error as a 500 problem, logs its cause, and leaks nothing', async () => {
    const server = express();
    server.get('/boom', () => {
      throw new Error('db password is hunter2');
    });
    server.use(problemHandler());
    const app = await listen(server);
    try {
      const res = await request(app.url).get('/boom');
      expect(res.status).toBe(500);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ status: 500, code: 'ERR_INTERNAL', requestId: res.headers['x-request-id'] });
      expect(res.text).not.toContain('hunter2');
      expect(logged).toHaveLength(1);
      expect(String(logged[0][0])).toContain(res.headers['x-request-id']);
      expect((logged[0][1] as Error).message).toBe('db password is hunter2');
    } finally {
      await app.close();
    }
  });

  it('a throwing authorize({ allow }) on a route is a 500 whose cause is logged', async () => {
    const secret = hmacSecret();
    const app = await gatewayApp({
      routes: [{ path: '/api', upstream: upstream.url, auth: { jwt: { secret, algorithms: ['HS256'] } }, authorize: { allow: () => { throw new TypeError('rule bug'); } } }],
    });
    try {
      const res = await request(app.url).get('/api/x').set('Authorization', `Bearer ${await signHmac({ sub: 'u1' }, secret)}`);
      expect(res.status).toBe(500);
      expect(res.body.code).toBe('ERR_INTERNAL');
      expect(logged.map((args) => (args[1] as Error)?.message)).toEqual(['rule bug']);
    } finally {
      await app.close();
    }
  });
});
