/**
 * Loopback helpers shared by the bench (run.js) and the soak run (test/soak/run.js): a free port, whether a
 * redis-server answers on one, children that are killed whatever happens, and a question to a child over IPC.
 */
'use strict';

const net = require('node:net');

/** A free loopback port (the OS picks it; released before use, so only for a server started right after). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Whether a TCP connection to 127.0.0.1:port answers PING with PONG. */
function redisPong(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(500, () => { socket.destroy(); resolve(false); });
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) { socket.destroy(); resolve(reply.startsWith('+PONG')); }
    });
    socket.on('error', () => resolve(false));
  });
}

/**
 * Child processes killed when this process exits or is interrupted: `track(child)` adds one (it leaves the set
 * when it exits), `killAll()` kills those still running. `label` names the run in the interruption message.
 */
function childTracker(label) {
  const children = new Set();
  const killAll = () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        try { child.kill('SIGKILL'); } catch { /* already gone */ }
      }
    }
    children.clear();
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      console.error(`\n${label}: ${signal}, stopping children`);
      killAll();
      process.exit(130);
    });
  }
  const track = (child) => {
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };
  return { track, killAll };
}

/**
 * Sends `msg` (unless null) to `child` and resolves with its next message of type `type`; rejects when the child
 * exits first, when nothing comes within `timeoutMs`, or on a message whose type is in `failOn` (its `message`
 * said). `name` names the child in those errors.
 */
function askChild(child, msg, type, { name, timeoutMs = 10_000, failOn = [] }) {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (m) => {
      if (m && m.type === type) { cleanup(); resolve(m); }
      else if (m && failOn.includes(m.type)) { cleanup(); reject(new Error(`${name}: ${m.message}`)); }
    };
    const onExit = (code, signal) => { cleanup(); reject(new Error(`${name} exited (${signal || code}) while waiting for "${type}"`)); };
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no "${type}" from ${name} within ${timeoutMs} ms`)); }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
    if (msg) child.send(msg);
  });
}

module.exports = { freePort, redisPong, childTracker, askChild };
