/**
 * The benchmark's gRPC upstream: a grpc-js server of shop.v1.Inventory (test/fixtures/grpc/inventory.proto), set up
 * as the tests' test/fixtures/grpc/inventory-server.ts is, answering GetItem { id } with the same item as its
 * sampleItem(id). Only GetItem { id: GRPC_ITEM_ID } is expected: any other call (another method or id) is counted
 * as wrong and answered NOT_FOUND, as a wrong path is on the HTTP upstream. Started inside the upstream child
 * (upstream.js --grpc), pinned with it.
 */
'use strict';

const path = require('node:path');

const PROTO = path.join(__dirname, '..', 'fixtures', 'grpc', 'inventory.proto');
/** The item the grpc rows ask for (`GET /v1/items/42`). */
const GRPC_ITEM_ID = '42';

/** The fixture's sampleItem(id), in proto-loader's object form (keep in step with inventory-server.ts). */
function sampleItem(id) {
  return {
    id,
    display_name: `Item ${id}`,
    quantity: '9007199254740993',
    color: 'GREEN',
    tags: ['a', 'b'],
    updated_at: { seconds: '1714557600', nanos: 500000000 },
    price: 9.5,
    blob: Buffer.from('hi'),
    counts: { apples: 3 },
    rating: { value: 4 },
    attributes: { fields: { size: { stringValue: 'L' }, fresh: { boolValue: true }, weight: { numberValue: 1.5 } } },
    shelf_life: { seconds: '90', nanos: 0 },
    big: '18446744073709551615',
    supplier: 'acme',
    dims: { width: 2, height: 3 },
    palette: ['RED', 'GREEN'],
    mask: { paths: ['display_name', 'price'] },
    extra: { nullValue: 'NULL_VALUE' },
  };
}

/**
 * Binds the server on 127.0.0.1 (ephemeral port). `onCall(ok)` runs for every call, `ok` false for one the bench
 * did not expect. `dist` is the build whose bundled google/api protos are the include dir. Resolves with
 * `{ port, close }`.
 */
async function startGrpcUpstream({ dist, onCall }) {
  const grpc = require('@grpc/grpc-js');
  const loader = require('@grpc/proto-loader');
  const { googleApiIncludeDir } = require(path.join(dist, 'lib', 'grpc', 'google-api-protos.js'));
  const definition = loader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: false, oneofs: false, includeDirs: [googleApiIncludeDir()] });
  const proto = grpc.loadPackageDefinition(definition);
  const item = sampleItem(GRPC_ITEM_ID);
  const server = new grpc.Server();
  const unexpected = (call, callback) => {
    onCall(false);
    callback({ code: grpc.status.NOT_FOUND, details: 'not a call the bench makes' });
  };
  const handlers = {};
  for (const method of Object.keys(proto.shop.v1.Inventory.service)) handlers[method] = unexpected;
  handlers.GetItem = (call, callback) => {
    if (String(call.request.id) !== GRPC_ITEM_ID) return unexpected(call, callback);
    onCall(true);
    callback(null, item);
  };
  // WatchItems is a server stream: an unexpected one is ended with the same status.
  handlers.WatchItems = (call) => {
    onCall(false);
    call.emit('error', { code: grpc.status.NOT_FOUND, details: 'not a call the bench makes' });
  };
  server.addService(proto.shop.v1.Inventory.service, handlers);
  const port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))));
  return { port, close: () => server.forceShutdown() };
}

module.exports = { startGrpcUpstream, sampleItem, GRPC_ITEM_ID, PROTO };
