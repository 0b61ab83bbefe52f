/**
 * The gRPC targets of a route: one grpc-js client (channel: one HTTP/2 connection, keep-alive pings, TLS) per
 * target, balanced and health-tracked by an UpstreamPool. The pool is the same one HTTP upstreams use, so ejection
 * with growing cooldowns, the health gauge and `gw.events` work alike; its targets are the gRPC addresses written
 * as `http://host:port` (`https://` with TLS) for bookkeeping only: no HTTP request is ever sent to them. Active
 * health uses the standard grpc.health.v1.Health/Check instead of an HTTP GET.
 */
import * as grpc from '@grpc/grpc-js';
import type { IncomingMessage } from 'node:http';
import { ConfigError } from '../errors';
import { UpstreamPool } from '../upstream-pool';
import type { UpstreamTarget } from '../upstream-pool';
import { isTargetFailure } from './status';

export interface ChannelTls {
  /** CA certificate(s) (PEM) of the service's certificate; the system roots when unset. */
  ca?: string | Buffer;
  /** Client certificate (PEM) for mTLS. */
  cert?: string | Buffer;
  /** Private key (PEM) of `cert`. */
  key?: string | Buffer;
  /** The name the service's certificate must carry, when it differs from the target host. */
  servername?: string;
}

export interface ChannelSettings {
  /** `host:port` addresses. */
  targets: string[];
  /** TLS to the targets; `undefined` for plaintext (h2c). */
  tls: ChannelTls | undefined;
  /** Keep-alive ping interval and ack timeout (ms); 0 turns pings off. */
  keepAlive: { time: number; timeout: number };
  /** Largest message sent or received (bytes). */
  maxMessageBytes: number;
  passive: false | { failures?: number; cooldown?: number; maxCooldown?: number };
  /** Active grpc.health.v1 checks, or false. */
  active: false | { interval: number; timeout: number; service: string };
}

/** One target: its pool entry and its client. */
export interface Channel {
  target: UpstreamTarget;
  client: grpc.Client;
}

const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** Refuses an address that is not `host:port`, naming the option. */
export function checkAddress(address: string, option: string): void {
  const match = ADDRESS.exec(address);
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new ConfigError(`"${option}" must be a gRPC address "host:port" such as 'localhost:50051' (no scheme); received ${JSON.stringify(address)}.`);
  }
}

export class GrpcChannels {
  readonly pool: UpstreamPool;
  private readonly channels = new Map<UpstreamTarget, grpc.Client>();
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(settings: ChannelSettings, optionPrefix: string) {
    const scheme = settings.tls ? 'https' : 'http';
    this.pool = new UpstreamPool({ targets: settings.targets.map((address) => `${scheme}://${address}`), health: { passive: settings.passive } }, optionPrefix);
    const credentials = channelCredentials(settings.tls, optionPrefix);
    const options: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': settings.maxMessageBytes,
      'grpc.max_send_message_length': settings.maxMessageBytes,
      // Each route's clients keep their own connections: closing one route's clients never cuts another's calls.
      'grpc.use_local_subchannel_pool': 1,
    };
    if (settings.keepAlive.time > 0) {
      options['grpc.keepalive_time_ms'] = settings.keepAlive.time;
      options['grpc.keepalive_timeout_ms'] = settings.keepAlive.timeout;
    }
    if (settings.tls?.servername) {
      options['grpc.ssl_target_name_override'] = settings.tls.servername;
      options['grpc.default_authority'] = settings.tls.servername;
    }
    settings.targets.forEach((address, index) => this.channels.set(this.pool.targets[index], new grpc.Client(address, credentials, options)));
    if (settings.active) this.startHealthChecks(settings.active);
  }

  /** A healthy target for the request (balanced), or undefined when every one is ejected or failing its checks. */
  pick(req: IncomingMessage): Channel | undefined {
    const target = this.pool.pick(req);
    return target ? { target, client: this.channels.get(target)! } : undefined;
  }

  /**
   * Passive health: a call ended with `code` (0 for OK). `trial`: the pick was an ejected target's trial. A
   * cancelled call (the client went away) gives no verdict. Returns true when this ejected the target.
   */
  report(target: UpstreamTarget, code: number | 'cancelled', trial: boolean): boolean {
    if (code === 'cancelled') {
      this.pool.release(target, trial);
      return false;
    }
    if (isTargetFailure(code)) return this.pool.reportFailure(target, trial);
    this.pool.reportSuccess(target);
    return false;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const client of this.channels.values()) client.close();
    await this.pool.close();
  }

  private startHealthChecks(active: { interval: number; timeout: number; service: string }): void {
    const request = encodeHealthRequest(active.service);
    const checkAll = () => {
      for (const [target, client] of this.channels) this.check(target, client, request, active.timeout);
    };
    const timer = setInterval(checkAll, active.interval);
    timer.unref();
    this.timers.push(timer);
    setImmediate(checkAll).unref();
  }

  private check(target: UpstreamTarget, client: grpc.Client, request: Buffer, timeout: number): void {
    if (this.closed) return;
    client.makeUnaryRequest<Buffer, number>(
      '/grpc.health.v1.Health/Check',
      (message) => message,
      decodeHealthStatus,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + timeout },
      (err, status) => {
        const up = !err && status === SERVING;
        // Written as the pool's own HTTP checks write it (it has no method for it): the pool only reads activeDown.
        if (this.closed || target.activeDown === !up) return;
        target.activeDown = !up;
        if (up) this.pool.emit('recover', target);
        else this.pool.emit('eject', target, 0);
      },
    );
  }
}

function channelCredentials(tls: ChannelTls | undefined, optionPrefix: string): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new ConfigError(`"${optionPrefix}tls" needs both "cert" and "key" for a client certificate, or neither.`);
  const buffer = (value: string | Buffer | undefined) => (value === undefined ? null : Buffer.isBuffer(value) ? value : Buffer.from(value));
  try {
    return grpc.credentials.createSsl(buffer(tls.ca), buffer(tls.key), buffer(tls.cert));
  } catch (err) {
    throw new ConfigError(`"${optionPrefix}tls" is not usable: ${(err as Error).message}`);
  }
}

/** grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING */
const SERVING = 1;

/** HealthCheckRequest { string service = 1 }, encoded by hand: one length-delimited field. */
function encodeHealthRequest(service: string): Buffer {
  const text = Buffer.from(service);
  if (text.length === 0) return Buffer.alloc(0);
  const length: number[] = [];
  let rest = text.length;
  while (rest > 0x7f) {
    length.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  length.push(rest);
  return Buffer.concat([Buffer.from([0x0a, ...length]), text]);
}

/** HealthCheckResponse { ServingStatus status = 1 }: the varint of field 1, 0 (UNKNOWN) when absent. */
function decodeHealthStatus(message: Buffer): number {
  let offset = 0;
  while (offset < message.length) {
    const tag = message[offset++];
    let value = 0;
    let shift = 0;
    for (;;) {
      const byte = message[offset++];
      if (byte === undefined) return 0;
      value |= (byte & 0x7f) << shift;
      shift += 7;
      if ((byte & 0x80) === 0) break;
    }
    if (tag === 0x08) return value;
    // Another field: its wire type would need skipping; the response has only this one.
    if ((tag & 7) !== 0) return 0;
  }
  return 0;
}
