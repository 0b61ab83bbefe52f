/**
 * Runs the calls of one aggregation: those without `after` at once, in parallel, each other one as soon as the
 * calls it waits for have finished, all within the deadline. The answer is decided as soon as it can be (a
 * required call failed, every call finished, or the deadline passed), and then every call still running is
 * aborted, so the upstreams stop working for an answer nobody will read.
 */

/** Why a call produced no result. */
export interface CallFailure {
  call: string;
  /** A gateway error code: ERR_UPSTREAM_TIMEOUT, ERR_UPSTREAM_BAD_RESPONSE, ERR_AGGREGATE_CALL_FAILED… */
  code: string;
  /** The upstream's status, when it answered. */
  status?: number;
  /** Why, for the client: never an internal host name. */
  detail: string;
  /** The call ran out of time: its own timeout, a connect timeout, or the deadline. */
  timedOut: boolean;
}

export type CallOutcome = { ok: true; value: unknown } | { ok: false; failure: Omit<CallFailure, 'call'> };

/** A call as the scheduler sees it. */
export interface ScheduledCall {
  name: string;
  optional: boolean;
  after: readonly string[];
  /** Makes the call; `outcomes` holds the outcome of every call it waits for. Must not reject. */
  run(outcomes: ReadonlyMap<string, CallOutcome>, signal: AbortSignal): Promise<CallOutcome>;
}

export type RunResult =
  /** Every required call succeeded: results by call name (null for failed optional calls), in declaration order. */
  | { kind: 'answer'; results: Record<string, unknown>; errors: CallFailure[] }
  /** A required call failed or ran out of time. */
  | { kind: 'failed'; failure: CallFailure }
  /** `signal` was aborted (the client left) before the answer was decided. */
  | { kind: 'cancelled' };

/** Runs `calls` (in a valid order: checked at construction) within `deadlineMs`; never rejects. */
export function runCalls(calls: readonly ScheduledCall[], deadlineMs: number, signal: AbortSignal): Promise<RunResult> {
  return new Promise((resolve) => {
    const outcomes = new Map<string, CallOutcome>();
    const started = new Set<string>();
    const controller = new AbortController();
    let decided = false;

    const decide = (result: RunResult) => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onCancel);
      // Decided: whatever still runs is of no use; its upstream sees the connection close.
      controller.abort();
      resolve(result);
    };
    const onCancel = () => decide({ kind: 'cancelled' });
    const settle = (call: ScheduledCall, outcome: CallOutcome) => {
      if (decided) return;
      outcomes.set(call.name, outcome);
      if (!outcome.ok && !call.optional) return decide({ kind: 'failed', failure: { call: call.name, ...outcome.failure } });
      if (outcomes.size === calls.length) return decide(answer(calls, outcomes));
      startReady();
    };
    const startReady = () => {
      for (const call of calls) {
        if (started.has(call.name) || !call.after.every((name) => outcomes.has(name))) continue;
        started.add(call.name);
        call.run(outcomes, controller.signal).then(
          (outcome) => settle(call, outcome),
          () => settle(call, { ok: false, failure: { code: 'ERR_INTERNAL', detail: 'The call failed inside the gateway.', timedOut: false } }),
        );
      }
    };
    const onDeadline = () => {
      const late = calls.filter((call) => !outcomes.has(call.name));
      const required = late.find((call) => !call.optional);
      if (required) {
        const detail = started.has(required.name) ? 'did not answer before the deadline' : 'could not start before the deadline';
        return decide({ kind: 'failed', failure: { call: required.name, code: 'ERR_AGGREGATE_TIMEOUT', detail, timedOut: true } });
      }
      for (const call of late) outcomes.set(call.name, { ok: false, failure: { code: 'ERR_AGGREGATE_TIMEOUT', detail: 'did not answer before the deadline', timedOut: true } });
      decide(answer(calls, outcomes));
    };

    const timer = setTimeout(onDeadline, deadlineMs);
    if (signal.aborted) return onCancel();
    signal.addEventListener('abort', onCancel, { once: true });
    startReady();
  });
}

function answer(calls: readonly ScheduledCall[], outcomes: ReadonlyMap<string, CallOutcome>): RunResult {
  // Call names are checked at construction (no __proto__ among them), so a plain object is safe to fill.
  const results: Record<string, unknown> = {};
  const errors: CallFailure[] = [];
  for (const call of calls) {
    const outcome = outcomes.get(call.name);
    if (outcome?.ok) {
      results[call.name] = outcome.value;
    } else {
      results[call.name] = null;
      if (outcome) errors.push({ call: call.name, ...outcome.failure });
    }
  }
  return { kind: 'answer', results, errors };
}
