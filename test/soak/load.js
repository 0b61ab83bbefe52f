/**
 * The soak run's load generator: a paced mix of requests over keep-alive agents (bounded in flight), plus
 * WebSocket echo sessions, against two gateway ports. Every answer gets a label (`200`, `429 ERR_RATE_LIMITED`,
 * `aborted`, `ws dropped`, …) and a verdict for its kind of request:
 *   ok          what this kind should get whatever happens (a 401 for a bad token, a 429 over the limit)
 *   fault       a failure only a fault may explain (a 502, a cut body); checks.js looks for the window
 *   unexpected  wrong whatever happens (a 500, a wrong body, no answer at all)
 * Client addresses: 127.0.0.1 for well-behaved traffic, 127.0.0.2 for bad credentials (so the failed-
 * authentication budget they use up is not the good traffic's), 127.0.0.3 for the rate-limited route.
 */
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');
const WebSocket = require('ws');

const ADDRESSES = { good: '127.0.0.1', bad: '127.0.0.2', limited: '127.0.0.3' };
const UPLOAD_CHUNK = crypto.randomBytes(16 * 1024);
const CLIENT_TIMEOUT_MS = 10_000;
const WS_HANDSHAKE_TIMEOUT_MS = 3_000;
const WS_MESSAGES = 5;
const WS_GAP_MS = 100;

/** Labels a proxied request may get from an upstream fault, besides its own. */
const UPSTREAM_FAULTS = new Set(['502 ERR_UPSTREAM_UNAVAILABLE', '502 ERR_UPSTREAM_RESET', '504 ERR_UPSTREAM_TIMEOUT', '503 ERR_NO_HEALTHY_UPSTREAM', 'aborted']);

/**
 * The request kinds: share of the mix (per 100), client address, request, and the labels that are fine for
 * it. `proxied` kinds may also get the upstream's faults; `body` kinds stream a body of `size()` bytes.
 */
function kindsFor({ tokens, apiKey }) {
  const bearer = (token) => ({ authorization: `Bearer ${token}` });
  return [
    { name: 'anon', weight: 20, from: 'good', path: (n) => `/anon/items/${n}`, ok: ['200'], proxied: true },
    { name: 'jwt', weight: 14, from: 'good', path: (n) => `/jwt/me/${n}`, headers: (n) => bearer(tokens.valid[n % tokens.valid.length]), ok: ['200'], proxied: true },
    { name: 'jwt-bad-signature', weight: 4, from: 'bad', path: () => '/jwt/me', headers: () => bearer(tokens.forged), ok: ['401 ERR_AUTH_TOKEN_INVALID', '429 ERR_RATE_LIMITED'] },
    { name: 'jwt-expired', weight: 2, from: 'good', path: () => '/jwt/me', headers: () => bearer(tokens.expired), ok: ['401 ERR_AUTH_TOKEN_EXPIRED'] },
    { name: 'jwt-missing', weight: 1, from: 'good', path: () => '/jwt/me', ok: ['401 ERR_AUTH_MISSING'] },
    { name: 'api-key', weight: 10, from: 'good', path: (n) => `/key/orders/${n}`, headers: () => ({ 'x-api-key': apiKey }), ok: ['200'], proxied: true },
    { name: 'api-key-bad', weight: 3, from: 'bad', path: () => '/key/orders', headers: () => ({ 'x-api-key': 'fdk_soak_not_a_known_key_0123456789' }), ok: ['401 ERR_AUTH_KEY_INVALID', '429 ERR_RATE_LIMITED'] },
    { name: 'rate-limited', weight: 15, from: 'limited', path: (n) => `/limited/${n}`, ok: ['200', '429 ERR_RATE_LIMITED'], faults: ['503 ERR_RATE_LIMIT_UNAVAILABLE'], proxied: true },
    { name: 'counted-fail-open', weight: 10, from: 'good', path: (n) => `/counted/${n}`, ok: ['200'], proxied: true },
    { name: 'cached', weight: 10, from: 'good', path: (n) => `/cached/items/${n % 50}`, ok: ['200'], proxied: true },
    { name: 'upload', weight: 3.5, from: 'good', method: 'POST', path: () => '/upload', size: (r) => 100_000 + Math.floor(r * 400_000), ok: ['200'], faults: ['upload-broken'], proxied: true },
    { name: 'upload-too-large', weight: 0.5, from: 'good', method: 'POST', path: () => '/upload', size: () => 1_500_000, ok: ['413 ERR_BODY_TOO_LARGE'], faults: ['upload-broken'], proxied: true },
  ];
}

