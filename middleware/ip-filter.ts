/**
 * ipFilter(): allows or denies requests by client address, with CIDR ranges for IPv4 and IPv6.
 * The address is `req.ip` without a port, so it follows Express's `trust proxy` setting (the socket address
 * on connect), on WebSocket upgrades too.
 */
import type { IncomingMessage } from 'node:http';
import ipaddr from 'ipaddr.js';
import { clientAddress as clientAddressOf } from '../lib/client-address';
import { ConfigError, GatewayError } from '../lib/errors';
import { respondOrNext } from '../lib/problem';
import { withGatewayErrors } from '../lib/pipeline';
import type { ErrorMode, FeatureDescriptor, Middleware } from '../lib/pipeline';
import { defineSchema, errorMode, parseOptions } from '../lib/schema';

export interface IpFilterOptions {
  /** Only these addresses or ranges may pass, e.g. `['10.0.0.0/8', '2001:db8::/32', '127.0.0.1']`. Defaults to every address not denied. */
  allow?: string[];
  /** These addresses or ranges are refused, even when `allow` matches. Defaults to none. */
  deny?: string[];
  /** Answer refusals as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

/** The options of ipFilter(). Each entry is parsed as an address or CIDR range by ipFilter(), which names the one that is not. */
export const ipFilterSchema = defineSchema((z) => {
  const list = () => z.array(z.string({ error: 'must be an address or CIDR range' }), { error: 'must be a list of addresses or CIDR ranges.' });
  return z.strictObject(
    {
      allow: list().optional(),
      deny: list().default([]),
      onError: errorMode(z).default('respond'),
    },
    { error: "must be an object of ipFilter() options, e.g. { allow: ['10.0.0.0/8'] }." },
  );
});

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * @example
 * app.use('/admin', ipFilter({ allow: ['10.0.0.0/8', 'fd00::/8'] }), proxy({ target }));
 */
export function ipFilter(options: IpFilterOptions, optionPrefix = ''): Middleware {
  if (!options || typeof options !== 'object') throw new ConfigError(`ipFilter() needs options. Example: ipFilter({ allow: ['10.0.0.0/8'] }).`);
  const config = parseOptions(ipFilterSchema(), options, optionPrefix);
  const allow = config.allow === undefined ? undefined : parseRanges(config.allow, optionPrefix + 'allow');
  const deny = parseRanges(config.deny, optionPrefix + 'deny');
  if (!allow && deny.length === 0) throw new ConfigError(`ipFilter() needs "${optionPrefix}allow" or "${optionPrefix}deny".`);
  const { onError } = config;

  return function ipFilterMiddleware(req, res, next) {
    const address = clientAddress(req);
    const allowed = address !== undefined && !matches(address, deny) && (!allow || matches(address, allow));
    if (allowed) return next();
    respondOrNext(onError, req, res, next, new GatewayError('ERR_IP_DENIED', { detail: 'Requests from your address are not allowed here.' }));
  };
}

/** Parses each entry (the schema made sure they are strings); names the first that is no address or range. */
function parseRanges(list: readonly string[], option: string): Range[] {
  return list.map((entry) => {
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
  schemas: defineSchema(() => ({ option: ipFilterSchema() })),
  build: (value, scope) => ({ handler: ipFilter(withGatewayErrors(value as IpFilterOptions, `${scope.optionPrefix}ipFilter`), `${scope.optionPrefix}ipFilter.`) }),
};
