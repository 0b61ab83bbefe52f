/**
 * The proto3 JSON mapping of the bridge, both ways, on the types of test/fixtures/grpc/inventory.proto: names,
 * 64-bit integers, enums, bytes, maps, oneofs, well-known types, and the errors that name the field.
 */
import path from 'node:path';
import { FieldError, fromJson, Text, toJson } from '../../lib/grpc/json-mapping';
import { loadProtos } from '../../lib/grpc/protos';
import { formatDuration, formatTimestamp, parseDuration, parseFieldMask, parseTimestamp } from '../../lib/grpc/well-known';

const root = loadProtos({ protos: [path.join(__dirname, '..', 'fixtures', 'grpc', 'inventory.proto')], includeDirs: [] }, 'protos');
const Item = root.lookupType('shop.v1.Item');

/** JSON → wire → JSON. */
function roundTrip(json: unknown, emitDefaults = false): unknown {
  const bytes = Item.encode(Item.fromObject(fromJson(Item, json))).finish();
  return toJson(Item, Item.decode(bytes) as unknown as Record<string, unknown>, { emitDefaults });
}

describe('JSON → message → JSON', () => {
  it('keeps every kind of field as the canonical mapping prints it', () => {
    const json = {
      id: 'x',
      displayName: 'X',
      quantity: '-9223372036854775808',
      big: '18446744073709551615',
      color: 'RED',
      tags: ['a'],
      updatedAt: '1970-01-01T00:00:01.020Z',
      price: 0.25,
      blob: Buffer.from([0, 255]).toString('base64'),
      counts: { k: -1 },
      rating: 0,
      attributes: { nested: { list: [1, null, true, 'x'] } },
      shelfLife: '-0.000001s',
      maker: 'm',
      dims: { width: 1 },
      palette: ['GREEN'],
      mask: 'displayName,dims.width',
      extra: [1, 2],
      maybe: 0,
    };
    expect(roundTrip(json)).toEqual({ ...json, shelfLife: '-0.000001s', updatedAt: '1970-01-01T00:00:01.020Z' });
  });

  it('accepts proto names, numbers as strings, enum numbers and base64url', () => {
    expect(roundTrip({ display_name: 'n', quantity: 5, dims: { width: '7' }, color: 2, blob: '_-8' })).toEqual({ displayName: 'n', quantity: '5', dims: { width: 7 }, color: 'GREEN', blob: '/+8=' });
  });

  it('prints defaults when asked (null for unset messages), and presence fields only when set', () => {
    const out = roundTrip({}, true) as Record<string, unknown>;
    expect(out).toMatchObject({ id: '', quantity: '0', color: 'COLOR_UNSPECIFIED', tags: [], counts: {}, dims: null, updatedAt: null, blob: '' });
    expect(out).not.toHaveProperty('maybe');
    expect(out).not.toHaveProperty('supplier');
  });

  it('reads text values (path, query) by the field type', () => {
    const object = fromJson(Item, { quantity: new Text('12'), color: new Text('RED'), rating: new Text('3'), updated_at: new Text('2024-01-01T00:00:00Z') });
    expect(object).toMatchObject({ quantity: '12', color: 1, rating: { value: 3 }, updated_at: { seconds: '1704067200', nanos: 0 } });
    expect(fromJson(root.lookupType('shop.v1.GetItemRequest'), { verbose: new Text('true') })).toEqual({ verbose: true });
  });

  it.each([
    [{ nope: 1 }, /"nope" is not a field of shop.v1.Item/],
    [{ id: 1 }, /"id" must be a string/],
    [{ quantity: 1.5 }, /"quantity" must be an integer/],
    [{ quantity: 2 ** 60 }, /as a string for large values/],
    [{ big: '-1' }, /"big" must be an integer from 0/],
    [{ dims: { width: 2 ** 31 } }, /"dims.width" must be an integer from -2147483648/],
    [{ color: 'BLUE' }, /"color" must be one of COLOR_UNSPECIFIED, RED, GREEN/],
    [{ tags: 'a' }, /"tags" must be a JSON array/],
    [{ tags: [null] }, /"tags\[0\]" cannot be null/],
    [{ counts: { a: 'x' } }, /"counts.a" must be an integer/],
    [{ blob: 'not base64!' }, /"blob" must be base64/],
    [{ shelfLife: '5m' }, /"shelfLife" must be a duration/],
    [{ updatedAt: '2024-13-01T00:00:00Z' }, /"updatedAt" must be an RFC 3339 timestamp/],
    [{ mask: 'Bad_Path' }, /"mask" must be a comma-separated list/],
    [{ supplier: 'a', maker: 'b' }, /oneof source/],
    [{ id: 'a', display_name: 'b', displayName: 'c' }, /given twice/],
    [{ dims: { width: true } }, /"dims.width"/],
  ])('refuses %j', (json, message) => {
    expect(() => fromJson(Item, json)).toThrow(FieldError);
    expect(() => fromJson(Item, json)).toThrow(message);
  });

  it('refuses JSON nested deeper than the bound, without a stack overflow', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = { a: deep };
    expect(() => fromJson(Item, { attributes: deep })).toThrow(/nested too deeply/);
  });
});

describe('well-known string forms', () => {
  it('timestamps: offsets, fractions, range', () => {
    expect(parseTimestamp('2024-05-01T12:00:00.5+02:00')).toEqual({ seconds: '1714557600', nanos: 500000000 });
    expect(formatTimestamp(1714557600, 500000000)).toBe('2024-05-01T10:00:00.500Z');
    expect(formatTimestamp(0, 1)).toBe('1970-01-01T00:00:00.000000001Z');
    expect(parseTimestamp('0001-01-01T00:00:00Z').seconds).toBe('-62135596800');
    expect(() => parseTimestamp('2023-02-29T00:00:00Z')).toThrow();
    expect(() => parseTimestamp('2024-05-01 10:00:00Z')).toThrow();
  });

  it('durations and field masks', () => {
    expect(parseDuration('1.5s')).toEqual({ seconds: '1', nanos: 500000000 });
    expect(parseDuration('-0.5s')).toEqual({ seconds: '0', nanos: -500000000 });
    expect(formatDuration(-1n, -500000000)).toBe('-1.500s');
    expect(formatDuration(3n, 0)).toBe('3s');
    expect(parseFieldMask('displayName,dims.width')).toEqual(['display_name', 'dims.width']);
  });
});
