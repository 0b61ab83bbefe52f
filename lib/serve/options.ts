/**
 * The options of `frontdoor serve`, their defaults (in one place) and their checks: the CLI's flags arrive as
 * strings and leave as a resolved ServeConfig, or as a ServeUsageError naming the flag and the fix.
 */
import { availableParallelism } from 'node:os';
import { parseDuration } from '../duration';

/** What `frontdoor serve` takes; the CLI flags, by name. */
export interface ServeOptions {
  /** The config file (YAML or JSON), as for gateway.fromFile(). */
  file: string;
  /** Port of the public listener. Defaults to 8080. */
  port?: number | string;
  /** Address of the public listener. Defaults to `0.0.0.0` (every IPv4 interface, as a container needs). */
  host?: string;
  /** Processes serving requests: a number, or `auto` for one per core. Defaults to 1 (no cluster). */
  workers?: number | string;
  /** PEM certificate chain file: with `key`, the public listener speaks HTTPS. Defaults to none (HTTP). */
  cert?: string;
  /** PEM private key file of `cert`. */
  key?: string;
  /** PEM CA file: the listener asks clients for a certificate and checks it against these CAs (for `auth: { mtls }`). Defaults to none. */
  ca?: string;
  /** Reload the config file when it changes, in every worker. Defaults to false. */
  watch?: boolean;
  /** Port of the admin listener (`/healthz`, `/readyz`, `/metrics`); the same as `port` puts them on the public listener. Defaults to none (no admin endpoints). */
  adminPort?: number | string;
  /** Address of the admin listener. Defaults to `host`. */
  adminHost?: string;
  /** How long requests in flight may take to finish after SIGTERM or SIGINT before their connections are cut. Defaults to 30 s. */
  drainTimeout?: number | string;
  /** Where `${env:NAME}` references are read. Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** The defaults of `frontdoor serve`. */
export const SERVE_DEFAULTS = { port: 8080, host: '0.0.0.0', workers: 1, drainTimeoutMs: 30_000 } as const;

/** The resolved options. */
export interface ServeConfig {
  file: string;
  port: number;
  host: string;
  workers: number;
  tls: { cert: string; key: string; ca: string | undefined } | undefined;
  watch: boolean;
  /** undefined: no admin endpoints; `port`: on the public listener. */
  adminPort: number | undefined;
  adminHost: string;
  drainTimeoutMs: number;
  env: NodeJS.ProcessEnv;
}

/** A flag that cannot be used: the CLI says so and exits 2. */
export class ServeUsageError extends Error {
  override readonly name = 'ServeUsageError';
}

export function resolveServeOptions(options: ServeOptions): ServeConfig {
  const port = portOf(options.port ?? SERVE_DEFAULTS.port, '--port');
  const host = options.host ?? SERVE_DEFAULTS.host;
  if ((options.cert === undefined) !== (options.key === undefined)) throw new ServeUsageError('--cert and --key go together: give both for HTTPS, or neither for HTTP.');
  if (options.ca !== undefined && options.cert === undefined) throw new ServeUsageError('--ca asks clients for certificates, which needs HTTPS: give --cert and --key too.');
  let drainTimeoutMs: number;
  try {
    drainTimeoutMs = parseDuration(options.drainTimeout ?? SERVE_DEFAULTS.drainTimeoutMs, '--drain-timeout');
  } catch {
    throw new ServeUsageError(`--drain-timeout must be a duration such as 30s or 500ms; received ${JSON.stringify(options.drainTimeout)}.`);
  }
  return {
    file: options.file,
    port,
    host,
    workers: workersOf(options.workers ?? SERVE_DEFAULTS.workers),
    tls: options.cert !== undefined && options.key !== undefined ? { cert: options.cert, key: options.key, ca: options.ca } : undefined,
    watch: options.watch === true,
    adminPort: options.adminPort === undefined ? undefined : portOf(options.adminPort, '--admin-port'),
    adminHost: options.adminHost ?? host,
    drainTimeoutMs,
    env: options.env ?? process.env,
  };
}

function portOf(value: number | string, flag: string): number {
  const port = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ServeUsageError(`${flag} must be a port number from 0 to 65535; received ${JSON.stringify(value)}.`);
  return port;
}

function workersOf(value: number | string): number {
  if (value === 'auto') return availableParallelism();
  const workers = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(workers) || workers < 1 || workers > 1024) throw new ServeUsageError(`--workers must be a number of processes (1 or more) or "auto" (one per core); received ${JSON.stringify(value)}.`);
  return workers;
}
