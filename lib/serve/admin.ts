/**
 * The admin endpoints of `frontdoor serve`: `/healthz` (the process answers: liveness), `/readyz` (the config is
 * loaded and the server is not draining: readiness) and `/metrics` (Prometheus text). They live on their own
 * port (`--admin-port`), never on the public listener unless that port is the public one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors';
import { sendProblem } from '../problem';

/** The admin paths; the Kubernetes example's probes use them (test/unit/kubernetes-manifests.test.ts checks). */
export const ADMIN_PATHS = { health: '/healthz', ready: '/readyz', metrics: '/metrics' } as const;

/** What /readyz reports: `ready` decides the status (200 or 503); the rest is said in the body. */
export interface Readiness {
  ready: boolean;
  /** `starting` (no config loaded yet), `ready`, or `draining` (shutting down). */
  status: 'starting' | 'ready' | 'draining';
  [detail: string]: unknown;
}

export interface AdminSources {
  readiness(): Readiness;
  /** The metrics in Prometheus text format. */
  metrics(): Promise<string>;
}

/**
 * Answers the admin paths; returns false for any other path (so the public listener can carry them too).
 * GET and HEAD only; a probe is never cached.
 */
export function adminRoutes(sources: AdminSources): (req: IncomingMessage, res: ServerResponse) => boolean {
  return function adminRequest(req, res) {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== ADMIN_PATHS.health && path !== ADMIN_PATHS.ready && path !== ADMIN_PATHS.metrics) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('GET or HEAD\n');
      return true;
    }
    if (path === ADMIN_PATHS.health) {
      json(res, 200, { status: 'ok', pid: process.pid, uptime: Math.round(process.uptime()) });
    } else if (path === ADMIN_PATHS.ready) {
      const readiness = sources.readiness();
      json(res, readiness.ready ? 200 : 503, readiness);
    } else {
      sources.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
          res.end(`# failed to collect metrics: ${(err as Error)?.message ?? err}\n`);
        },
      );
    }
    return true;
  };
}

/** The admin listener's handler: the admin paths, and a 404 problem for anything else. */
export function adminListener(sources: AdminSources): (req: IncomingMessage, res: ServerResponse) => void {
  const routes = adminRoutes(sources);
  return function adminServer(req, res) {
    if (!routes(req, res)) sendProblem(req, res, new GatewayError('ERR_NO_ROUTE', { detail: `The admin port answers ${Object.values(ADMIN_PATHS).join(', ')}.` }));
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}
