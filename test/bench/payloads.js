/**
 * The bodies the benchmark's upstream answers and its clients send, fixed so every run moves the same bytes:
 * - ORDER_JSON: the 223-byte JSON order every GET row receives (the payload size of the reference figures);
 * - XML_ORDER: the ~2 KB `application/xml` order document (20 `<line>` elements with attributes) the XML
 *   upstream answers, and XML_REQUEST_JSON, the ~2 KB JSON order the xml-bridge row POSTs;
 * - ITEM_JSON: the 409-byte JSON the gRPC bridge answers for GetItem { id: "42" } (grpc-upstream.js's item, printed
 *   by the canonical proto3 JSON mapping with defaults), which the HTTP twin of the grpc row answers byte for byte.
 */
'use strict';

const ORDER_JSON = Buffer.from(JSON.stringify({ id: 42, status: 'shipped', customer: 'c_1029', total: 129.5, currency: 'EUR', items: [{ sku: 'A-100', qty: 2 }, { sku: 'B-220', qty: 1 }], createdAt: '2024-05-01T10:00:00Z', note: 'benchmark payload, fixed size, 223 bytes.' }));
if (ORDER_JSON.length !== 223) throw new Error(`the order body is ${ORDER_JSON.length} bytes, expected 223`);

/** Lines of the XML order and of the JSON one: as many in both. */
const XML_LINES = 20;

const XML_ORDER = Buffer.from(
  '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<order id="42" status="shipped" currency="EUR"><customer id="c_1029"><name>Ada Lovelace</name><country>GB</country></customer><lines>' +
    Array.from({ length: XML_LINES }, (_, i) => `<line no="${i + 1}" sku="SKU-${1000 + i}" qty="${(i % 4) + 1}"><price currency="EUR">${(9.5 + i).toFixed(2)}</price></line>`).join('') +
    '</lines><total currency="EUR">1425.00</total><createdAt>2024-05-01T10:00:00Z</createdAt></order>',
  'utf8',
);

const XML_REQUEST_JSON = Buffer.from(
  JSON.stringify({
    '@id': '42',
    customer: { '@id': 'c_1029', name: 'Ada Lovelace', email: 'ada@example.test', country: 'GB' },
    lines: { line: Array.from({ length: XML_LINES }, (_, i) => ({ '@no': String(i + 1), sku: `SKU-${1000 + i}`, qty: String((i % 4) + 1), price: (9.5 + i).toFixed(2), currency: 'EUR', gift: 'false' })) },
    note: 'benchmark order, fixed size',
  }),
);

for (const [name, body] of [['XML_ORDER', XML_ORDER], ['XML_REQUEST_JSON', XML_REQUEST_JSON]]) {
  if (body.length < 1800 || body.length > 2300) throw new Error(`${name} is ${body.length} bytes, expected about 2 KB`);
}

const ITEM_JSON = Buffer.from(
  JSON.stringify({
    id: '42', displayName: 'Item 42', quantity: '9007199254740993', color: 'GREEN', tags: ['a', 'b'], updatedAt: '2024-05-01T10:00:00.500Z',
    price: 9.5, blob: 'aGk=', counts: { apples: 3 }, rating: 4, attributes: { size: 'L', fresh: true, weight: 1.5 }, shelfLife: '90s',
    big: '18446744073709551615', supplier: 'acme', dims: { width: 2, height: 3 }, palette: ['RED', 'GREEN'], mask: 'displayName,price', extra: null,
  }),
);
if (ITEM_JSON.length !== 409) throw new Error(`the item body is ${ITEM_JSON.length} bytes, expected 409`);

module.exports = { ORDER_JSON, XML_ORDER, XML_REQUEST_JSON, XML_LINES, ITEM_JSON };
