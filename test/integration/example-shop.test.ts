/**
 * The shop example the README sends people to: its smoke mode (real monolith, gateway and two orders
 * instances on ephemeral ports) passes, and the interactive mode `npm start` runs prints working URLs
 * and shuts down cleanly on SIGTERM. Needs the built dist (`npm test` builds it first), because the
 * example requires the package by its name.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '..', '..');
const start = path.join(repo, 'examples', 'shop', 'start.js');

describe('examples/shop', () => {
  beforeAll(() => {
    if (!existsSync(path.join(repo, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does) before this suite.');
  });

  it('passes its own smoke run: routing, fall-through, balancing, fail-over, bodies', async () => {
    const { stdout } = await run(process.execPath, [start, '--smoke'], { cwd: repo, timeout: 40_000 });
    const lines = stdout.trim().split('\n');
    expect(lines.filter((line) => line.startsWith('FAIL'))).toEqual([]);
    expect(lines.filter((line) => line.startsWith('PASS')).length).toBeGreaterThanOrEqual(5);
    expect(lines[lines.length - 1]).toMatch(/^smoke: all \d+ checks passed$/);
  }, 45_000);

  it('interactive mode prints URLs that answer, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [start], {
      cwd: repo,
      env: { ...process.env, PORT: '0', ORDERS_PORT_A: '0', ORDERS_PORT_B: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const deadline = Date.now() + 15_000;
      let base: string | undefined;
      while (!base && Date.now() < deadline) {
        base = /monolith \+ gateway\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
        if (!base) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (!base) throw new Error(`the example printed no URL within 15 s:\n${output}`);

      const orders = await fetch(`${base}/api/orders`);
      expect(orders.status).toBe(200);
      const users = await fetch(`${base}/api/users`);
      expect(users.status).toBe(200);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});
