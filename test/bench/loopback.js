/**
 * Loopback helpers shared by the bench (run.js) and the soak run (test/soak/run.js): a free port, and whether a
 * redis-server answers on one.
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

module.exports = { freePort, redisPong };
