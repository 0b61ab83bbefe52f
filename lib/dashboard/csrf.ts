/**
 * CSRF protection of the dashboard's cutover form: a signed double-submit cookie (OWASP's recommended
 * stateless pattern), plus an origin check. Opening the page sets a random cookie (HttpOnly, SameSite=Strict,
 * scoped to the dashboard's path) and puts HMAC(key, cookie) in the form. A change is accepted only when the
 * posted token is the HMAC of the cookie that came with it, and the request does not come from another site
 * (`Origin`, `Sec-Fetch-Site`). Another site can neither read the page (so not the token) nor set the cookie.
 *
 * Basic auth and API keys are sent by the browser with any request, cross-site ones too: that is why a
 * credential alone never allows a change.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const COOKIE = 'frontdoor_dashboard_csrf';
const COOKIE_VALUE = /^[A-Za-z0-9_-]{43}$/;

export interface CsrfGuard {
  /** The form's token for this request; sets the cookie it is bound to when the request had none. */
  tokenFor(req: IncomingMessage, res: ServerResponse, base: string): string;
  /** Why a change request is refused, or undefined when it may go on. */
  refusal(req: IncomingMessage, token: string | undefined): string | undefined;
}

/** `secret`: shared by every instance behind one address, so a form from one is accepted by another. Random otherwise. */
export function csrfGuard(secret?: string): CsrfGuard {
  const key = secret === undefined ? randomBytes(32) : Buffer.from(secret, 'utf8');
  const sign = (value: string) => createHmac('sha256', key).update(`frontdoor-dashboard-csrf:${value}`).digest('base64url');
  return {
    tokenFor(req, res, base) {
      let value = cookieOf(req);
      if (value === undefined) {
        value = randomBytes(32).toString('base64url');
        const secure = (req.socket as { encrypted?: boolean }).encrypted === true || (req as { secure?: boolean }).secure === true;
        // The mount path as the request spelled it: only plain path characters may go into the attribute.
        const path = /^\/[A-Za-z0-9/_.~%-]*$/.test(base) ? base : '/';
        res.appendHeader('Set-Cookie', `${COOKIE}=${value}; Path=${path}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`);
      }
      return sign(value);
    },
    refusal(req, token) {
      const site = req.headers['sec-fetch-site'];
      if (typeof site === 'string' && site !== 'same-origin') return `The change came from another site (Sec-Fetch-Site: ${site.slice(0, 20)}).`;
      const origin = req.headers.origin;
      if (typeof origin === 'string' && origin !== 'null' && !sameOrigin(origin, req)) return 'The change came from another origin.';
      if (origin === 'null') return 'The change came from an opaque origin.';
      const value = cookieOf(req);
      if (value === undefined) return 'The dashboard cookie is missing: open the dashboard page again, then retry.';
      if (typeof token !== 'string' || token === '') return 'The form token is missing: open the dashboard page again, then retry.';
      const expected = Buffer.from(sign(value));
      const given = Buffer.from(token);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'The form token does not match: open the dashboard page again, then retry.';
      return undefined;
    },
  };
}

function cookieOf(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === COOKIE) {
      const value = part.slice(eq + 1).trim();
      return COOKIE_VALUE.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/** The Origin's host is the Host the request was sent to (behind a proxy, the Host it forwards). */
function sameOrigin(origin: string, req: IncomingMessage): boolean {
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  const forwarded = (req as { hostname?: string }).hostname;
  const sent = req.headers.host;
  return host === sent || (forwarded !== undefined && host.split(':')[0] === forwarded);
}
