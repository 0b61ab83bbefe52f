/**
 * The primary of `frontdoor serve --workers N` (node:cluster): forks the workers, which share the public port;
 * restarts one that dies, backing off while it keeps dying young; serves the admin endpoints for all of them
 * (ready while one worker or more serves, metrics merged with a `worker` label); and on SIGTERM/SIGINT tells
 * every worker to drain and waits for them. It never loads the gateway itself.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log';
import { adminListener } from './admin';
import type { AdminSources, Readiness } from './admin';
import { listen } from './instance';
import { mergeExpositions } from './metrics-merge';
import type { ServeConfig } from './options';
import { shutdownSignals } from './signals';
import { hostOf } from './standalone';
import { isWorkerMessage } from './worker';
import type { ToPrimary, ToWorker } from './worker';

/** Restart back-off: 100 ms, doubling while the worker keeps dying young, at most 10 s. */
export const RESTART_BACKOFF = { firstMs: 100, maxMs: 10_000, healthyAfterMs: 10_000 } as const;

/** How long the primary waits for a worker's metrics before leaving it out of a scrape. */
const METRICS_TIMEOUT_MS = 2000;

/** The environment variable that tells a forked process it is worker N (and which slot it fills). */
export const WORKER_SLOT_ENV = 'FRONTDOOR_WORKER_SLOT';

interface Slot {
  id: number;
  worker: Worker | undefined;
  ready: boolean;
  startedAt: number;
  /** Deaths in a row of a worker that lived less than RESTART_BACKOFF.healthyAfterMs. */
  youngDeaths: number;
  restartTimer: NodeJS.Timeout | undefined;
}

export async function servePrimary(config: ServeConfig, logger: Required<Logger>): Promise<number> {
  const slots: Slot[] = Array.from({ length: config.workers }, (_, index) => ({ id: index + 1, worker: undefined, ready: false, startedAt: 0, youngDeaths: 0, restartTimer: undefined }));
  let draining = false;
  let everReady = false;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const metricsWaiting = new Map<number, (message: Extract<ToPrimary, { type: 'frontdoor:metrics' }>) => void>();
  let nextMetricsId = 1;

  const fork = (slot: Slot) => {
    slot.restartTimer = undefined;
    slot.startedAt = Date.now();
    slot.ready = false;
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.id) });
    slot.worker = worker;
    worker.on('message', (message: unknown) => {
      if (!isWorkerMessage(message)) return;
      const received = message as ToPrimary;
      if (received.type === 'frontdoor:ready') {
        slot.ready = true;
        everReady = true;
        logger.info(`frontdoor: worker ${slot.id} (pid ${worker.process.pid}) serving ${config.file} on ${received.url}`);
        if (draining) tell(worker, { type: 'frontdoor:drain' });
      } else if (received.type === 'frontdoor:draining') {
        slot.ready = false;
      } else if (received.type === 'frontdoor:metrics') {
        metricsWaiting.get(received.id)?.(received);
      }
    });
    worker.on('exit', (code, signal) => {
      slot.worker = undefined;
      slot.ready = false;
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (draining) {
        if (slots.every((each) => !each.worker)) finish(0);
        return;
      }
      if (!everReady) {
        // No worker ever served: the config (or a flag) is wrong, and every restart would fail the same way.
        logger.error(`frontdoor: worker ${slot.id} exited with ${how} before it could serve (see its error above); stopping.`);
        void shutdown(1);
        return;
      }
      const lived = Date.now() - slot.startedAt;
      slot.youngDeaths = lived >= RESTART_BACKOFF.healthyAfterMs ? 0 : slot.youngDeaths + 1;
      const delay = Math.min(RESTART_BACKOFF.firstMs * 2 ** Math.max(0, slot.youngDeaths - 1), RESTART_BACKOFF.maxMs);
      logger.warn(`frontdoor: worker ${slot.id} (pid ${worker.process.pid}) exited with ${how}; restarting it in ${delay} ms`);
      slot.restartTimer = setTimeout(() => fork(slot), delay);
    });
  };

  const tell = (worker: Worker, message: ToWorker) => {
    if (worker.isConnected()) worker.send(message);
  };

  const readiness = (): Readiness => {
    const ready = slots.filter((slot) => slot.ready).length;
    const status = draining ? 'draining' : ready > 0 ? 'ready' : 'starting';
    return { ready: status === 'ready', status, workers: { ready, wanted: slots.length } };
  };

  const metrics = async (): Promise<string> => {
    const texts = new Map<number, string>();
    await Promise.all(
      slots.map(async (slot) => {
        const worker = slot.worker;
        if (!worker || !slot.ready) return;
        const id = nextMetricsId++;
        const answer = await new Promise<Extract<ToPrimary, { type: 'frontdoor:metrics' }> | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), METRICS_TIMEOUT_MS);
          metricsWaiting.set(id, (message) => {
            clearTimeout(timer);
            resolve(message);
          });
          tell(worker, { type: 'frontdoor:metrics', id });
        });
        metricsWaiting.delete(id);
        if (answer?.text !== undefined) texts.set(slot.id, answer.text);
      }),
    );
    return mergeExpositions(texts);
  };

  const sources: AdminSources = { readiness, metrics };
  let admin: http.Server | undefined;
  if (config.adminPort !== undefined && config.adminPort !== config.port) {
    admin = http.createServer(adminListener(sources));
    await listen(admin, config.adminPort, config.adminHost);
    logger.info(`frontdoor: admin endpoints on http://${hostOf(config.adminHost)}:${(admin.address() as AddressInfo).port} (/healthz, /readyz, /metrics)`);
  }

  let killTimer: NodeJS.Timeout | undefined;
  let exitCode = 0;
  const shutdown = async (code: number) => {
    if (draining) return;
    draining = true;
    exitCode = code;
    for (const slot of slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      if (slot.worker) tell(slot.worker, { type: 'frontdoor:drain' });
    }
    if (slots.every((slot) => !slot.worker)) finish(code);
    // A worker that does not finish its drain in time (plus a margin to close its pools) is killed.
    killTimer = setTimeout(() => {
      for (const slot of slots) slot.worker?.process.kill('SIGKILL');
    }, config.drainTimeoutMs + 5000);
  };
  const signals = shutdownSignals(() => {
    logger.warn('frontdoor: second signal: stopping the workers now.');
    for (const slot of slots) slot.worker?.process.kill('SIGKILL');
  });
  void signals.first.then((signal) => {
    logger.info(`frontdoor: ${signal}: draining ${slots.filter((slot) => slot.worker).length} workers (at most ${config.drainTimeoutMs} ms)`);
    void shutdown(0);
  });

  logger.info(`frontdoor: primary (pid ${process.pid}) starting ${slots.length} workers`);
  for (const slot of slots) fork(slot);
  await finished;
  clearTimeout(killTimer);
  signals.remove();
  if (admin?.listening) {
    const closed = new Promise<void>((resolve) => admin.close(() => resolve()));
    admin.closeAllConnections();
    await closed;
  }
  logger.info('frontdoor: stopped');
  return exitCode;
}
