/**
 * Who may open the dashboard: the `auth` option of dashboard(), made into a middleware. A user name and password
 * (HTTP Basic: the browser asks for them), an API key (in a header, or as the Basic password so a browser can log
 * in too), authenticate() options (JWT, API keys, mTLS), or any middleware of yours (your session check). Secrets
 * are compared as SHA-256 digests in constant time, may be configured as `sha256:<hex>` digests, and repeated
 * wrong guesses from one address are throttled.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getConsumer } from '../consumer';
import { ConfigError, GatewayError } from '../errors';
import type { Middleware, Next } from '../pipeline';
import { sendProblem } from '../problem';
import { authenticate } from '../../middleware/authenticate';
import type { AuthenticateOptions } from '../../middleware/authenticate';
import { failureBudget } from '../../middleware/auth/failure-budget';

/** The `auth` option of dashboard(). */
export type DashboardAuth =
  /** HTTP Basic with one user name and password (`password` may be `'sha256:<hex>'`). */
  | { username: string; password: string }
  /** One or more API keys (each may be `'sha256:<hex>'`), in `header` (default `x-api-key`) or as the Basic password. */
  | { apiKey: string | string[]; header?: string }
  /** authenticate() options: JWT, API keys with consumers, mTLS. */
  | AuthenticateOptions
  /** Your own middleware: calls `next()` to let the request in, answers (or `next(err)`) to refuse it. */
  | Middleware;

/** The dashboard's access check, and who it let in (for the change log). */
export interface DashboardGuard {
  check: Middleware;
  /** Who the request was let in as (a user name, `api key #2`, a consumer id). */
  identity(req: IncomingMessage): string | undefined;
}

const REALM = 'frontdoor dashboard';
const BASIC_CHALLENGE = `Basic realm="${REALM}", charset="UTF-8"`;
const DIGEST = /^sha256:([0-9a-f]{64})$/i;

