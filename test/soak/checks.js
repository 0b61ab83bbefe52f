/**
 * What the soak run concludes from what it saw: per-phase tables of answers, the failures no played fault
 * explains, memory growth after the warm-up, and the checks that decide the exit code. Pure functions over the
 * data run.js collected, so they can be read (and tried) apart from the run.
 */
'use strict';

const { explainers, phaseOf } = require('./schedule');

/** Growth above this share of the post-warm-up level fails the memory check. */
const MAX_GROWTH = 0.1;

/** The class an answer is counted in: `2xx`…`5xx`, `broken` (no complete answer), or the WebSocket ones. */
function classOf(label) {
  if (label.startsWith('ws ')) {
    if (label === 'ws ok') return 'ws ok';
    const status = /^ws (\d)\d\d$/.exec(label);
    return status ? `ws ${status[1]}xx` : 'ws broken';
  }
  return /^\d/.test(label) ? `${label[0]}xx` : 'broken';
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/**
 * Every result judged against the windows played: the answers per phase (by class) and per kind (by label),
 * the `unexpected` ones, and the `fault` ones no window explains (`unexplained`), with how many each window
 * explained.
 */
function judge(results, windows) {
  const byPhase = {};
  const byKind = {};
  const unexpected = [];
  const unexplained = [];
  const explainedBy = {};
  for (const r of results) {
    const phase = phaseOf(r.start, r.end, windows);
    const cls = classOf(r.label);
    (byPhase[phase] ??= {})[cls] = (byPhase[phase][cls] || 0) + 1;
    (byKind[r.kind] ??= {})[r.label] = (byKind[r.kind][r.label] || 0) + 1;
    if (r.verdict === 'unexpected') unexpected.push(r);
    else if (r.verdict === 'fault') {
      const found = explainers(r.label, r.start, r.end, windows);
      if (found.length === 0) unexplained.push(r);
      for (const w of found) explainedBy[w.mode] = (explainedBy[w.mode] || 0) + 1;
    }
  }
  return { byPhase, byKind, unexpected, unexplained, explainedBy };
}

/**
 * Growth of `field` over a gateway's samples taken after the warm-up: the median of the last third against the
 * median of the first third (at least two samples each), so one sample's noise moves neither end.
 */
function growth(samples, warmupMs, field) {
  const after = samples.filter((s) => s.t >= warmupMs);
  if (after.length < 2) return null;
  const k = Math.max(Math.min(2, after.length >> 1), Math.floor(after.length / 3));
  const start = median(after.slice(0, k).map(field));
  const end = median(after.slice(-k).map(field));
  return { start, end, ratio: (end - start) / start, samples: after.length, perEnd: k };
}

/** The checks, each `{ name, ok, detail }`; the run fails when one is not ok. */
function checks({ gateways, verdicts, load, rateLimit, plan }) {
  const out = [];
  const pct = (x) => `${(x * 100).toFixed(1)} %`;
  const mb = (b) => `${(b / 1048576).toFixed(1)} MB`;

  const growthLines = [];
  let growthOk = true;
  for (const g of gateways) {
    for (const [what, field] of [['RSS', (s) => s.memory.rss], ['heap', (s) => s.memory.heapUsed]]) {
      const gr = growth(g.samples, plan.warmup, field);
      if (!gr) { growthOk = false; growthLines.push(`${g.name} ${what}: too few samples after the warm-up`); continue; }
      if (gr.ratio >= MAX_GROWTH) growthOk = false;
      growthLines.push(`${g.name} ${what} ${mb(gr.start)} → ${mb(gr.end)} (${gr.ratio >= 0 ? '+' : ''}${pct(gr.ratio)})`);
    }
  }
  out.push({ name: 'memory growth after warm-up < 10 %', ok: growthOk, detail: growthLines.join('; ') });

  const bad = [...verdicts.unexpected, ...verdicts.unexplained];
  const listed = bad.slice(0, 10).map((r) => `${r.kind} → ${r.label} at ${(r.start / 1000).toFixed(1)}–${(r.end / 1000).toFixed(1)} s on gw${r.gw + 1}`);
  out.push({
    name: 'no unexpected status',
    ok: bad.length === 0,
    detail: bad.length === 0
      ? `every failure explained by the fault schedule (${Object.entries(verdicts.explainedBy).map(([m, n]) => `${m}: ${n}`).join(', ') || 'none'})`
      : `${verdicts.unexpected.length} unexpected, ${verdicts.unexplained.length} outside any fault window: ${listed.join('; ')}${bad.length > 10 ? '; …' : ''}`,
  });

  const errors = gateways.map((g) => {
    const f = g.last ? g.last.faults : { uncaughtExceptions: 0, unhandledRejections: 0, warnings: 0 };
    return { name: g.name, exited: g.exitedEarly, ...f };
  });
  const errorsOk = errors.every((e) => !e.exited && e.uncaughtExceptions === 0 && e.unhandledRejections === 0);
  out.push({
    name: 'no unhandled error',
    ok: errorsOk,
    detail: errors.map((e) => `${e.name}: ${e.exited ? `exited early (${e.exited}), ` : ''}${e.uncaughtExceptions} uncaught, ${e.unhandledRejections} unhandled rejections, ${e.warnings} warnings`).join('; '),
  });

  const backLines = [];
  let backOk = true;
  for (const g of gateways) {
    if (!g.baseline || !g.end) { backOk = false; backLines.push(`${g.name}: no ${g.baseline ? 'end' : 'baseline'} sample`); continue; }
    const ok = g.end.sockets <= g.baseline.sockets && g.end.handles <= g.baseline.handles;
    if (!ok) backOk = false;
    const grew = Object.keys({ ...g.end.resources, ...g.baseline.resources })
      .filter((type) => (g.end.resources[type] || 0) > (g.baseline.resources[type] || 0))
      .map((type) => `${type} ${g.baseline.resources[type] || 0}→${g.end.resources[type]}`);
    const peers = ['in', 'upstream', 'redis', 'other'].filter((p) => g.end.byPeer[p] !== g.baseline.byPeer[p]).map((p) => `${p} ${g.baseline.byPeer[p]}→${g.end.byPeer[p]}`);
    if (peers.length) grew.push(`sockets to ${peers.join(', ')}`);
    backLines.push(`${g.name} sockets ${g.baseline.sockets}→${g.end.sockets}, handles ${g.baseline.handles}→${g.end.handles}${grew.length ? ` (${grew.join(', ')})` : ''} after ${(g.endSettleMs / 1000).toFixed(1)} s`);
  }
  out.push({ name: 'sockets and handles back to baseline', ok: backOk, detail: backLines.join('; ') });

  // Both instances count in one Redis: together they let through at most `limit` per window (windows start on
  // the first request after the last one expired, so there are at most run/window + 1 of them, plus one more
  // after Redis came back empty).
  const maxAllowed = rateLimit.limit * (Math.ceil(plan.durationMs / rateLimit.windowMs) + 2);
  out.push({
    name: 'rate limit shared by both instances',
    ok: rateLimit.passed <= maxAllowed,
    detail: `${rateLimit.passed} requests let through by the limit of ${rateLimit.limit} per ${rateLimit.windowMs / 1000} s (at most ${maxAllowed} in ${(plan.durationMs / 1000).toFixed(0)} s; ${rateLimit.sent} sent)`,
  });

  const planned = Math.floor((load.rate * plan.durationMs) / 1000);
  out.push({
    name: 'load delivered',
    ok: load.started >= planned * 0.8,
    detail: `${load.started} of ${planned} planned requests started (${load.deferred} deferred at the in-flight cap), ${load.wsSessions} WebSocket sessions`,
  });
  return out;
}

module.exports = { judge, growth, checks, classOf, median, MAX_GROWTH };
