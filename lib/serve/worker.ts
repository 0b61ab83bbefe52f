/**
 * A cluster worker of `frontdoor serve --workers N`: the same serving process as the standalone one, told by
 * the primary over IPC when to drain and asked for its metrics. It also drains on its own SIGTERM/SIGINT (Ctrl-C
 * reaches every process of the group) and when the primary goes away.
 */
import type { Logger } from '../log';
import { defaultMetricsRegistry } from '../../middleware/metrics';
import { adminRoutes } from './admin';
import { startInstance } from './instance';
import type { Instance } from './instance';
import { ServeState } from './listener';
import type { ServeConfig } from './options';
import { shutdownSignals } from './signals';
import { readinessOf } from './standalone';

/** Messages between the primary and its workers. */
export type ToWorker = { type: 'frontdoor:drain' } | { type: 'frontdoor:metrics'; id: number };
export type ToPrimary = { type: 'frontdoor:ready'; url: string } | { type: 'frontdoor:draining' } | { type: 'frontdoor:metrics'; id: number; text?: string; error?: string };

export function isWorkerMessage(message: unknown): message is ToWorker | ToPrimary {
  return !!message && typeof message === 'object' && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('frontdoor:');
}

export async function serveWorker(config: ServeConfig, logger: Required<Logger>, slot: number): Promise<number> {
  const state = new ServeState();
  let instance: Instance | undefined;
  const send = (message: ToPrimary) => {
    if (process.connected) process.send?.(message);
  };
  let requestDrain: () => void = () => undefined;
  const drainRequested = new Promise<void>((resolve) => (requestDrain = resolve));
  const signals = shutdownSignals(() => instance?.cut());
  void signals.first.then(requestDrain);
  const onMessage = (message: unknown) => {
    if (!isWorkerMessage(message)) return;
    if (message.type === 'frontdoor:drain') requestDrain();
    else if (message.type === 'frontdoor:metrics') {
      defaultMetricsRegistry()
        .exposition()
        .then(
          (text) => send({ type: 'frontdoor:metrics', id: message.id, text }),
          (err: unknown) => send({ type: 'frontdoor:metrics', id: message.id, error: (err as Error)?.message ?? String(err) }),
        );
    }
  };
  process.on('message', onMessage);
  process.once('disconnect', requestDrain);
  try {
    // --admin-port equal to --port: each worker answers the admin paths with its own view.
    const sources = { readiness: () => readinessOf(state, instance), metrics: () => defaultMetricsRegistry().exposition() };
    instance = await startInstance(config, state, logger, config.adminPort === config.port ? adminRoutes(sources) : undefined);
  } catch (err) {
    signals.remove();
    process.off('message', onMessage);
    throw err;
  }
  send({ type: 'frontdoor:ready', url: instance.url });
  await drainRequested;
  send({ type: 'frontdoor:draining' });
  const cut = await instance.drain();
  if (cut > 0) logger.warn(`frontdoor: worker ${slot} (pid ${process.pid}): the drain timeout passed: ${cut} requests were cut.`);
  signals.remove();
  process.off('message', onMessage);
  return 0;
}
