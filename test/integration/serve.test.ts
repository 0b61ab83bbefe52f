/**
 * `frontdoor serve` through child processes, as an operator runs it (`node bin/frontdoor.js serve …` on the built
 * dist; npm test's pretest builds it): routes and the 404 problem, the admin port, a SIGTERM during a slow request,
 * readiness during the drain, workers restarted after a crash and reloading on change, TLS and mTLS auth.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestPki, opensslAvailable } from '../helpers/certs';
import type { TestPki } from '../helpers/certs';
import { expectProblem } from '../helpers/problem';
import { closedPort, startUpstream } from '../helpers/upstream';
import type { Upstream } from '../helpers/upstream';
import { sleep } from '../helpers/wait';

jest.setTimeout(30_000);

const bin = path.join(__dirname, '..', '..', 'bin', 'frontdoor.js');

interface Served {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output (waiting for it), at most `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

function serve(args: string[]): Served {
  const child = spawn(process.execPath, [bin, 'serve', ...args], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let text = '';
  const waiting = new Set<() => void>();
  const append = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const check of waiting) check();
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      for (const check of waiting) check();
      resolve({ code, signal });
    }),
  );
  return {
    child,
    output: () => text,
    exited,
    waitFor(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(check);
          reject(new Error(`no ${pattern} in the output of frontdoor serve within ${timeoutMs} ms:\n${text}`));
        }, timeoutMs);
        function check() {
          const match = pattern.exec(text);
          if (match) {
            clearTimeout(timer);
            waiting.delete(check);
            resolve(match);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            waiting.delete(check);
            reject(new Error(`frontdoor serve exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}:\n${text}`));
          }
        }
        waiting.add(check);
        check();
      });
    },
  };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on a new connection (no keep-alive: with workers, each may land on another process). */
function get(url: string, options: https.RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, { agent: false, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const json = (answer: Answer) => JSON.parse(answer.body) as Record<string, unknown>;

let dir: string;
let upstream: Upstream;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'frontdoor-serve-'));
  // /slow answers after 1.5 s: long enough to send a SIGTERM while it is in flight.
  upstream = await startUpstream({
    name: 'orders',
    handler: (req, res) => {
      const answer = () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ url: req.url, consumer: req.headers['x-consumer-id'] ?? null }));
      };
      if (req.url?.includes('slow')) setTimeout(answer, 1500);
      else answer();
    },
  });
});

afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
});

