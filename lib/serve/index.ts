/**
 * `frontdoor serve`: the gateway of a config file as a server of its own (lib/cli.ts parses the flags).
 * One process by default; with `--workers N`, a node:cluster primary and N workers. Resolves with the exit
 * code once it stopped (after SIGTERM/SIGINT and the drain); rejects when it cannot start (a config file that
 * does not check out, a port in use, an unreadable certificate).
 */
import cluster from 'node:cluster';
import { consoleLogger } from '../log';
import type { Logger } from '../log';
import { resolveServeOptions } from './options';
import type { ServeOptions } from './options';
import { servePrimary, WORKER_SLOT_ENV } from './primary';
import { serveStandalone } from './standalone';
import { serveWorker } from './worker';

export { SERVE_DEFAULTS, ServeUsageError } from './options';
export type { ServeOptions } from './options';
export { ADMIN_PATHS } from './admin';
export { gatewayListener, ServeState } from './listener';

export async function serve(options: ServeOptions, logger: Required<Logger> = consoleLogger): Promise<number> {
  const config = resolveServeOptions(options);
  const slot = Number(process.env[WORKER_SLOT_ENV]);
  if (cluster.isWorker && slot > 0) return serveWorker(config, logger, slot);
  if (config.workers > 1) return servePrimary(config, logger);
  return serveStandalone(config, logger);
}
