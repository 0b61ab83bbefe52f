/**
 * proxy() and upstream options are declared once, with zod: nested typos that were silently ignored are
 * reported with their full path and a "did you mean", every mistake at once, durations resolved to ms.
 */
import { gateway, proxy } from '../../index';
import type { ProxyOptions } from '../../index';
import { configError } from '../helpers/config';

const target = 'http://127.0.0.1:9';

describe('proxy() and upstream option schemas', () => {
  it.each([
    [{ target, health: { passiv: { failures: 2 } } }, 'health.passiv', 'health.passive'],
    [{ target, health: { passive: { failure: 2 } } }, 'health.passive.failure', 'health.passive.failures'],
    [{ target, tls: { rejectUnauthorised: false } }, 'tls.rejectUnauthorised', 'tls.rejectUnauthorized'],
    [{ target, agent: { maxSocket: 5 } }, 'agent.maxSocket', 'agent.maxSockets'],
    [{ target, sticky: { cookies: 'sid' } }, 'sticky.cookies', 'sticky.cookie'],
  ])('reports the nested typo in %j with a did-you-mean', (options, wrong, right) => {
    const err = configError(() => proxy(options as ProxyOptions));
    expect(err.message).toContain(`unsupported option "${wrong}"`);
    expect(err.message).toContain(`Did you mean "${right}"?`);
  });

  it('names the full path inside a route table', () => {
    const err = configError(() => gateway({ routes: [{ path: '/a', upstream: { target, health: { active: { intervall: '5s' } } } as never }] }));
    expect(err.message).toContain('"routes[0].upstream.health.active.intervall"');
    expect(err.message).toContain('Did you mean "routes[0].upstream.health.active.interval"?');
  });

  it('reports every mistake at once, each with its path', () => {
    const err = configError(() => proxy({ target, timeout: 'soon', retries: -1, onError: 'maybe' } as unknown as ProxyOptions));
    expect(err.issues.map((issue) => issue.path).sort()).toEqual(['onError', 'retries', 'timeout']);
    expect(err.message).toContain(`"onError" must be 'respond' or 'next'`);
    expect(err.message).toContain('"retries" must be a non-negative integer; received -1');
    expect(err.message).toContain(`"timeout" must be a duration in ms or a string like '30s' or '1m'; received "soon"`);
  });

  it('keeps forwarding options on the route, not in its upstream', () => {
    const err = configError(() => gateway({ routes: [{ path: '/a', upstream: { target, stripPath: true } as never }] }));
    expect(err.message).toContain('unsupported option "routes[0].upstream.stripPath"');
  });
});
