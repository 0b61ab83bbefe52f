/**
 * http-proxy-middleware 3, loaded so that its engine never calls a deprecated Node API.
 *
 * http-proxy 1.18.1, the engine under http-proxy-middleware 3, copies options and headers with `util._extend`
 * on every request, and Node 22+ prints DEP0060 on the app's stderr at the first call. http-proxy reads
 * `require('util')._extend` once, when its modules load: for the time of that load only, util._extend is
 * Node's own function without the deprecation, and Node's is back before anything else runs. No warning is
 * silenced, in this process or any other: the call that would cause it is gone.
 * Why not http-proxy-middleware 4 (httpxy, no util._extend): docs/proxy.md, "The proxy engine".
 */
import util from 'node:util';
import type * as HttpProxyMiddleware from 'http-proxy-middleware';

export type { Plugin } from 'http-proxy-middleware';

/** util._extend as Node implements it, the same keys copied in the same order, minus the deprecation. */
function extend(target: Record<string, unknown>, source: unknown): Record<string, unknown> {
  if (source === null || typeof source !== 'object') return target;
  const from = source as Record<string, unknown>;
  const keys = Object.keys(from);
  let i = keys.length;
  while (i--) target[keys[i]] = from[keys[i]];
  return target;
}

function load(): typeof HttpProxyMiddleware {
  const node = util as unknown as { _extend: unknown };
  const deprecated = node._extend;
  node._extend = extend;
  try {
    // A require, not an import: it must run while util._extend is the function above.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('http-proxy-middleware') as typeof HttpProxyMiddleware;
  } finally {
    node._extend = deprecated;
  }
}

export const { createProxyMiddleware } = load();
