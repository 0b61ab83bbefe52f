/**
 * gateway.fromFile(path, { watch }): a gateway built from a YAML or JSON file, checked against the file's
 * lines, and with `watch`, reloaded when the file changes: a burst of writes is one reload, and a file that
 * does not check out keeps the running table serving (the errors are logged and kept in `lastReloadError`).
 */
import { watch as watchPath } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import path from 'node:path';
import { fileError, readConfig } from '../lib/config-file';
import { ConfigError } from '../lib/errors';
import { consoleLogger } from '../lib/log';
import type { Logger } from '../lib/log';
import { gateway, REPORT_RELOAD_ERROR } from './gateway';
import type { Gateway, GatewayOptions } from './gateway';

export interface FromFileOptions {
  /** Reload when the file changes. Defaults to false. */
  watch?: boolean;
  /** Quiet time after the last write before a reload, so an editor's burst of writes is one reload. Defaults to 100 ms. */
  debounce?: number;
  /** How long the replaced table may finish its requests before what it held is closed anyway. Defaults to 30 s. */
  drainTimeout?: number;
  /** Where `${env:NAME}` references are read from. Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Where reload outcomes are logged. Defaults to the console. */
  logger?: Logger;
}

/** A gateway built from a file; with `watch`, `reloads` counts the reloads applied so far. */
export type FileGateway = Gateway & { readonly file: string; readonly reloads: number };

/**
 * @example
 * app.use(await gateway.fromFile('gateway.yaml', { watch: true }));
 */
export async function gatewayFromFile(file: string, options: FromFileOptions = {}): Promise<FileGateway> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? consoleLogger;
  const built = await build(file, env);
  const gw = built as FileGateway;
  let reloads = 0;
  Object.defineProperty(gw, 'file', { value: file, enumerable: true });
  Object.defineProperty(gw, 'reloads', { get: () => reloads, enumerable: true });
  if (!options.watch) return gw;

  const debounceMs = options.debounce ?? 100;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  const reload = async () => {
    // Whether gw.reload() got the options (it counts its own failures in metrics).
    let built = false;
    try {
      const config = await readConfig(file, env);
      try {
        built = true;
        await gw.reload(config.options as GatewayOptions, { drainTimeout: options.drainTimeout });
      } catch (err) {
        throw err instanceof ConfigError ? fileError(config, err.issues) : err;
      }
      reloads++;
    } catch (err) {
      const error = err instanceof ConfigError ? err : new ConfigError(`reloading ${file} failed: ${(err as Error)?.message ?? err}`);
      gw[REPORT_RELOAD_ERROR](error, built);
      logger.error(`frontdoor: ${file} was not applied; the previous configuration keeps serving.\n${error.message}`);
    }
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      // One reload at a time; writes during one cause exactly one more.
      if (running) {
        again = true;
        return;
      }
      running = reload().finally(() => {
        running = undefined;
        if (again) {
          again = false;
          schedule();
        }
      });
    }, debounceMs);
    timer.unref();
  };
  // The directory, not the file: editors save by writing a new file and renaming it over the old one.
  const name = path.basename(file);
  const watcher: FSWatcher = watchPath(path.dirname(path.resolve(file)), (_event, changed) => {
    if (changed === null || changed.toString() === name) schedule();
  });
  watcher.on('error', (err) => logger.error(`frontdoor: watching ${file} failed; reloads stop.`, err));
  watcher.unref();

  const close = gw.close.bind(gw);
  gw.close = async () => {
    watcher.close();
    clearTimeout(timer);
    await running;
    await close();
  };
  return gw;
}

/** Reads, checks and builds: a mistake the gateway finds (a URL without scheme, twin routes) gets its line too. */
async function build(file: string, env: NodeJS.ProcessEnv): Promise<Gateway> {
  const config = await readConfig(file, env);
  try {
    return gateway(config.options);
  } catch (err) {
    throw err instanceof ConfigError ? fileError(config, err.issues) : err;
  }
}