afterAll(async () => {
  await upstream?.close();
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('frontdoor serve, one process', () => {
  it('proxies its routes, answers a 404 problem for the rest, keeps the admin endpoints off the public port, and drains on SIGTERM', async () => {
    const file = await configFile('gateway.yaml', `metrics: true\nroutes:\n  - path: /api/orders\n    upstream: ${upstream.url}\n`);
    const [port, adminPort] = [await closedPort(), await closedPort()];
    const served = serve([file, '--port', String(port), '--host', '127.0.0.1', '--admin-port', String(adminPort), '--drain-timeout', '10s']);
    await served.waitFor(/serving .* on http:\/\/127\.0\.0\.1:\d+/);
    const base = `http://127.0.0.1:${port}`;
    const admin = `http://127.0.0.1:${adminPort}`;

    const routed = await get(`${base}/api/orders/7?x=1`);
    expect(routed.status).toBe(200);
    expect(json(routed)).toEqual({ url: '/api/orders/7?x=1', consumer: null });

    const unmatched = await get(`${base}/nowhere`);
    expectProblem({ ...unmatched, body: unmatched.body }, 404, 'ERR_NO_ROUTE', { requestId: false });
    // The admin paths are not on the public listener: they are unmatched requests there.
    expectProblem(await get(`${base}/healthz`), 404, 'ERR_NO_ROUTE', { requestId: false });

    expect(json(await get(`${admin}/healthz`))).toMatchObject({ status: 'ok' });
    const ready = await get(`${admin}/readyz`);
    expect(ready.status).toBe(200);
    expect(json(ready)).toMatchObject({ ready: true, status: 'ready', routes: 1 });
    const metrics = await get(`${admin}/metrics`);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.body).toMatch(/http_server_request_duration_seconds_count\{[^}]*http_route="\/api\/orders"/);
    expectProblem(await get(`${admin}/api/orders/7`), 404, 'ERR_NO_ROUTE', { requestId: false });

    // SIGTERM while a slow request is in flight: it finishes; readiness turns 503 at once; liveness stays 200.
    const slow = get(`${base}/api/orders/slow`);
    await sleep(300);
    served.child.kill('SIGTERM');
    await served.waitFor(/SIGTERM: draining 1 requests in flight/);
    const draining = await get(`${admin}/readyz`);
    expect(draining.status).toBe(503);
    expect(json(draining)).toMatchObject({ ready: false, status: 'draining', inFlight: 1 });
    expect((await get(`${admin}/healthz`)).status).toBe(200);
    // No new connection is accepted on the public port once the drain started.
    await expect(get(`${base}/api/orders/1`)).rejects.toThrow(/ECONNREFUSED/);
    const finished = await slow;
    expect(finished.status).toBe(200);
    expect(json(finished).url).toBe('/api/orders/slow');
    expect(await served.exited).toEqual({ code: 0, signal: null });
    expect(served.output()).toMatch(/frontdoor: stopped/);
  });

  it('puts the admin endpoints on the public listener only when told to, and cuts what is still in flight when the drain timeout passes', async () => {
    const file = await configFile('cut.yaml', `routes:\n  - path: /api\n    upstream: ${upstream.url}\n`);
    const port = await closedPort();
    const served = serve([file, '--port', String(port), '--host', '127.0.0.1', '--admin-port', String(port), '--drain-timeout', '200ms']);
    await served.waitFor(/serving/);
    expect(json(await get(`http://127.0.0.1:${port}/readyz`))).toMatchObject({ ready: true, status: 'ready' });
    expect((await get(`http://127.0.0.1:${port}/api/1`)).status).toBe(200);
    const slow = get(`http://127.0.0.1:${port}/api/slow`).then(
      (answer) => answer.status,
      (err: Error) => err.message,
    );
    await sleep(300);
    served.child.kill('SIGTERM');
    expect(await slow).toMatch(/socket hang up|ECONNRESET/);
    expect(await served.exited).toEqual({ code: 0, signal: null });
    expect(served.output()).toMatch(/the drain timeout passed: 1 requests were cut/);
  });

  it('refuses a config file that does not check out (exit 1, file:line:column) and an unusable flag (exit 2)', async () => {
    const file = await configFile('bad.yaml', `routes:\n  - path: /api\n    upstrem: ${upstream.url}\n`);
    const bad = serve([file, '--port', String(await closedPort())]);
    expect(await bad.exited).toEqual({ code: 1, signal: null });
    expect(bad.output()).toMatch(/bad\.yaml:3:14: .*"routes\[0\]\.upstrem"\. Did you mean "routes\[0\]\.upstream"\?/);

    const flag = serve([file, '--workers', 'many']);
    expect(await flag.exited).toEqual({ code: 2, signal: null });
    expect(flag.output()).toMatch(/--workers must be a number of processes/);
    const tls = serve([file, '--cert', 'server.crt']);
    expect(await tls.exited).toEqual({ code: 2, signal: null });
    expect(tls.output()).toMatch(/--cert and --key go together/);
  });
});

describe('frontdoor serve --workers 2', () => {
  it('restarts a worker that dies, reloads the file in every worker, reports every worker on the admin port, and drains them all', async () => {
    const file = await configFile('workers.yaml', `metrics: true\nroutes:\n  - path: /api/orders\n    upstream: ${upstream.url}\n`);
    const [port, adminPort] = [await closedPort(), await closedPort()];
    const served = serve([file, '--port', String(port), '--host', '127.0.0.1', '--admin-port', String(adminPort), '--workers', '2', '--watch']);
    const base = `http://127.0.0.1:${port}`;
    const admin = `http://127.0.0.1:${adminPort}`;
    const [, firstPid] = await served.waitFor(/worker 1 \(pid (\d+)\) serving/);
    await served.waitFor(/worker 2 \(pid \d+\) serving/);
    expect(json(await get(`${admin}/readyz`))).toEqual({ ready: true, status: 'ready', workers: { ready: 2, wanted: 2 } });

    process.kill(Number(firstPid), 'SIGKILL');
    await served.waitFor(new RegExp(`worker 1 \\(pid ${firstPid}\\) exited with signal SIGKILL; restarting it in 100 ms`));
    const [, secondPid] = await served.waitFor(/restarting it in 100 ms\n(?:.*\n)*?.*worker 1 \(pid (\d+)\) serving/);
    expect(secondPid).not.toBe(firstPid);
    for (let i = 0; i < 4; i++) expect((await get(`${base}/api/orders/${i}`)).status).toBe(200);

    // Metrics of both workers in one exposition, each sample with its worker.
    const metrics = (await get(`${admin}/metrics`)).body;
    expect(metrics).toMatch(/http_server_request_duration_seconds_count\{worker="[12]",/);
    expect(metrics.match(/^# TYPE http_server_request_duration_seconds histogram$/gm)).toHaveLength(1);

    // --watch: a new route appears in every worker (each request on a new connection, handed out in turn).
    await writeFile(file, `metrics: true\nroutes:\n  - path: /api/orders\n    upstream: ${upstream.url}\n  - path: /api/users\n    upstream: ${upstream.url}\n`);
    const deadline = Date.now() + 10_000;
    let served200 = 0;
    while (served200 < 6 && Date.now() < deadline) {
      served200 = (await get(`${base}/api/users/1`)).status === 200 ? served200 + 1 : 0;
      if (served200 === 0) await sleep(100);
    }
    expect(served200).toBe(6);

    served.child.kill('SIGTERM');
    await served.waitFor(/SIGTERM: draining 2 workers/);
    expect(await served.exited).toEqual({ code: 0, signal: null });
  });
});

(opensslAvailable ? describe : describe.skip)('frontdoor serve over TLS', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = createTestPki();
  });
  afterAll(() => pki?.cleanup());

  it('serves HTTPS with --cert/--key, and with --ca the mtls scheme knows the client by its certificate', async () => {
    const write = (name: string, text: string) => configFile(name, text);
    const [cert, key, ca] = await Promise.all([write('server.crt', pki.server.cert), write('server.key', pki.server.key), write('ca.crt', pki.ca)]);
    const file = await configFile('tls.yaml', `routes:\n  - path: /api/open\n    upstream: ${upstream.url}\n  - path: /api/partners\n    upstream: ${upstream.url}\n    auth: { mtls: true }\n`);
    const port = await closedPort();
    const served = serve([file, '--port', String(port), '--host', '127.0.0.1', '--cert', cert, '--key', key, '--ca', ca]);
    await served.waitFor(/serving .* on https:\/\/127\.0\.0\.1:\d+/);
    const base = `https://127.0.0.1:${port}`;
    const alice = pki.client('alice');

    // A route without mtls serves a client without a certificate.
    expect((await get(`${base}/api/open/1`, { ca: pki.ca })).status).toBe(200);
    const known = await get(`${base}/api/partners/1`, { ca: pki.ca, ...alice });
    expect(known.status).toBe(200);
    expect(json(known)).toEqual({ url: '/api/partners/1', consumer: 'alice' });
    expectProblem(await get(`${base}/api/partners/1`, { ca: pki.ca }), 401, 'ERR_AUTH_MISSING');
    expectProblem(await get(`${base}/api/partners/1`, { ca: pki.ca, ...pki.foreignClient('alice') }), 401, 'ERR_AUTH_CERT_INVALID');
    // Plain HTTP on the TLS port fails the handshake, and nothing else.
    await expect(get(`http://127.0.0.1:${port}/api/open/1`)).rejects.toThrow();
    expect((await get(`${base}/api/open/2`, { ca: pki.ca })).status).toBe(200);

    served.child.kill('SIGTERM');
    expect(await served.exited).toEqual({ code: 0, signal: null });
  });
});