/** A small seeded PRNG (mulberry32): the same mix on every run. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function verdictFor(kind, label) {
  if (kind.ok.includes(label)) return 'ok';
  if ((kind.faults && kind.faults.includes(label)) || (kind.proxied && UPSTREAM_FAULTS.has(label))) return 'fault';
  return 'unexpected';
}

/** `status` and, for a problem document, its `code`: `'429 ERR_RATE_LIMITED'`. */
function labelOf(status, contentType, body) {
  if (!/problem\+json/.test(contentType || '')) return String(status);
  try {
    const code = JSON.parse(body.toString('utf8')).code;
    return code ? `${status} ${code}` : String(status);
  } catch {
    return `${status} unparsable-problem`;
  }
}

class Load {
  /**
   * @param {object} options
   * @param {number[]} options.ports        the gateways' ports
   * @param {object} options.tokens         { valid: string[], forged, expired } signed JWTs
   * @param {string} options.apiKey         a key the gateways know
   * @param {number} options.rate           requests started per second (WebSocket sessions apart)
   * @param {number} options.maxInFlight    most requests in flight at once
   * @param {number} options.wsSessions     WebSocket echo sessions kept going at once
   * @param {() => number} options.now      ms since the start of the load
   * @param {(result: object) => void} options.onResult
   */
  constructor(options) {
    this.options = options;
    this.kinds = kindsFor(options);
    this.random = prng(20);
    this.totalWeight = this.kinds.reduce((sum, k) => sum + k.weight, 0);
    this.agents = new Map();
    this.inFlight = 0;
    this.wsOpen = 0;
    this.started = 0;
    this.deferred = 0;
    this.running = false;
    this.lastWs = -Infinity;
    this.idle = [];
  }

  agentFor(from) {
    let agent = this.agents.get(from);
    if (!agent) {
      agent = new http.Agent({ keepAlive: true, maxSockets: 24, localAddress: ADDRESSES[from] });
      this.agents.set(from, agent);
    }
    return agent;
  }

  pickKind() {
    let r = this.random() * this.totalWeight;
    for (const kind of this.kinds) {
      r -= kind.weight;
      if (r < 0) return kind;
    }
    return this.kinds[0];
  }

  start() {
    this.running = true;
    const began = this.options.now();
    this.ticker = setInterval(() => {
      const due = Math.floor(((this.options.now() - began) / 1000) * this.options.rate) - this.started - this.deferred;
      // Never catch up more than a fifth of a second's worth at once: a stalled tick drops, it does not burst.
      const cap = Math.max(1, Math.ceil(this.options.rate / 5));
      let n = Math.min(due, cap);
      this.deferred += Math.max(0, due - cap);
      for (; n > 0; n--) {
        if (this.inFlight >= this.options.maxInFlight) { this.deferred += n; break; }
        this.started++;
        void this.request(this.pickKind(), Math.floor(this.random() * 2), Math.floor(this.random() * 1e6));
      }
      // One new session per 100 ms at most: a refused handshake is over at once, and its slot must not spin.
      const t = this.options.now();
      if (this.wsOpen < this.options.wsSessions && t - this.lastWs >= 100) {
        this.lastWs = t;
        void this.wsSession(Math.floor(this.random() * 2), this.random() < 0.1);
      }
    }, 20);
  }

