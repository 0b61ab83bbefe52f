/**
 * The shop example the README sends people to: its smoke mode (real monolith, gateway and two orders
 * instances on ephemeral ports) passes with a check for every feature the example shows, and the
 * interactive mode `npm start` runs prints working URLs and tokens, writes access logs, prints the
 * ejection line when instance a stops, and shuts down cleanly on SIGTERM. Needs the built dist (`npm test` builds it first), because the
 * example requires the package by its name.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '..', '..');
const start = path.join(repo, 'examples', 'shop', 'start.js');

/** The payload of a JWT printed by the example (its `sub` tells alice's token from bob's). */
function claimsOf(token: string): { sub?: string; scope?: string } {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

describe('examples/shop', () => {
  beforeAll(() => {
    if (!existsSync(path.join(repo, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does) before this suite.');
  });

  it('passes its own smoke run: routing, auth, scopes, rate limit, bodies, logs, metrics, order summary, fail-over', async () => {
    const { stdout } = await run(process.execPath, [start, '--smoke'], { cwd: repo, timeout: 40_000 });
    const lines = stdout.trim().split('\n');
    expect(lines.filter((line) => line.startsWith('FAIL'))).toEqual([]);
    const passed = lines.filter((line) => line.startsWith('PASS'));
    // Each thing the README promises has its own check; none may quietly disappear from the smoke run.
    for (const topic of [/migration dashboard/, /load-balanced/, /monolith/, /\b401\b/, /\b403\b/, /201.*byte for byte/, /\b429\b.*carol/, /access log/, /\/metrics/,
      /refused connection is retried/, /ejection line/, /recovery line/, /order-summary\/1001 aggregates/, /summary .*partial/,
      /unknown order is 502/, /legacy handler is deleted/]) {
      expect({ topic: String(topic), found: passed.some((line) => topic.test(line)) }).toEqual({ topic: String(topic), found: true });
    }
    expect(lines[lines.length - 1]).toMatch(/^smoke: all \d+ checks passed$/);
  }, 45_000);

  it('interactive mode prints commands and tokens that work, access logs, the ejection line, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [start], {
      cwd: repo,
      env: { ...process.env, PORT: '0', ORDERS_PORT_A: '0', ORDERS_PORT_B: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    async function waitFor(pattern: RegExp, what: string): Promise<RegExpExecArray> {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const found = pattern.exec(output);
        if (found) return found;
        if (child.exitCode !== null) throw new Error(`the example exited (${child.exitCode}) before printing the ${what}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`the example printed no ${what} within 15 s:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    try {
      const base = (await waitFor(/monolith \+ gateway\s+(http:\/\/127\.0\.0\.1:\d+)/, 'URL'))[1];
      const instanceA = (await waitFor(/instance a\s+(http:\/\/127\.0\.0\.1:\d+)/, 'URL of instance a'))[1];
      await waitFor(/Ctrl\+C stops everything/, 'end of the instructions');

      // The tokens are printed inside the curl commands; alice's has orders:write, bob's does not.
      const tokens = [...output.matchAll(/^\s*(?:curl|for) .*Bearer ([\w-]+\.[\w-]+\.[\w-]+)'/gm)].map((found) => found[1]);
      const alice = tokens.find((token) => claimsOf(token).sub === 'alice');
      const bob = tokens.find((token) => claimsOf(token).sub === 'bob');
      expect(alice && bob).toBeTruthy();
      expect(output).toMatch(/curl -s http:\/\/127\.0\.0\.1:\d+\/metrics \| grep/);

      expect((await fetch(`${base}/api/orders`)).status).toBe(200);
      expect((await fetch(`${base}/api/users`)).status).toBe(200);
      const post = (token?: string) => fetch(`${base}/api/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: '{"userId":1,"items":[{"productId":"p-1","quantity":2}]}',
      });
      expect((await post()).status).toBe(401);
      expect((await post(bob)).status).toBe(403);
      expect((await post(alice)).status).toBe(201);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toContain(`frontdoor_upstream_healthy{frontdoor_upstream="${instanceA}`);

      // accessLog: true writes pino JSON lines to stdout.
      const logged = await waitFor(/^\{.*"route":"orders-write".*"status":201.*\}$/m, 'access log line for the POST');
      expect(JSON.parse(logged[0])).toMatchObject({ method: 'POST', consumer: 'alice', msg: 'request' });

      if (process.platform !== 'win32') {
        child.kill('SIGUSR2'); // stops instance a
        await waitFor(/instance a stopped/, '"instance a stopped"');
        for (let i = 0; i < 4; i++) expect((await fetch(`${base}/api/orders`)).status).toBe(200);
        await waitFor(new RegExp(`>> upstream ${instanceA.replace(/\./g, '\\.')}/? ejected for 5s`), 'ejection line');
      }

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});