/** A secret as the digest it is compared by. */
function digestOf(secret: string): Buffer {
  const given = DIGEST.exec(secret);
  return given ? Buffer.from(given[1], 'hex') : createHash('sha256').update(secret, 'utf8').digest();
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The user name and password of a Basic `Authorization` header. */
function basicCredentials(req: IncomingMessage): { username: string; password: string } | undefined {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function missing(challenge: string): GatewayError {
  return new GatewayError('ERR_AUTH_MISSING', { detail: 'The dashboard needs credentials.', headers: { 'WWW-Authenticate': challenge } });
}

function invalid(challenge: string, what: string): GatewayError {
  return new GatewayError('ERR_AUTH_KEY_INVALID', { detail: `The ${what} is not valid.`, headers: { 'WWW-Authenticate': challenge } });
}

/** Checks one secret-based scheme, with the failure budget in front. */
function secretGuard(verify: (req: IncomingMessage) => { identity: string } | 'missing' | 'invalid', challenge: string, what: string): DashboardGuard {
  const budget = failureBudget(20, 60_000);
  const identities = new WeakMap<IncomingMessage, string>();
  return {
    check(req, res, next) {
      const outcome = verify(req);
      if (outcome === 'missing') return sendProblem(req, res, missing(challenge));
      const throttled = budget.exhausted(req);
      if (throttled) return sendProblem(req, res, throttled);
      if (outcome === 'invalid') {
        const error = invalid(challenge, what);
        budget.record(req, error);
        return sendProblem(req, res, error);
      }
      identities.set(req, outcome.identity);
      next();
    },
    identity: (req) => identities.get(req),
  };
}

function basicGuard(auth: { username: unknown; password: unknown }, option: string): DashboardGuard {
  if (typeof auth.username !== 'string' || auth.username === '' || auth.username.includes(':')) throw new ConfigError(`"${option}.username" must be a non-empty user name without ':'.`);
  if (typeof auth.password !== 'string' || auth.password === '') throw new ConfigError(`"${option}.password" must be a non-empty string (or 'sha256:<hex digest>'). Example: auth: { username: 'ops', password: process.env.DASHBOARD_PASSWORD }.`);
  const user = sha256(auth.username);
  const password = digestOf(auth.password);
  const username = auth.username;
  return secretGuard(
    (req) => {
      const credentials = basicCredentials(req);
      if (!credentials) return 'missing';
      // Both compared, always: the time taken does not tell which one was wrong.
      const userOk = timingSafeEqual(sha256(credentials.username), user);
      const passwordOk = timingSafeEqual(sha256(credentials.password), password);
      return userOk && passwordOk ? { identity: username } : 'invalid';
    },
    BASIC_CHALLENGE,
    'user name or password',
  );
}

function apiKeyGuard(auth: { apiKey: unknown; header?: unknown }, option: string): DashboardGuard {
  const keys = Array.isArray(auth.apiKey) ? auth.apiKey : [auth.apiKey];
  if (keys.length === 0 || !keys.every((key) => typeof key === 'string' && key !== '')) throw new ConfigError(`"${option}.apiKey" must be a key or a list of keys (each may be 'sha256:<hex digest>'). Example: auth: { apiKey: process.env.DASHBOARD_KEY }.`);
  if (auth.header !== undefined && (typeof auth.header !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(auth.header))) throw new ConfigError(`"${option}.header" must be a header name, e.g. 'x-api-key'.`);
  const header = ((auth.header as string | undefined) ?? 'x-api-key').toLowerCase();
  const digests = (keys as string[]).map(digestOf);
  const challenge = `${BASIC_CHALLENGE}, ApiKey realm="${REALM}", header="${header}"`;
  return secretGuard(
    (req) => {
      const value = req.headers[header];
      const presented = typeof value === 'string' && value !== '' ? value : basicCredentials(req)?.password;
      if (presented === undefined || presented === '') return 'missing';
      const digest = sha256(presented);
      let found = -1;
      // Every key compared, without stopping early.
      digests.forEach((candidate, index) => {
        if (timingSafeEqual(candidate, digest) && found < 0) found = index;
      });
      return found < 0 ? 'invalid' : { identity: `api key #${found + 1}` };
    },
    challenge,
    'API key',
  );
}

function middlewareGuard(check: Middleware): DashboardGuard {
  return {
    check(req, res, next) {
      check(req, res, (err?: unknown) => (err === undefined || err === null ? next() : sendProblem(req, res, err)));
    },
    identity(req) {
      const user = (req as { user?: { id?: unknown; name?: unknown; username?: unknown } }).user;
      const id = getConsumer(req)?.id ?? user?.id ?? user?.username ?? user?.name;
      return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined;
    },
  };
}

/** Builds the access check of the `auth` option; throws a ConfigError naming what is wrong. */
export function dashboardGuard(auth: unknown, option = 'auth'): DashboardGuard {
  if (typeof auth === 'function') return middlewareGuard(auth as Middleware);
  if (!auth || typeof auth !== 'object' || Array.isArray(auth)) {
    throw new ConfigError(`"${option}" must be { username, password }, { apiKey }, authenticate() options or a middleware. Example: auth: { username: 'ops', password: process.env.DASHBOARD_PASSWORD }.`);
  }
  const value = auth as Record<string, unknown>;
  if ('username' in value || 'password' in value) {
    const extra = Object.keys(value).filter((key) => key !== 'username' && key !== 'password');
    if (extra.length) throw new ConfigError(`"${option}.${extra[0]}" is not an option of a user name and password; it takes { username, password }.`);
    return basicGuard(value as { username: unknown; password: unknown }, option);
  }
  if (typeof value.apiKey === 'string' || Array.isArray(value.apiKey)) {
    const extra = Object.keys(value).filter((key) => key !== 'apiKey' && key !== 'header');
    if (extra.length) throw new ConfigError(`"${option}.${extra[0]}" is not an option of an API key; it takes { apiKey, header }.`);
    return apiKeyGuard(value as { apiKey: unknown; header?: unknown }, option);
  }
  if ((value as AuthenticateOptions).optional === true) throw new ConfigError(`"${option}.optional" would let anyone in: the dashboard needs a credential. Remove it.`);
  // authenticate() options: it checks them (with their own option paths) and answers its own 401s.
  return middlewareGuard(authenticate(value as AuthenticateOptions, `${option}.`));
}

/** The guard of a `public: true` dashboard: everyone in, nobody named. */
export const PUBLIC_GUARD: DashboardGuard = {
  check: (_req: IncomingMessage, _res: ServerResponse, next: Next) => next(),
  identity: () => undefined,
};
