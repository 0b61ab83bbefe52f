/**
 * The public listener's request handler: gateway() straight on node:http, with no framework in between.
 * gateway() is a plain (req, res, next) middleware; here `next` is the end of the line: a request no route
 * matches is a 404 problem (ERR_NO_ROUTE), an error handed on is rendered as a problem. It also counts the
 * requests in flight, so a drain knows when it is done.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors';
import { sendProblem } from '../problem';
import type { Gateway } from '../../middleware/gateway';

/** Requests in flight and whether the server is draining, shared by the listener, the drain and /readyz. */
export class ServeState {
  /** True once the config is loaded and the listener accepts connections. */
  loaded = false;
  /** True from SIGTERM/SIGINT on: new connections are refused, in-flight requests finish. */
  draining = false;
  inFlight = 0;
  private idle: Array<() => void> = [];

  /** Resolves when no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  started(): void {
    this.inFlight++;
  }

  ended(): void {
    this.inFlight--;
    if (this.inFlight > 0) return;
    const waiting = this.idle;
    this.idle = [];
    for (const resolve of waiting) resolve();
  }
}

const NO_ROUTE = new GatewayError('ERR_NO_ROUTE', { detail: 'No route of this gateway matches the method, host and path of the request.' });

/** The handler of the public listener. `admin`, when given, answers its paths first (`--admin-port` = `--port`). */
export function gatewayListener(gw: Gateway, state: ServeState, admin?: (req: IncomingMessage, res: ServerResponse) => boolean): (req: IncomingMessage, res: ServerResponse) => void {
  return function serveRequest(req, res) {
    state.started();
    res.once('close', () => state.ended());
    // A request arriving on a kept-alive connection during the drain is served, and its connection closed after it.
    if (state.draining) res.shouldKeepAlive = false;
    if (admin?.(req, res)) return;
    gw(req, res, (err) => sendProblem(req, res, err ?? NO_ROUTE));
  };
}
