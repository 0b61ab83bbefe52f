/**
 * The benchmark's upstream: a plain node:http server answering every request with the same 223-byte JSON
 * body over keep-alive. Run as a child of run.js (IPC): it sends `{ type: 'listening', port }`, answers
 * `{ cmd: 'stats' }` with `{ type: 'stats', connections, requests, wrongPath, cpuMicros }` (counted since the
 * last `{ cmd: 'reset' }`; `connectionsSinceMark`/`requestsSinceMark` since the last `{ cmd: 'mark' }`), and exits
 * when the parent goes away. A second port takes OTLP/HTTP span exports
 * (`otlpPort` in the listening message; counted as `exports`, never as requests or connections).
 */
'use strict';

const http = require('node:http');
const { REQUEST_PATH } = require('./variants');

// 223 bytes exactly: the payload size of the reference figures.
const BODY = Buffer.from(JSON.stringify({ id: 42, status: 'shipped', customer: 'c_1029', total: 129.5, currency: 'EUR', items: [{ sku: 'A-100', qty: 2 }, { sku: 'B-220', qty: 1 }], createdAt: '2024-05-01T10:00:00Z', note: 'benchmark payload, fixed size, 223 bytes.' }));
if (BODY.length !== 223) throw new Error(`upstream body is ${BODY.length} bytes, expected 223`);
const HEADERS = { 'Content-Type': 'application/json', 'Content-Length': String(BODY.length) };

let connections = 0;
let requests = 0;
let wrongPath = 0;
let exportsReceived = 0;
// Counted from the last { cmd: 'mark' }: steady-state connection reuse, after the run has started.
let connectionsSinceMark = 0;
let requestsSinceMark = 0;
let cpuAtReset = process.cpuUsage();

const server = http.createServer((req, res) => {
  requests++;
  requestsSinceMark++;
  if (req.url !== REQUEST_PATH) wrongPath++;
  // Drain any body so the connection can be reused, then answer.
  req.resume();
  res.writeHead(200, HEADERS);
  res.end(BODY);
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.on('connection', () => { connections++; connectionsSinceMark++; });

// A span sink for the tracing row: reads the export and answers what an OTLP collector answers.
const sink = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    exportsReceived++;
    // An empty ExportTraceServiceResponse (full success) in the request's encoding.
    const json = String(req.headers['content-type']).startsWith('application/json');
    res.writeHead(200, { 'Content-Type': json ? 'application/json' : 'application/x-protobuf' });
    res.end(json ? '{}' : '');
  });
});
sink.keepAliveTimeout = 65_000;

process.on('message', (msg) => {
  if (!msg || typeof msg !== 'object') return;
  if (msg.cmd === 'reset') {
    connections = 0; requests = 0; wrongPath = 0; exportsReceived = 0;
    cpuAtReset = process.cpuUsage();
    process.send({ type: 'reset' });
  } else if (msg.cmd === 'mark') {
    connectionsSinceMark = 0; requestsSinceMark = 0;
    process.send({ type: 'mark' });
  } else if (msg.cmd === 'stats') {
    const cpu = process.cpuUsage(cpuAtReset);
    process.send({ type: 'stats', connections, requests, connectionsSinceMark, requestsSinceMark, wrongPath, exports: exportsReceived, cpuMicros: cpu.user + cpu.system });
  }
});
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  sink.listen(0, '127.0.0.1', () => {
    process.send({ type: 'listening', port: server.address().port, otlpPort: sink.address().port, bodyBytes: BODY.length });
  });
});
