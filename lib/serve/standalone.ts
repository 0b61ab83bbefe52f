/**
 * `frontdoor serve` in one process (`--workers 1`, the default): the admin listener first (so /readyz says
 * "starting" while the config loads), then the gateway's listener; on SIGTERM/SIGINT /readyz turns 503, the
 * listener drains, the gateway closes, and the admin listener goes last.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log';
import { defaultMetricsRegistry } from '../../middleware/metrics';
import { adminListener, adminRoutes } from './admin';
import type { AdminSources, Readiness } from './admin';
import { listen, startInstance } from './instance';
import type { Instance } from './instance';
import { ServeState } from './listener';
import type { ServeConfig } from './options';
import { shutdownSignals } from './signals';

export async function serveStandalone(config: ServeConfig, logger: Required<Logger>): Promise<number> {
  const state = new ServeState();
  let instance: Instance | undefined;
  const sources: AdminSources = {
    readiness: () => readinessOf(state, instance),
    metrics: () => defaultMetricsRegistry().exposition(),
  };
  const signals = shutdownSignals(() => {
    logger.warn('frontdoor: second signal: cutting the requests still in flight.');
    instance?.cut();
  });
  const sharedPort = config.adminPort === config.port;
  let admin: http.Server | undefined;
  try {
    if (config.adminPort !== undefined && !sharedPort) {
      admin = http.createServer(adminListener(sources));
      await listen(admin, config.adminPort, config.adminHost);
      logger.info(`frontdoor: admin endpoints on http://${hostOf(config.adminHost)}:${(admin.address() as AddressInfo).port} (/healthz, /readyz, /metrics)`);
    }
    instance = await startInstance(config, state, logger, sharedPort ? adminRoutes(sources) : undefined);
  } catch (err) {
    signals.remove();
    await closeServer(admin);
    throw err;
  }
  logger.info(`frontdoor: serving ${config.file} on ${instance.url} (pid ${process.pid}${config.watch ? ', reloading on change' : ''})`);
  const signal = await signals.first;
  logger.info(`frontdoor: ${signal}: draining ${state.inFlight} requests in flight (at most ${config.drainTimeoutMs} ms)`);
  const cut = await instance.drain();
  if (cut > 0) logger.warn(`frontdoor: the drain timeout passed: ${cut} requests were cut.`);
  await closeServer(admin);
  signals.remove();
  logger.info('frontdoor: stopped');
  return 0;
}

/** /readyz of one process: ready once the config is loaded and the listener accepts, until the drain. */
export function readinessOf(state: ServeState, instance: Instance | undefined): Readiness {
  const status = state.draining ? 'draining' : state.loaded ? 'ready' : 'starting';
  const gw = instance?.gw;
  return {
    ready: status === 'ready',
    status,
    inFlight: state.inFlight,
    ...(gw ? { routes: gw.routes().length, reloads: gw.reloads, lastReloadFailed: gw.lastReloadError !== undefined } : {}),
  };
}

export function hostOf(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

async function closeServer(server: http.Server | undefined): Promise<void> {
  if (!server?.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
