/**
 * The migration guide (docs/migration.md) runs on the shop example: `start.js --smoke --step <step>` starts
 * the shop at each step and checks what the guide says happens there. Before: the monolith answers. Step 1,
 * shadow: clients still get the monolith, the report shows the mismatches (servedBy, the totals). Step 2:
 * after the ignore rule and the service's fix, every copy matches. Step 3, cutover at 5, 50 and 100 %: the
 * share within 5 points over 200 readers, sticky, counted in /metrics, raised at runtime only from the monolith
 * to the service, and fallback to the monolith with both instances stopped. (Step 4, done, is the smoke run
 * of example-shop.test.ts.) Needs the built dist, because the example requires the package by its name.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '..', '..');
const start = path.join(repo, 'examples', 'shop', 'start.js');

/** What each step's smoke run must have passed: the guide's claims, one pattern each. */
const CLAIMS: Record<string, RegExp[]> = {
  monolith: [/legacy handler, total 178/, /needs a token at the edge/, /nothing is shadowed/],
  shadow: [/clients get the monolith/, /3 mismatches, in body\.servedBy and the totals, 178 against 89/, /admin\/shadow\?route=orders-read/],
  fixed: [/clients get the monolith/, /3 matches and no differing field/],
  'cutover-5': [/about 5 % of 200 readers/, /stays on the same side.*metrics/, /setCutover\('orders-read', 30\) moves readers only from the monolith/, /x-frontdoor-fallback/],
  'cutover-50': [/about 50 % of 200 readers/, /stays on the same side.*metrics/, /setCutover\('orders-read', 75\)/, /x-frontdoor-fallback/],
  'cutover-100': [/about 100 % of 200 readers/, /x-frontdoor-fallback/, /POST, refused by both instances .* created by the monolith/],
};

describe('examples/shop migration steps', () => {
  beforeAll(() => {
    if (!existsSync(path.join(repo, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does) before this suite.');
  });

  it('runs every step of the guide and passes the checks of each', async () => {
    // One process for all the steps (each on a fresh shop): a node start per step would cost more than the checks.
    const { stdout } = await run(process.execPath, [start, '--smoke', '--step', 'all'], { cwd: repo, timeout: 40_000 })
      .catch((err: { stdout?: string; message: string }) => ({ stdout: err.stdout || err.message }));
    const lines = stdout.trim().split('\n');
    expect(lines.filter((line) => !line.startsWith('PASS')).slice(0, -1)).toEqual([]);
    for (const [step, claims] of Object.entries(CLAIMS)) {
      for (const claim of [...claims, /order-summary\/1001 aggregates/]) {
        const found = lines.some((line) => line.startsWith(`PASS  ${step}: `) && claim.test(line));
        expect({ step, claim: String(claim), found }).toEqual({ step, claim: String(claim), found: true });
      }
    }
    expect(lines[lines.length - 1]).toMatch(/^smoke monolith, shadow, fixed, cutover-5, cutover-50, cutover-100: all \d+ checks passed$/);
  }, 45_000);

  it('prints the step\'s commands, and they work: the shadow report URL serves the orders-read report', async () => {
    const child = spawn(process.execPath, [start, '--step', 'shadow'], {
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
      while (!/Ctrl\+C stops everything/.test(output)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the example printed no instructions:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(output).toMatch(/Migration step "shadow"/);
      expect(output).toMatch(/Next step: npm start -- --step fixed/);
      const base = /monolith \+ gateway\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1];
      const report = /curl -s '(http:\/\/127\.0\.0\.1:\d+\/admin\/shadow\?route=orders-read)'/.exec(output)![1];
      const order = await (await fetch(`${base}/api/orders/1001`)).json();
      expect(order).toMatchObject({ servedBy: 'monolith', order: { total: 178 } });
      let body: { outcomes?: { mismatch: number } } = {};
      for (let i = 0; i < 50 && !body.outcomes?.mismatch; i++) {
        body = (await (await fetch(report)).json()) as typeof body;
        if (!body.outcomes?.mismatch) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(body).toMatchObject({ route: 'orders-read', outcomes: { mismatch: 1 } });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 20_000);

  it('refuses an unknown step, listing the steps', async () => {
    const failed = await run(process.execPath, [start, '--step', 'cutover-7'], { cwd: repo, timeout: 5_000 }).then(() => undefined, (err: { code?: number; stderr?: string }) => err);
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/--step must be one of:\n {2}monolith .*\n {2}shadow /);
  });
});
