/**
 * The default access logger (`accessLog: true`, pino on stdout) writes without blocking; these child processes
 * check that no line is lost on the ways a gateway process ends: process.exit() right after the last response,
 * an uncaught exception, and `frontdoor serve`'s shutdown on SIGTERM. With `sync: true` the line is on stdout
 * before the response's other close listeners run. Each child runs the TypeScript sources through ts-node and
 * writes its stdout to a file that the test counts lines in.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startUpstream } from '../helpers/upstream';
import type { Upstream } from '../helpers/upstream';
import { waitFor } from '../helpers/wait';

jest.setTimeout(60_000);

const root = path.join(__dirname, '..', '..');
const LINES = 300;

/**
 * A gateway with one route to UPSTREAM and `accessLog: ACCESS_LOG`, driven by its own keep-alive client: LINES
 * requests, 16 at a time, then END: `exit` (process.exit(0) at once), `throw` (an uncaught exception) or
 * `close` (close everything and let the process end). With PROBE set, the request `line-probe` checks in a
 * close listener added after the gateway's whether its line is already in the stdout file.
 */
const CHILD = `
const fs = require('node:fs');
const http = require('node:http');
const express = require('express');
const { gateway } = require('./index');
const { LINES, END, UPSTREAM, ACCESS_LOG, PROBE } = process.env;
const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
(async () => {
  const gw = gateway({ routes: [{ path: '/api', upstream: UPSTREAM }], accessLog: JSON.parse(ACCESS_LOG) });
  const app = express();
  app.use(gw);
  const server = http.createServer(app);
  if (PROBE) server.on('request', (req, res) => setImmediate(() => res.on('close', () => {
    if (req.headers['x-request-id'] !== 'line-probe') return;
    const out = fs.readFileSync('/proc/self/fd/1', 'utf8');
    process.stderr.write(out.includes('"requestId":"line-probe"') ? 'PROBE:written\\n' : 'PROBE:pending\\n');
  })));
  const port = await listen(server);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const get = (id) => new Promise((resolve, reject) =>
    http.get({ host: '127.0.0.1', port, path: '/api/' + id, agent, headers: { 'x-request-id': id } }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject));
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => { while (next < Number(LINES)) await get('line-' + next++); }));
  if (PROBE) await get('line-probe');
  if (END === 'exit') process.exit(0);
  if (END === 'throw') throw new Error('crash after the last response');
  agent.destroy();
  await gw.close();
  server.close();
})();
`;

interface Ended {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let upstream: Upstream;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'frontdoor-access-log-'));
  upstream = await startUpstream({ name: 'orders' });
});

afterAll(async () => {
  await upstream?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs `args` in a child (cwd: the project) with its stdout in a file; resolves once it exited. */
function runChild(args: string[], env: NodeJS.ProcessEnv, name: string, whileRunning?: (child: ReturnType<typeof spawn>, stdout: () => string) => Promise<void>): Promise<Ended> {
  const file = path.join(dir, `${name}.out`);
  const fd = openSync(file, 'w');
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', ...args], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', fd, 'pipe'] });
  closeSync(fd);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const stdout = () => readFileSync(file, 'utf8');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
  return (async () => {
    try {
      await whileRunning?.(child, stdout);
    } finally {
      // Whatever happened, the child does not outlive the test.
      let grace: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<null>((resolve) => (grace = setTimeout(() => resolve(null), 20_000)))]);
      clearTimeout(grace);
      clearTimeout(timer);
      if (code === null && child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    return { code: child.exitCode, stdout: stdout(), stderr };
  })();
}

/** The request ids of the access-log lines in `stdout` (every line must be whole JSON). */
function loggedIds(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg?: string; requestId?: string })
    .filter((line) => line.msg === 'request')
    .map((line) => String(line.requestId));
}

const expectedIds = Array.from({ length: LINES }, (_, i) => `line-${i}`);

describe('the default access logger loses no line when the process ends', () => {
  it('process.exit() right after the last response: every line is written, once', async () => {
    const ended = await runChild(['-e', CHILD], { LINES: String(LINES), END: 'exit', UPSTREAM: upstream.url, ACCESS_LOG: 'true' }, 'exit');
    expect(ended.code).toBe(0);
    expect(loggedIds(ended.stdout).sort()).toEqual([...expectedIds].sort());
  });

  it('an uncaught exception after the last response: every line is written, once', async () => {
    const ended = await runChild(['-e', CHILD], { LINES: String(LINES), END: 'throw', UPSTREAM: upstream.url, ACCESS_LOG: 'true' }, 'throw');
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain('crash after the last response');
    expect(loggedIds(ended.stdout).sort()).toEqual([...expectedIds].sort());
  });

  it('frontdoor serve, SIGTERM after the last response: every line is written before it exits', async () => {
    const file = path.join(dir, 'serve.json');
    await writeFile(file, JSON.stringify({ accessLog: true, routes: [{ name: 'orders', path: '/api', upstream: upstream.url }] }));
    // As bin/frontdoor.js runs the CLI, on the TypeScript sources.
    const cli = `require('./lib/cli').main([process.execPath, 'frontdoor', 'serve', ${JSON.stringify(file)}, '--port', '0', '--host', '127.0.0.1']).then((code) => { process.exitCode = code; setTimeout(() => process.exit(code), 1000).unref(); })`;
    const ended = await runChild(['-e', cli], {}, 'serve', async (child, stdout) => {
      let port = 0;
      await waitFor(() => {
        port = Number(/serving .* on http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout())?.[1] ?? 0);
        return port > 0 || child.exitCode !== null;
      }, 40_000);
      expect(port).toBeGreaterThan(0);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      const get = (id: string) =>
        new Promise<number>((resolve, reject) =>
          http
            .get({ host: '127.0.0.1', port, path: `/api/${id}`, agent, headers: { 'x-request-id': id } }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            })
            .on('error', reject),
        );
      let next = 0;
      const statuses: number[] = [];
      await Promise.all(Array.from({ length: 16 }, async () => { while (next < LINES) statuses.push(await get(`line-${next++}`)); }));
      agent.destroy();
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
      child.kill('SIGTERM');
    });
    expect(ended.code).toBe(0);
    expect(ended.stdout).toContain('SIGTERM: draining');
    expect(loggedIds(ended.stdout).sort()).toEqual([...expectedIds].sort());
  });
});

describe('accessLog({ sync: true })', () => {
  it('writes each line before the response’s later close listeners run, and every line by exit', async () => {
    const ended = await runChild(['-e', CHILD], { LINES: '20', END: 'close', UPSTREAM: upstream.url, ACCESS_LOG: JSON.stringify({ sync: true }), PROBE: '1' }, 'sync');
    expect(ended.code).toBe(0);
    expect(ended.stderr).toContain('PROBE:written');
    expect(loggedIds(ended.stdout)).toHaveLength(21);
  });
});
