/**
 * Summarises a V8 CPU profile written by `BENCH_CPU_PROF=<row> npm run bench` (or any `node --cpu-prof`):
 * the functions with the most self time, and totals per file (node_modules package, dist/ file, node internals).
 *
 *   node test/bench/profile-top.js .tmp/bench-prof/frontdoor-gateway.cpuprofile [count]
 */
'use strict';

const fs = require('node:fs');

const [file, countArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node test/bench/profile-top.js <file.cpuprofile> [count]');
  process.exit(2);
}
const count = Number(countArg) || 25;
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));

// Self time per node: samples × the interval they cover.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  self.set(profile.samples[i], (self.get(profile.samples[i]) || 0) + dt);
}
const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;

function where(url) {
  if (!url) return '(native/vm)';
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (m) return m[1];
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  const d = url.match(/\/(dist\/.*)$/);
  if (d) return d[1];
  return url.replace(/^file:\/\//, '');
}

const fnTime = new Map();
const fileTime = new Map();
for (const [id, t] of self) {
  const { callFrame: cf } = byId.get(id);
  const fn = `${cf.functionName || '(anonymous)'}  ${where(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
  fnTime.set(fn, (fnTime.get(fn) || 0) + t);
  const w = where(cf.url);
  fileTime.set(w, (fileTime.get(w) || 0) + t);
}

const pct = (t) => `${((t * 100) / total).toFixed(1).padStart(5)} %`;
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled\n\ntop functions by self time:`);
for (const [fn, t] of [...fnTime].sort((a, b) => b[1] - a[1]).slice(0, count)) console.log(`${pct(t)}  ${fn}`);
console.log('\nself time by package / file:');
for (const [w, t] of [...fileTime].sort((a, b) => b[1] - a[1]).slice(0, count)) console.log(`${pct(t)}  ${w}`);
