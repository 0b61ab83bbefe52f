/**
 * Starts a real redis-server on a free 127.0.0.1 port for the tests that need one. Where none is
 * installed, those tests skip with a visible message, unless REQUIRE_REDIS=1 (CI), where they fail.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { closedPort } from './upstream';

export interface RedisServer {
  url: string;
  port: number;
  /** Kills the server (an outage); `start()` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** True when a redis-server binary can be run. */
export const redisAvailable: boolean = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

/**
 * `describe` when Redis is available; otherwise `describe.skip` with a console warning naming the
 * suite, or a failing suite when REQUIRE_REDIS=1 says Redis must be there.
 */
export function describeWithRedis(name: string, body: () => void): void {
  if (redisAvailable) return describe(name, body);
  if (process.env.REQUIRE_REDIS === '1') {
    describe(name, () => {
      it('needs redis-server (REQUIRE_REDIS=1)', () => {
        throw new Error('redis-server is not installed but REQUIRE_REDIS=1: install it (apt-get install redis-server).');
      });
    });
    return;
  }
  console.warn(`SKIPPED "${name}": redis-server is not installed (apt-get install redis-server to run these tests).`);
  describe.skip(name, body);
}

export async function startRedis(): Promise<RedisServer> {
  const port = await closedPort();
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
      await waitForPort(port, 5000);
    },
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        running.once('exit', () => resolve());
        running.kill('SIGKILL');
      });
    },
  };
  await server.start();
  return server;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.end('PING\r\n');
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
