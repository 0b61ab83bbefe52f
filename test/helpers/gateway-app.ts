/**
 * The boot most integration suites share: a real Express app (5 unless told) with one gateway() mounted,
 * listening on an ephemeral 127.0.0.1 port; `close()` closes the gateway, then the server.
 */
import { gateway } from '../../index';
import type { Gateway, GatewayOptions } from '../../index';
import { ExpressFactory, expressVersions, listen, RunningApp } from './app';

export type ExpressApp = ReturnType<ExpressFactory>;

export interface GatewayAppSetup {
  /** The Express to build the app with (the factory of `describe.each(expressVersions)`); Express 5 by default. */
  express?: ExpressFactory;
  /** Runs before the gateway is mounted: settings such as `trust proxy`, body parsers, middlewares in front. */
  before?: (app: ExpressApp) => void;
  /** Runs after the gateway is mounted: the app's own routes and error handlers behind it. */
  after?: (app: ExpressApp) => void;
  /** Hand the server's 'upgrade' events to `gw.upgrade`. */
  upgrade?: boolean;
}

export interface GatewayApp extends RunningApp {
  /** The mounted gateway. */
  gw: Gateway;
}

/** Starts Express with `gateway(options)` mounted (see GatewayAppSetup); `close()` closes both. */
export async function gatewayApp(options: GatewayOptions, setup: GatewayAppSetup = {}): Promise<GatewayApp> {
  const gw = gateway(options);
  const server = (setup.express ?? expressVersions[0][1])();
  setup.before?.(server);
  server.use(gw);
  setup.after?.(server);
  const app = await listen(server);
  if (setup.upgrade) app.server.on('upgrade', gw.upgrade);
  return {
    ...app,
    gw,
    close: async () => {
      await gw.close();
      await app.close();
    },
  };
}
