/**
 * ipFilter(): allows or denies requests by client address, with CIDR ranges for IPv4 and IPv6.
 * The address is `req.ip` without a port, so it follows Express's `trust proxy` setting (the socket address
 * on connect), on WebSocket upgrades too.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import ipaddr from 'ipaddr.js';
import { clientAddress as clientAddressOf } from '../lib/client-address';
import { ConfigError, GatewayError } from '../lib/errors';
import { assertKnownKeys } from '../lib/options';
import { sendProblem } from '../lib/problem';
import { withGatewayErrors } from '../lib/pipeline';
import type { FeatureDescriptor } from '../lib/pipeline';
import type { ErrorMode } from './proxy';

export interface IpFilterOptions {
  /** Only these addresses or ranges may pass, e.g. `['10.0.0.0/8', '2001:db8::/32', '127.0.0.1']`. */
  allow?: string[];
  /** These addresses or ranges are refused, even when `allow` matches. */
  deny?: string[];
  /** Answer refusals as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];
type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * @example
 * app.use('/admin', ipFilter({ allow: ['10.0.0.0/8', 'fd00::/8'] }), proxy({ target }));
 */
export function ipFilter(options: IpFilterOptions, optionPrefix = ''): Middleware {
  if (!options || typeof options !== 'object') throw new ConfigError(`ipFilter() needs options. Example: ipFilter({ allow: ['10.0.0.0/8'] }).`);
  assertKnownKeys(options, ['allow', 'deny', 'onError'], optionPrefix);
  const allow = options.allow === undefined ? undefined : parseRanges(options.allow, optionPrefix + 'allow');
  const deny = options.deny === undefined ? [] : parseRanges(options.deny, optionPrefix + 'deny');
  if (!allow && deny.length === 0) throw new ConfigError(`ipFilter() needs "${optionPrefix}allow" or "${optionPrefix}deny".`);
  const errorMode = options.onError ?? 'respond';

  return function ipFilterMiddleware(req, res, next) {
    const address = clientAddress(req);
    const allowed = address !== undefined && !matches(address, deny) && (!allow || matches(address, allow));
    if (allowed) return next();
    const err = new GatewayError(403, 'ERR_IP_DENIED', { detail: 'Requests from your address are not allowed here.' });
    if (errorMode === 'next') next(err);
    else sendProblem(req, res, err);
  };
}

function parseRanges(list: unknown, option: string): Range[] {
  if (!Array.isArray(list)) throw new ConfigError(`"${option}" must be a list of addresses or CIDR ranges.`);
  return list.map((entry) => {
    if (typeof entry !== 'string') throw new ConfigError(`"${option}" has ${JSON.stringify(entry)}; expected an address or CIDR range.`);
    try {
      if (entry.includes('/')) {
        const [address, bits] = ipaddr.parseCIDR(entry);
        return normalise([address, bits]);
      }
      const address = ipaddr.parse(entry);
      return normalise([address, address.kind() === 'ipv4' ? 32 : 128]);
    } catch {
      throw new ConfigError(`"${option}" has ${JSON.stringify(entry)}, which is not an IP address or CIDR range.`);
    }
  });
}

/** IPv4-mapped IPv6 ranges (::ffff:10.0.0.0/104) are compared as IPv4. */
function normalise([address, bits]: Range): Range {
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return [address, bits];
}

function clientAddress(req: IncomingMessage): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const raw = clientAddressOf(req);
  if (!raw) return undefined;
  try {
    return ipaddr.process(raw); // unwraps ::ffff:1.2.3.4 to 1.2.3.4
  } catch {
    return undefined;
  }
}

function matches(address: ipaddr.IPv4 | ipaddr.IPv6, ranges: Range[]): boolean {
  for (const [range, bits] of ranges) {
    if (range.kind() === address.kind() && address.match(range as never, bits)) return true;
  }
  return false;
}

/** The route option `ipFilter`: client address rules, before authentication; upgrades are refused with 403 too. */
export const ipFilterFeature: FeatureDescriptor = {
  option: 'ipFilter',
  phase: 'admit',
  upgrade: { apply: true },
  build: (value, scope) => ({ handler: ipFilter(withGatewayErrors(value as IpFilterOptions, `${scope.optionPrefix}ipFilter`), `${scope.optionPrefix}ipFilter.`) }),
};
