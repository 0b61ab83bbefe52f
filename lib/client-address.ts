/**
 * The client's address, one answer for rate limits, IP rules and logs: Express's `req.ip` (which honours
 * `trust proxy`), or the same walk over X-Forwarded-For for requests Express never saw (WebSocket upgrades),
 * always without a port. Some cloud proxies append the port (`203.0.113.7:40000`); keyed on that, a rate
 * limit would count per connection instead of per client.
 */
import type { IncomingMessage } from 'node:http';
import { trustFunctionOf } from './forwarding-headers';

/** The client address without a port, or '' when the socket has none (already closed). */
export function clientAddress(req: IncomingMessage): string {
  const fromExpress = (req as { ip?: unknown }).ip;
  return withoutPort(typeof fromExpress === 'string' ? fromExpress : forwardedAddress(req));
}

/** proxy-addr's walk, as Express does it: from the socket outwards while each hop is trusted. */
function forwardedAddress(req: IncomingMessage): string {
  const remote = req.socket.remoteAddress ?? '';
  const header = req.headers['x-forwarded-for'];
  if (!remote || !header) return remote;
  const trust = trustFunctionOf(req);
  const hops = [remote, ...String(header).split(',').map((hop) => hop.trim()).filter(Boolean).reverse()];
  for (let i = 0; i < hops.length - 1; i++) if (!trust(hops[i], i)) return hops[i];
  return hops[hops.length - 1];
}

/** `203.0.113.7:40000` → `203.0.113.7`, `[2001:db8::7]:443` → `2001:db8::7`; bare IPv6 is left alone. */
export function withoutPort(address: string): string {
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    return end === -1 ? address : address.slice(1, end);
  }
  const colon = address.indexOf(':');
  if (colon !== -1 && colon === address.lastIndexOf(':') && address.indexOf('.') !== -1) return address.slice(0, colon);
  return address;
}