  /** Stops starting work; resolves once everything in flight has ended. */
  stop() {
    this.running = false;
    clearInterval(this.ticker);
    if (this.inFlight === 0 && this.wsOpen === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Closes the keep-alive sockets, so the gateways' connections can return to their baseline. */
  destroyAgents() {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  settled() {
    if (!this.running && this.inFlight === 0 && this.wsOpen === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  record(kind, gw, startMs, label, extra) {
    const result = { kind: kind.name, gw, start: startMs, end: this.options.now(), label, verdict: verdictFor(kind, label), ...extra };
    this.options.onResult(result);
    return result;
  }

  /** One HTTP request of `kind` to gateway `gw`; resolves with its result. */
  request(kind, gw, n) {
    const startMs = this.options.now();
    const id = this.nextId = (this.nextId || 0) + 1;
    this.inFlight++;
    return new Promise((resolve) => {
      let done = false;
      const finish = (label, extra) => {
        if (done) return;
        done = true;
        this.inFlight--;
        resolve(this.record(kind, gw, startMs, label, extra));
        this.settled();
      };
      const urlPath = kind.path(n);
      const size = kind.size ? kind.size(this.random()) : 0;
      let responded = false;
      const req = http.request({
        host: '127.0.0.1',
        port: this.options.ports[gw],
        method: kind.method || 'GET',
        path: urlPath,
        headers: { 'x-soak-id': String(id), ...(kind.headers ? kind.headers(n) : {}), ...(size ? { 'content-type': 'application/octet-stream' } : {}) },
        agent: this.agentFor(kind.from),
      }, (res) => {
        responded = true;
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('aborted', () => finish('aborted'));
        res.on('error', () => finish('aborted'));
        res.on('end', () => {
          if (!res.complete) return finish('aborted');
          const body = Buffer.concat(chunks);
          const label = labelOf(res.statusCode, res.headers['content-type'], body);
          finish(label === '200' ? this.checkBody(kind, urlPath, size, body) : label, { cache: res.headers['x-cache'] });
        });
      });
      req.setTimeout(CLIENT_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
      req.on('error', (err) => {
        if (responded) return finish('aborted');
        if (err.code === 'CLIENT_TIMEOUT') return finish('client-timeout', { id, localPort: req.socket && req.socket.localPort });
        // An upload whose connection broke while its body was still going out: the gateway answered early
        // and closed (a 502 while the upstream was gone), or the socket was reset.
        if (size) return finish('upload-broken', { error: err.code || err.message });
        finish(`no-answer ${err.code || err.message}`);
      });
      if (!size) return req.end();
      let left = size;
      const pump = () => {
        while (left > 0) {
          const part = left >= UPLOAD_CHUNK.length ? UPLOAD_CHUNK : UPLOAD_CHUNK.subarray(0, left);
          left -= part.length;
          if (!req.write(part)) return req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
  }

  /** A 200's body must be the upstream's answer to this very request. */
  checkBody(kind, urlPath, size, body) {
    try {
      const parsed = JSON.parse(body.toString('utf8'));
      if (size) return parsed.bytes === size ? '200' : `200 wrong-byte-count ${parsed.bytes}/${size}`;
      return parsed.path === urlPath ? '200' : '200 wrong-body';
    } catch {
      return '200 unparsable-body';
    }
  }

  /** One WebSocket session: handshake (with a token, or without one to be refused), five echoes, close. */
  wsSession(gw, withoutToken) {
    const kind = withoutToken
      ? { name: 'ws-no-token', ok: ['ws 401'] }
      : { name: 'ws-echo', ok: ['ws ok'], faults: ['ws 502', 'ws 503', 'ws 504', 'ws handshake-timeout', 'ws dropped'] };
    const startMs = this.options.now();
    this.wsOpen++;
    return new Promise((resolve) => {
      let done = false;
      const finish = (label) => {
        if (done) return;
        done = true;
        this.wsOpen--;
        resolve(this.record(kind, gw, startMs, label));
        this.settled();
      };
      const headers = withoutToken ? {} : { authorization: `Bearer ${this.options.tokens.valid[0]}` };
      const ws = new WebSocket(`ws://127.0.0.1:${this.options.ports[gw]}/ws/echo`, { headers, handshakeTimeout: WS_HANDSHAKE_TIMEOUT_MS, perMessageDeflate: false });
      let echoed = 0;
      let sent = '';
      ws.on('unexpected-response', (req, res) => {
        res.resume();
        req.destroy();
        finish(`ws ${res.statusCode}`);
      });
      ws.on('error', (err) => {
        if (/handshake has timed out/i.test(err.message)) finish('ws handshake-timeout');
        else if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED || echoed > 0 || sent) finish('ws dropped');
        else finish(`ws error ${err.code || err.message}`);
      });
      const next = () => {
        if (ws.readyState !== WebSocket.OPEN) return;
        sent = crypto.randomBytes(512).toString('base64');
        ws.send(sent);
      };
      ws.on('open', next);
      ws.on('message', (data) => {
        if (String(data) !== sent) {
          finish('ws echo-mismatch');
          return ws.terminate();
        }
        if (++echoed === WS_MESSAGES) return ws.close(1000);
        setTimeout(next, WS_GAP_MS);
      });
      ws.on('close', (code) => finish(echoed === WS_MESSAGES && code === 1000 ? 'ws ok' : 'ws dropped'));
    });
  }
}

module.exports = { Load, kindsFor, labelOf, verdictFor, ADDRESSES };
