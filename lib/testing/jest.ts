/**
 * `frontdoor-gateway/testing/jest`: the kit's assertions as `expect` matchers. Importing it registers them
 * on the global `expect` when there is one (jest, vitest with globals); otherwise pass `matchers` to
 * `expect.extend` yourself. The checks are the ones isProblem() and expectForwarded() make.
 *
 * @example
 * // jest.config.js: setupFilesAfterEnv: ['frontdoor-gateway/testing/jest']
 * expect(res).toBeProblem({ status: 401, code: 'ERR_AUTH_MISSING' });
 * expect(orders).toHaveBeenForwarded({ path: '/api/orders', headers: { 'x-consumer-id': 'alice' } });
 */
import { checkForwarded, checkProblem, ForwardedExpectation, ProblemExpectation, RecordingUpstream, ResponseLike } from './assert';

interface MatcherResult {
  pass: boolean;
  message: () => string;
}

/** The matchers, for `expect.extend(matchers)`. */
export const matchers = {
  toBeProblem(received: ResponseLike, expected: ProblemExpectation = {}): MatcherResult {
    const { failures, body } = checkProblem(received, expected);
    const pass = failures.length === 0;
    return {
      pass,
      message: () =>
        pass
          ? `expected the response not to be a problem answer${expected.code ? ` with code ${expected.code}` : ''}, but it is: ${received.status} ${JSON.stringify(body)}`
          : `expected a problem answer ${JSON.stringify(expected)}:\n${failures.map((line) => `  - ${line}`).join('\n')}\nResponse: ${received?.status} ${JSON.stringify(body ?? received?.text ?? received?.body)}`,
    };
  },
  toHaveBeenForwarded(received: RecordingUpstream, expected: ForwardedExpectation = {}): MatcherResult {
    const { failure, matching } = checkForwarded(received, expected);
    const pass = failure === undefined;
    return {
      pass,
      message: () =>
        pass
          ? `expected no request matching ${JSON.stringify(expected)} to reach ${received.url ?? 'the upstream'}, but ${matching.length} did: ${matching.map((req) => `${req.method} ${req.url}`).join(', ')}`
          : (failure as string).replace(/^expectForwarded: /, ''),
    };
  },
};

declare global {
  // The matchers' types for jest's global `expect` (@types/jest); vitest users augment `Assertion` the same way.
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace jest {
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unused-vars
    interface Matchers<R, T = {}> {
      /** The response is an RFC 9457 problem answer with this status, code and the request id of X-Request-Id. */
      toBeProblem(expected?: ProblemExpectation): R;
      /** The upstream (from startUpstream()) received a request matching this. */
      toHaveBeenForwarded(expected?: ForwardedExpectation): R;
    }
  }
}

const globalExpect = (globalThis as { expect?: { extend?: (matchers: object) => void } }).expect;
if (typeof globalExpect?.extend === 'function') globalExpect.extend(matchers);
