/**
 * Loopback helpers shared by the bench (run.js) and the soak run (test/soak/run.js): a free port, whether a
 * redis-server answers on one, and children that are killed whatever happens.
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

module.exports = { freePort, redisPong, childTracker };
