/**
 * One serving process: the gateway built from the config file (reloaded on change with `--watch`), on its own
 * node:http or node:https server, and the drain that ends it: stop accepting, let the requests in flight
 * finish within the drain timeout, cut what is left, then close the gateway (pools, Redis, timers).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log';
import { gatewayFromFile } from '../../middleware/gateway-file';
import type { FileGateway } from '../../middleware/gateway-file';
import { gatewayListener, ServeState } from './listener';
import type { ServeConfig } from './options';

/**
 * Longer than the idle timeout of the usual load balancers (60 s on AWS ALB, GCP, nginx's keepalive_timeout 75 s
 * is the one exception to set): the balancer, not the gateway, should be the side that closes an idle connection,
 * or it may send a request on a connection the gateway is closing.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export interface Instance {
  gw: FileGateway;
  server: http.Server;
  /** `http://host:port` or `https://…`, with the port actually bound (for `--port 0`). */
  url: string;
  /** Stops accepting, waits for the requests in flight (at most the drain timeout), then closes everything; resolves to the number of requests cut. */
  drain(): Promise<number>;
  /** Cuts every connection now (a second signal during the drain). */
  cut(): void;
}

export async function startInstance(config: ServeConfig, state: ServeState, logger: Logger, admin?: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<Instance> {
  const tls = config.tls ? readTls(config.tls) : undefined;
  const gw = await gatewayFromFile(config.file, { watch: config.watch, env: config.env, drainTimeout: config.drainTimeoutMs, logger });
  const listener = gatewayListener(gw, state, admin);
  // rejectUnauthorized: false: a client certificate is asked for, not required at the handshake, so routes
  // without mTLS serve clients without one, and `auth: { mtls }` answers an untrusted one with a 401 problem.
  const server = tls ? https.createServer({ ...tls, requestCert: tls.ca !== undefined, rejectUnauthorized: false }, listener) : http.createServer(listener);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;
  // A client that resets during the TLS handshake or sends garbage is the client's problem, never a crash.
  server.on('clientError', (_err, socket) => {
    if (socket.writable && !socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  gw.attach(server);
  try {
    await listen(server, config.port, config.host);
  } catch (err) {
    await gw.close();
    throw err;
  }
  state.loaded = true;
  const { port } = server.address() as AddressInfo;
  const url = `${tls ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  let draining: Promise<number> | undefined;
  return {
    gw,
    server,
    url,
    cut: () => server.closeAllConnections(),
    drain() {
      draining ??= (async () => {
        state.draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // close() closes the connections idle now; these are the ones that become idle after their response.
        const sweep = setInterval(() => server.closeIdleConnections(), 100);
        let timer: NodeJS.Timeout | undefined;
        const finished = await Promise.race([state.whenIdle().then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), config.drainTimeoutMs)))]);
        clearTimeout(timer);
        clearInterval(sweep);
        const cut = finished ? 0 : state.inFlight;
        server.closeAllConnections();
        await closed;
        await gw.close();
        return cut;
      })();
      return draining;
    },
  };
}

function readTls(files: NonNullable<ServeConfig['tls']>): { cert: Buffer; key: Buffer; ca?: Buffer } {
  const read = (file: string, flag: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read the ${flag} file ${JSON.stringify(file)}: ${(err as Error).message}`);
    }
  };
  return { cert: read(files.cert, '--cert'), key: read(files.key, '--key'), ...(files.ca ? { ca: read(files.ca, '--ca') } : {}) };
}

/** Listens, rejecting on EADDRINUSE and the like instead of emitting an unhandled 'error'. */
export function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(new Error(`cannot listen on ${host}:${port}: ${err.message}`));
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve();
    });
  });
}
