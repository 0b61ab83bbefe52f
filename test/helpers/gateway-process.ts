/**
 * A gateway in a child process (gateway-child.js, on dist/), for measures of the gateway alone: the test
 * process's own RSS also counts the client's and the upstream's buffers, and jest's.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import type { GatewayOptions } from '../../index';

export interface GatewayProcess {
  url: string;
  port: number;
  /** The child's RSS now and its peak RSS so far (bytes). */
  memory(): Promise<{ rss: number; maxRss: number }>;
  /** Disconnects; the child closes the gateway and exits. */
  close(): Promise<void>;
}

/** Starts `gateway(options)` on `express` ('express' is 5, 'express4' is 4) in a child on this process's Node. */
export async function startGatewayProcess(options: GatewayOptions, express: 'express' | 'express4' = 'express'): Promise<GatewayProcess> {
  const child = fork(path.join(__dirname, 'gateway-child.js'), [JSON.stringify(options), express], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message: { port: number }) => resolve(message.port));
    child.once('exit', (code) => reject(new Error(`gateway-child.js exited with ${code} before listening (is dist/ built? npm run build)`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    memory: () =>
      new Promise((resolve) => {
        child.once('message', resolve);
        child.send('memory');
      }),
    close: async () => {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}
