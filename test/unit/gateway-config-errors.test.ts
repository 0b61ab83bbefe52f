/**
 * A route table's mistakes are reported all at once, each with its path, so a table is fixed in one round.
 */
import { ConfigError, gateway } from '../../index';
import type { GatewayOptions } from '../../index';

describe('gateway() configuration errors', () => {
  it('collects the mistakes of every route and feature into one ConfigError', () => {
    let thrown: unknown;
    try {
      gateway({
        routes: [
          { path: '/a', upstream: { target: 'http://127.0.0.1:9', retries: -1 } },
          { path: 'b', upstream: 'http://127.0.0.1:9' },
          { path: '/c', upstream: 'http://127.0.0.1:9', rateLimit: { limt: 5 }, ipFilter: { allow: ['not-an-ip'] } },
        ],
      } as unknown as GatewayOptions);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const error = thrown as ConfigError;
    expect(error.issues.map((issue) => issue.path)).toEqual(['routes[0].upstream.retries', 'routes[1].path', 'routes[2].ipFilter.allow', 'routes[2].rateLimit.limt']);
    expect(error.message).toMatch(/^frontdoor: 4 mistakes in the options:\n- /);
    expect(error.message).toContain('Did you mean "routes[2].rateLimit.limit"?');
  });

  it('keeps a single mistake as its own message', () => {
    expect(() => gateway({ routes: [{ path: '/a', upstream: 'http://127.0.0.1:9', methds: ['GET'] } as never] })).toThrow(/^frontdoor: received an unsupported option "routes\[0\]\.methds"\. Did you mean "routes\[0\]\.methods"\?$/);
  });
});
