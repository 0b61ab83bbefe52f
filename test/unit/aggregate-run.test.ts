/**
 * The scheduler of an aggregation, with calls that resolve on timers: calls without `after` start together,
 * dependents start when their dependencies finished (failed optional ones included), the answer is decided at
 * the first required failure, when all finished or at the deadline, and every call still running then sees
 * its signal aborted.
 */
import { runCalls } from '../../lib/aggregate/run';
import type { CallOutcome, ScheduledCall } from '../../lib/aggregate/run';

interface Probe {
  started: string[];
  aborted: string[];
}

/** A call that settles with `outcome` after `ms`, recording when it starts and whether it is aborted. */
function call(probe: Probe, name: string, ms: number, outcome: CallOutcome, options: { optional?: boolean; after?: string[] } = {}): ScheduledCall {
  return {
    name,
    optional: options.optional ?? false,
    after: options.after ?? [],
    run: (_outcomes, signal) =>
      new Promise((resolve) => {
        probe.started.push(name);
        let settled = false;
        const timer = setTimeout(() => {
          settled = true;
          resolve(outcome);
        }, ms);
        signal.addEventListener('abort', () => {
          if (settled) return;
          clearTimeout(timer);
          probe.aborted.push(name);
          resolve({ ok: false, failure: { code: 'cancelled', detail: 'was cancelled', timedOut: false } });
        });
      }),
  };
}

const ok = (value: unknown): CallOutcome => ({ ok: true, value });
const failed = (status: number): CallOutcome => ({ ok: false, failure: { code: 'ERR_AGGREGATE_CALL_FAILED', status, detail: `answered ${status}`, timedOut: false } });

describe('runCalls', () => {
  let probe: Probe;
  beforeEach(() => {
    probe = { started: [], aborted: [] };
  });

  it('starts independent calls together and dependents after their dependencies', async () => {
    const started = performance.now();
    const result = await runCalls([call(probe, 'a', 100, ok(1)), call(probe, 'b', 100, ok(2)), call(probe, 'c', 10, ok(3), { after: ['a', 'b'] })], 1000, new AbortController().signal);
    expect(result).toEqual({ kind: 'answer', results: { a: 1, b: 2, c: 3 }, errors: [] });
    expect(probe.started).toEqual(['a', 'b', 'c']);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(105);
    expect(elapsed).toBeLessThan(190); // 100 + 10, not 210
  });

  it('runs a dependent of a failed optional call, and lists the failure', async () => {
    const result = await runCalls([call(probe, 'a', 5, failed(500), { optional: true }), call(probe, 'b', 5, ok('b'), { after: ['a'] })], 1000, new AbortController().signal);
    expect(result).toEqual({ kind: 'answer', results: { a: null, b: 'b' }, errors: [{ call: 'a', code: 'ERR_AGGREGATE_CALL_FAILED', status: 500, detail: 'answered 500', timedOut: false }] });
  });

  it('decides at the first required failure and aborts the calls still running; dependents never start', async () => {
    const result = await runCalls([call(probe, 'a', 5, failed(503)), call(probe, 'slow', 5000, ok(1)), call(probe, 'next', 5, ok(1), { after: ['slow'] })], 1000, new AbortController().signal);
    expect(result).toEqual({ kind: 'failed', failure: { call: 'a', code: 'ERR_AGGREGATE_CALL_FAILED', status: 503, detail: 'answered 503', timedOut: false } });
    expect(probe.aborted).toEqual(['slow']);
    expect(probe.started).not.toContain('next');
  });

  it('at the deadline, fails on a required call still running', async () => {
    const result = await runCalls([call(probe, 'fast', 5, ok(1)), call(probe, 'slow', 5000, ok(2))], 50, new AbortController().signal);
    expect(result).toEqual({ kind: 'failed', failure: { call: 'slow', code: 'ERR_AGGREGATE_TIMEOUT', detail: 'did not answer before the deadline', timedOut: true } });
    expect(probe.aborted).toEqual(['slow']);
  });

  it('at the deadline, fails on a required call that could not start yet', async () => {
    const result = await runCalls([call(probe, 'slow', 5000, ok(1), { optional: true }), call(probe, 'after', 5, ok(2), { after: ['slow'] })], 50, new AbortController().signal);
    expect(result).toMatchObject({ kind: 'failed', failure: { call: 'after', code: 'ERR_AGGREGATE_TIMEOUT', detail: 'could not start before the deadline' } });
  });

  it('at the deadline, answers with null for optional calls still running', async () => {
    const result = await runCalls([call(probe, 'fast', 5, ok(1)), call(probe, 'slow', 5000, ok(2), { optional: true })], 50, new AbortController().signal);
    expect(result).toEqual({ kind: 'answer', results: { fast: 1, slow: null }, errors: [{ call: 'slow', code: 'ERR_AGGREGATE_TIMEOUT', detail: 'did not answer before the deadline', timedOut: true }] });
  });

  it('stops everything when the client goes away', async () => {
    const client = new AbortController();
    const running = runCalls([call(probe, 'a', 5000, ok(1)), call(probe, 'b', 5000, ok(2))], 10_000, client.signal);
    client.abort();
    expect(await running).toEqual({ kind: 'cancelled' });
    expect(probe.aborted.sort()).toEqual(['a', 'b']);
  });

  it('turns a call that rejects into a failure instead of a crash', async () => {
    const broken: ScheduledCall = { name: 'broken', optional: true, after: [], run: () => Promise.reject(new Error('bug')) };
    const result = await runCalls([broken], 1000, new AbortController().signal);
    expect(result).toMatchObject({ kind: 'answer', results: { broken: null }, errors: [{ call: 'broken', code: 'ERR_INTERNAL' }] });
  });
});
