/**
 * The benchmark's upstream: a plain node:http server over keep-alive answering
 * - GET /api/orders/42 (REQUEST_PATH) and GET /api/parts/a|b|c (PART_PATHS, optionally `?delay=<ms>`, answered after
 *   that delay) with the same 223-byte JSON body;
 * - POST /api/xml-orders/42 (XML_PATH), when its body is an XML `<order>` with its 20 `<line>`s sent as
 *   `application/xml`, with a fixed ~2 KB `application/xml; charset=utf-8` order document;
 * - GET /v1/items/42 (ITEM_PATH) with the 409-byte JSON the gRPC bridge answers for that item (the grpc row's twin).
 * With `--grpc`, it also serves shop.v1.Inventory over gRPC (grpc-upstream.js; `grpcPort` in the listening
 * message): each call counts as a request, an unexpected one as `wrongPath`, so the grpc rows are checked alike.
 * Anything else (another path or query, a wrong method, a request body that is not the expected XML) is counted as
 * `wrongPath` and answered 404 or 400, so a misrouted row fails its check instead of measuring errors.
 * Run as a child of run.js (IPC): it sends `{ type: 'listening', port }`, answers
 * `{ cmd: 'stats' }` with `{ type: 'stats', connections, requests, wrongPath, cpuMicros }` (counted since the
 * last `{ cmd: 'reset' }`; `connectionsSinceMark`/`requestsSinceMark` since the last `{ cmd: 'mark' }`), and exits
 * when the parent goes away. A second port takes OTLP/HTTP span exports
 * (`otlpPort` in the listening message; counted as `exports`, never as requests or connections).
 */
'use strict';

const http = require('node:http');
const path = require('node:path');
const { REQUEST_PATH, PART_PATHS, XML_PATH, ITEM_PATH } = require('./variants');
const { ORDER_JSON: BODY, XML_ORDER, XML_LINES, ITEM_JSON } = require('./payloads');
const { startGrpcUpstream } = require('./grpc-upstream');

const HEADERS = { 'Content-Type': 'application/json', 'Content-Length': String(BODY.length) };
const XML_HEADERS = { 'Content-Type': 'application/xml; charset=utf-8', 'Content-Length': String(XML_ORDER.length) };
// The bridge's own Content-Type, so the twin's answer differs from it by nothing but the route.
const ITEM_HEADERS = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(ITEM_JSON.length) };
const PARTS = new Set(PART_PATHS);

let connections = 0;
let requests = 0;
let wrongPath = 0;
let exportsReceived = 0;
// Counted from the last { cmd: 'mark' }: steady-state connection reuse, after the run has started.
let connectionsSinceMark = 0;
let requestsSinceMark = 0;
let wrongPathSinceMark = 0;
let cpuAtReset = process.cpuUsage();

function wrong(req, res, status) {
  wrongPath++;
  wrongPathSinceMark++;
  req.resume();
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': '5' });
  res.end('wrong');
}

/** Whether `xml` is the order the xml-bridge row's JSON becomes: an `<order>` document with all its lines. */
function isXmlOrder(xml) {
  if (!/^(<\?xml[^>]*\?>\s*)?<order[\s>]/.test(xml) || !xml.trimEnd().endsWith('</order>')) return false;
  let lines = 0;
  for (let i = xml.indexOf('<line'); i !== -1; i = xml.indexOf('<line', i + 5)) if (xml[i + 5] === '>' || xml[i + 5] === ' ') lines++;
  return lines === XML_LINES;
}

const server = http.createServer((req, res) => {
  requests++;
  requestsSinceMark++;
  const url = req.url;
  const q = url.indexOf('?');
  const pathname = q === -1 ? url : url.slice(0, q);
  if (url === REQUEST_PATH && req.method === 'GET') {
    // Drain any body so the connection can be reused, then answer.
    req.resume();
    res.writeHead(200, HEADERS);
    res.end(BODY);
  } else if (url === ITEM_PATH && req.method === 'GET') {
    req.resume();
    res.writeHead(200, ITEM_HEADERS);
    res.end(ITEM_JSON);
  } else if (PARTS.has(pathname) && req.method === 'GET') {
    const delay = q === -1 ? '0' : /^delay=(\d{1,4})$/.exec(url.slice(q + 1))?.[1];
    if (delay === undefined) return wrong(req, res, 404);
    req.resume();
    const answer = () => { res.writeHead(200, HEADERS); res.end(BODY); };
    if (delay === '0') answer();
    else setTimeout(answer, Number(delay));
  } else if (url === XML_PATH && req.method === 'POST') {
    if (!/^application\/xml\b/.test(req.headers['content-type'] || '')) return wrong(req, res, 400);
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (!isXmlOrder(Buffer.concat(chunks).toString('utf8'))) return wrong(req, res, 400);
      res.writeHead(200, XML_HEADERS);
      res.end(XML_ORDER);
    });
  } else {
    wrong(req, res, 404);
  }
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
    connectionsSinceMark = 0; requestsSinceMark = 0; wrongPathSinceMark = 0;
    process.send({ type: 'mark' });
  } else if (msg.cmd === 'stats') {
    const cpu = process.cpuUsage(cpuAtReset);
    process.send({ type: 'stats', connections, requests, connectionsSinceMark, requestsSinceMark, wrongPath, wrongPathSinceMark, exports: exportsReceived, cpuMicros: cpu.user + cpu.system });
  }
});
process.on('disconnect', () => process.exit(0));

/** With --grpc: the gRPC upstream, its calls counted as requests. */
async function startGrpc() {
  if (!process.argv.includes('--grpc')) return null;
  const dist = process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : path.join(__dirname, '..', '..', 'dist');
  const { port } = await startGrpcUpstream({
    dist,
    onCall(ok) {
      requests++;
      requestsSinceMark++;
      if (!ok) { wrongPath++; wrongPathSinceMark++; }
    },
  });
  return port;
}

startGrpc().then((grpcPort) => {
  server.listen(0, '127.0.0.1', () => {
    sink.listen(0, '127.0.0.1', () => {
      process.send({ type: 'listening', port: server.address().port, otlpPort: sink.address().port, grpcPort, bodyBytes: BODY.length });
    });
  });
}, (err) => {
  console.error(`upstream.js: the gRPC upstream did not start: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
