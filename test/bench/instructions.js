/**
 * Instructions per request of bench rows, counted by valgrind's callgrind. On a machine whose speed drifts by
 * more than a feature costs (a shared VM), CPU time per request moves by ±10 % between runs; the number of
 * instructions a request takes does not. It is not time (cache misses, system calls and the JIT's code quality
 * weigh differently), so it complements the interleaved runs rather than replacing them.
 *
 * Each row's gateway runs twice under callgrind, answering warm-up + N1 and warm-up + N2 requests from a client
 * outside valgrind (8 at a time, keep-alive, GET /api/orders/42). The difference over N2 − N1 is what one request
 * costs: start-up, warm-up and the JIT's first compilations cancel out. Rows are test/bench/variants.js's; the
 * upstream and the OTLP sink are test/bench/upstream.js. Two runs go at a time.
 *
 *   node test/bench/instructions.js frontdoor-gateway frontdoor-production
 *   INSTR_NODE=24 INSTR_DIST=.tmp/dist-a node test/bench/instructions.js frontdoor-gateway frontdoor-gateway@baseline
 *
 *   INSTR_NODE            the Node.js under valgrind: a path, or a pinned line (as BENCH_NODE); default this one
 *   INSTR_DIST            the build the rows load (as BENCH_DIST); INSTR_BASELINE_DIST: the `@baseline` rows' build
 *   INSTR_WARMUP, INSTR_N1, INSTR_N2   requests (default 1500, 500, 2500); a run takes 1–2 minutes
 *
 * Needs valgrind (Debian: apt-get install valgrind). Loopback only; every child ends with its run.
 */
'use strict';

const { execFile, fork, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const SELF = path.join(__dirname, 'instructions.js');

const [mode] = process.argv.slice(2);
if (mode === '--gateway') runGateway(...process.argv.slice(3));
else if (mode === '--client') runClient(...process.argv.slice(3).map(Number));
else main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/** Under valgrind: builds the row, lets a client child send `warm + n` requests, then exits. */
function runGateway(row, upstreamPort, warm, n) {
  const { variants } = require('./variants');
  const variant = variants.find((v) => v.name === row);
  const built = variant.build(`http://127.0.0.1:${upstreamPort}`, { otlpUrl: process.env.BENCH_OTLP_URL });
  const server = built.app.listen(0, '127.0.0.1', () => {
    const client = fork(SELF, ['--client', String(server.address().port), warm, n], { execPath: process.env.INSTR_CLIENT_NODE, execArgv: [] });
    client.on('exit', async (code) => {
      await built.close?.();
      server.close();
      process.exit(code ?? 1);
    });
  });
}

/** Outside valgrind: `warm + n` GETs, 8 at a time on keep-alive sockets; exits 1 if any was not a 200. */
function runClient(port, warm, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const total = warm + n;
  let sent = 0;
  let done = 0;
  let bad = 0;
  const one = () => {
    if (sent >= total) return;
    sent++;
    http.get({ host: '127.0.0.1', port, path: '/api/orders/42', agent }, (res) => {
      if (res.statusCode !== 200) bad++;
      res.resume();
      res.on('end', () => {
        if (++done === total) process.exit(bad ? 1 : 0);
        one();
      });
    });
  };
  for (let i = 0; i < 8; i++) one();
}

async function main() {
  const rows = process.argv.slice(2);
  if (rows.length === 0) throw new Error('usage: node test/bench/instructions.js <row> [row…] (rows of test/bench/variants.js)');
  if (spawnSync('valgrind', ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error('valgrind is not installed (Debian: apt-get install valgrind).');
  const node = resolveNode(process.env.INSTR_NODE);
  const version = spawnSync(node, ['-v'], { encoding: 'utf8' }).stdout.trim();
  const warm = Number(process.env.INSTR_WARMUP || 1500);
  const n1 = Number(process.env.INSTR_N1 || 500);
  const n2 = Number(process.env.INSTR_N2 || 2500);
  const upstream = await startUpstream();
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'frontdoor-instructions-'));
  try {
    console.log(`callgrind: gateway on Node ${version}, ${warm} warm-up requests, then ${n1} and ${n2}; GET /api/orders/42, 8 at a time`);
    const jobs = rows.flatMap((row) => [n1, n2].map((n) => ({ row, n })));
    const counts = new Map();
    await pool(jobs, 2, async ({ row, n }) => counts.set(`${row} ${n}`, await countInstructions(node, row, upstream, warm, n, out)));
    const reference = (counts.get(`${rows[0]} ${n2}`) - counts.get(`${rows[0]} ${n1}`)) / (n2 - n1);
    console.log(`\n${'row'.padEnd(36)} ${'instructions/request'.padStart(20)} ${`vs ${rows[0]}`.padStart(24)}`);
    for (const row of rows) {
      const perRequest = (counts.get(`${row} ${n2}`) - counts.get(`${row} ${n1}`)) / (n2 - n1);
      const delta = perRequest - reference;
      console.log(`${row.padEnd(36)} ${Math.round(perRequest).toLocaleString('en-US').padStart(20)} ${`${delta >= 0 ? '+' : ''}${Math.round(delta).toLocaleString('en-US')} (${(perRequest / reference).toFixed(3)}×)`.padStart(24)}`);
    }
  } finally {
    upstream.kill();
    fs.rmSync(out, { recursive: true, force: true });
  }
}

/** Total instructions of one gateway run of `warm + n` requests. */
function countInstructions(node, row, upstream, warm, n, out) {
  const file = path.join(out, `${row}-${n}.callgrind`);
  const env = {
    ...process.env,
    INSTR_CLIENT_NODE: process.execPath,
    BENCH_OTLP_URL: `http://127.0.0.1:${upstream.otlpPort}`,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${upstream.otlpPort}/v1/traces`,
    ...(process.env.INSTR_DIST ? { BENCH_DIST: path.resolve(process.env.INSTR_DIST) } : {}),
    ...(process.env.INSTR_BASELINE_DIST ? { BENCH_BASELINE_DIST: path.resolve(process.env.INSTR_BASELINE_DIST) } : {}),
  };
  const args = ['--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${file}`, node, SELF, '--gateway', row, String(upstream.port), String(warm), String(n)];
  return new Promise((resolve, reject) => {
    execFile('valgrind', args, { env, maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60_000 }, (err, _stdout, stderr) => {
      if (err) return reject(new Error(`${row} (${n} requests) failed: ${err.message}\n${String(stderr).split('\n').slice(-15).join('\n')}`));
      const totals = /^(?:summary|totals): (\d+)/m.exec(fs.readFileSync(file, 'utf8'));
      if (!totals) return reject(new Error(`${row}: no totals in ${file}`));
      process.stdout.write(`  ${row} + ${n}: ${Number(totals[1]).toLocaleString('en-US')} instructions\n`);
      resolve(Number(totals[1]));
    });
  });
}

/** The bench upstream (and OTLP sink) as a child; resolves once it listens. */
function startUpstream() {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'upstream.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the upstream exited (${code}) before listening`)));
    child.on('message', (message) => {
      if (message?.type === 'listening') resolve({ port: message.port, otlpPort: message.otlpPort, kill: () => child.kill() });
    });
  });
}

/** Runs `work` over `items`, `size` at a time. */
async function pool(items, size, work) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(size, items.length) }, lane));
}

/** A node executable: a path, a pinned line number (installed as scripts/node-lines.js does), or this one. */
function resolveNode(value) {
  if (!value) return process.execPath;
  if (/^\d+$/.test(value)) return require('../../scripts/node-lines').install(value);
  return path.resolve(value);
}
