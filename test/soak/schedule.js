/**
 * The soak run's timetable, as data: when the upstream flaps (refuses, hangs, resets), when Redis is killed and
 * restarted, where the warm-up ends, and which failures each fault explains. Pure: run.js plays it, checks.js
 * judges answers against the windows actually played. All times are ms from the start of the load.
 */
'use strict';

/** Upstream modes, in the order they come in each cycle. */
const FLAPS = ['refuse', 'hang', 'reset'];

/** Where each flap starts in its cycle, as a share of the cycle. */
const FLAP_AT = { refuse: 0.4, hang: 0.62, reset: 0.84 };

/**
 * How long a failure may trail the end of its fault and still be the fault's doing (ms). Upstream: the passive
 * health cooldown (at most `maxCooldown`, 2 s in gateway.js) plus the response timeout (1 s) plus 1 s; Redis:
 * ioredis' reconnect backoff (at most 2 s, lib/redis.ts) plus the outage guard's 1 s skip plus 2 s.
 */
const GRACE = { upstream: 4_000, redis: 5_000 };

/** The upstream's route settings the graces above assume (gateway.js uses these). */
const UPSTREAM_LIMITS = { timeout: '1s', passive: { failures: 3, cooldown: '1s', maxCooldown: '2s' } };

const clamp = (value, min, max) => Math.min(max, Math.max(min, value));

/**
 * The plan for a run of `durationMs`: a flap cycle of 20–60 s (a fifth of the run) with a refusal, a hang and a
 * reset of 2–5 s each; one Redis outage of 5–15 s starting halfway; a warm-up of a fifth of the run but at least
 * one whole cycle (so every fault's code path has run before memory is compared) and at least 10 s.
 */
function plan(durationMs) {
  const cycle = clamp(durationMs / 5, 20_000, 60_000);
  const flapLength = clamp(cycle / 12, 2_000, 5_000);
  const flaps = [];
  for (let start = 0; start < durationMs; start += cycle) {
    for (const mode of FLAPS) {
      const at = start + FLAP_AT[mode] * cycle;
      if (at + flapLength <= durationMs) flaps.push({ mode, start: Math.round(at), end: Math.round(at + flapLength) });
    }
  }
  const redisDown = clamp(durationMs * 0.025, 5_000, 15_000);
  const redis = { start: Math.round(durationMs / 2), end: Math.round(durationMs / 2 + redisDown) };
  const warmup = Math.round(Math.max(durationMs * 0.2, cycle, 10_000));
  return { durationMs, cycle, flapLength, flaps, redis, warmup };
}

/**
 * Which faults may explain an outcome that needs one (see load.js for the labels): the gateway's problem codes
 * for upstream failures, client-side breaks, WebSocket failures, and the rate limiter's fail-closed answer.
 */
const EXPLAINED_BY = {
  '502 ERR_UPSTREAM_UNAVAILABLE': ['refuse'],
  '502 ERR_UPSTREAM_RESET': ['reset', 'refuse'],
  '504 ERR_UPSTREAM_TIMEOUT': ['hang'],
  '503 ERR_NO_HEALTHY_UPSTREAM': ['refuse', 'hang', 'reset'],
  // A response cut off after its headers: the upstream reset mid-body, or was stopped with the body in flight.
  aborted: ['reset', 'refuse'],
  // The upload's connection broken while its body was still being sent, after the gateway answered 502 early.
  'upload-broken': ['reset', 'refuse', 'hang'],
  'ws 502': ['refuse', 'reset'],
  'ws 503': ['refuse', 'hang', 'reset'],
  'ws 504': ['hang'],
  // The handshake never answered: the upstream held it (the gateway has no timeout on upgrades).
  'ws handshake-timeout': ['hang'],
  // An echo session cut: the upstream dropped its sockets, or reset the handshake.
  'ws dropped': ['refuse', 'reset', 'hang'],
  '503 ERR_RATE_LIMIT_UNAVAILABLE': ['redis'],
};

/**
 * The windows (played, not planned) that explain `label` for an outcome between `startMs` and `endMs`, or []
 * when none does. A window explains an outcome that overlaps it or ends within its grace after it.
 */
function explainers(label, startMs, endMs, windows) {
  const kinds = EXPLAINED_BY[label];
  if (!kinds) return [];
  return windows.filter((w) => kinds.includes(w.mode) && startMs <= w.end + (w.mode === 'redis' ? GRACE.redis : GRACE.upstream) && endMs >= w.start);
}

/**
 * The phase of an outcome between `startMs` and `endMs`, for the per-phase tables: `redis-outage` or
 * `upstream-fault` when it overlaps such a window (or its grace after it), else `steady`.
 */
function phaseOf(startMs, endMs, windows) {
  const overlaps = (w) => startMs <= w.end + (w.mode === 'redis' ? GRACE.redis : GRACE.upstream) && endMs >= w.start;
  if (windows.some((w) => w.mode === 'redis' && overlaps(w))) return 'redis-outage';
  if (windows.some((w) => w.mode !== 'redis' && overlaps(w))) return 'upstream-fault';
  return 'steady';
}

module.exports = { plan, explainers, phaseOf, EXPLAINED_BY, GRACE, UPSTREAM_LIMITS, FLAPS };
