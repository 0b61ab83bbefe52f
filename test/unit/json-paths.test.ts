/**
 * Dot paths over parsed JSON (lib/json-paths.ts): the syntax, pick/omit/rename/set with indexes and `[*]`,
 * and no way to reach or write an object's prototype.
 */
import { omitPath, parsePath, PathSyntaxError, pickPaths, renamePath, setPath, valuesAt, WILDCARD } from '../../lib/json-paths';

const order = () => ({
  id: 7,
  customer: { id: 'c-1', email: 'a@example.com' },
  internal: { cost: 12.5, margin: 3 },
  items: [
    { sku: 'A', qty: 1, supplierId: 's-1' },
    { sku: 'B', qty: 2, supplierId: 's-2' },
  ],
});

describe('parsePath', () => {
  it('reads keys, indexes and wildcards', () => {
    expect(parsePath('a')).toEqual(['a']);
    expect(parsePath('a.b.c')).toEqual(['a', 'b', 'c']);
    expect(parsePath('items[0].sku')).toEqual(['items', 0, 'sku']);
    expect(parsePath('items[*].supplierId')).toEqual(['items', WILDCARD, 'supplierId']);
    expect(parsePath('[*].id')).toEqual([WILDCARD, 'id']);
    expect(parsePath('matrix[*][*]')).toEqual(['matrix', WILDCARD, WILDCARD]);
    expect(parsePath('with-dash_and:colon')).toEqual(['with-dash_and:colon']);
  });

  it.each([
    ['', 'empty'],
    ['a..b', 'after a dot'],
    ['a.', 'trailing dot'],
    ['.a', 'leading dot'],
    ['a[', 'unclosed bracket'],
    ['a[x]', 'non-numeric index'],
    ['a[-1]', 'negative index'],
    ['a]b', 'stray bracket'],
    ['a.*.b', 'bare star'],
    ['a[0]b', 'key glued to an index'],
  ])('refuses %j (%s)', (text) => {
    expect(() => parsePath(text)).toThrow(PathSyntaxError);
  });

  it.each(['__proto__', 'a.__proto__.polluted', 'constructor.prototype.polluted', 'a[0].constructor', 'prototype'])('refuses the prototype key in %j', (text) => {
    expect(() => parsePath(text)).toThrow(/cannot be used in a path/);
  });
});

describe('omitPath', () => {
  it('removes keys, nested keys and a key in every element', () => {
    const body = order();
    omitPath(body, parsePath('internal.cost'));
    omitPath(body, parsePath('items[*].supplierId'));
    expect(body.internal).toEqual({ margin: 3 });
    expect(body.items).toEqual([{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }]);
  });

  it('removes an array element, and every element with a trailing [*]', () => {
    const body = order();
    omitPath(body, parsePath('items[0]'));
    expect(body.items.map((item) => item.sku)).toEqual(['B']);
    omitPath(body, parsePath('items[*]'));
    expect(body.items).toEqual([]);
  });

  it('leaves data alone when the path does not fit it', () => {
    const body = order();
    omitPath(body, parsePath('customer.id.deeper'));
    omitPath(body, parsePath('missing.key'));
    omitPath(body, parsePath('customer[*]'));
    omitPath(body, parsePath('items.sku'));
    omitPath(body, parsePath('items[9]'));
    expect(body).toEqual(order());
  });

  it('works on a root array', () => {
    const body = [{ id: 1, secret: 'x' }, { id: 2, secret: 'y' }];
    omitPath(body, parsePath('[*].secret'));
    expect(body).toEqual([{ id: 1 }, { id: 2 }]);
  });
});

describe('setPath', () => {
  it('sets, creating objects and arrays on the way', () => {
    const body: Record<string, unknown> = { a: 1 };
    setPath(body, parsePath('meta.source'), 'gateway');
    setPath(body, parsePath('list[1].x'), true);
    expect(body).toEqual({ a: 1, meta: { source: 'gateway' }, list: [undefined, { x: true }] });
    expect(JSON.stringify(body.list)).toBe('[null,{"x":true}]');
  });

  it('sets in every element, each its own copy', () => {
    const body = order();
    setPath(body, parsePath('items[*].currency'), { code: 'EUR' });
    expect(body.items.map((item) => (item as Record<string, unknown>).currency)).toEqual([{ code: 'EUR' }, { code: 'EUR' }]);
    expect((body.items[0] as Record<string, unknown>).currency).not.toBe((body.items[1] as Record<string, unknown>).currency);
  });

  it('does not overwrite data of another kind on the way, nor a primitive root', () => {
    const body = { customer: 'c-1' };
    setPath(body, parsePath('customer.id'), 'x');
    expect(body).toEqual({ customer: 'c-1' });
    expect(() => setPath(42, parsePath('a'), 1)).not.toThrow();
    expect(() => setPath(null, parsePath('a.b'), 1)).not.toThrow();
  });
});

describe('renamePath', () => {
  it('moves a value, and a key in every element with paired wildcards', () => {
    const body = order();
    renamePath(body, parsePath('customer.id'), parsePath('customerId'));
    renamePath(body, parsePath('items[*].sku'), parsePath('items[*].code'));
    expect(body.customer).toEqual({ email: 'a@example.com' });
    expect((body as Record<string, unknown>).customerId).toBe('c-1');
    expect(body.items).toEqual([{ qty: 1, supplierId: 's-1', code: 'A' }, { qty: 2, supplierId: 's-2', code: 'B' }]);
  });

  it('does nothing when the source is missing', () => {
    const body = order();
    renamePath(body, parsePath('nope'), parsePath('other'));
    expect(body).toEqual(order());
  });
});

describe('pickPaths', () => {
  it('keeps only what the paths reach, in the same places', () => {
    const picked = pickPaths(order(), ['id', 'customer.id', 'items[*].sku', 'items[*].qty'].map(parsePath));
    expect(picked).toEqual({ id: 7, customer: { id: 'c-1' }, items: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }] });
  });

  it('gives an empty object or array when nothing is reached', () => {
    expect(pickPaths(order(), [parsePath('missing')])).toEqual({});
    expect(pickPaths([1, 2], [parsePath('missing')])).toEqual([]);
    expect(pickPaths('text', [parsePath('a')])).toEqual({});
  });

  it('picks from a root array', () => {
    expect(pickPaths([{ id: 1, x: 1 }, { id: 2, x: 2 }], [parsePath('[*].id')])).toEqual([{ id: 1 }, { id: 2 }]);
  });
});

describe('prototype pollution', () => {
  afterEach(() => {
    delete (Object.prototype as Record<string, unknown>).polluted;
  });

  it('never reads inherited properties as data', () => {
    expect(valuesAt({}, parsePath('toString'))).toEqual([]);
    expect(valuesAt({ a: {} }, parsePath('a.hasOwnProperty'))).toEqual([]);
    const body = { a: {} };
    omitPath(body, parsePath('a.toString'));
    expect(typeof ({} as { toString: unknown }).toString).toBe('function');
  });

  it('does not follow a __proto__ key that JSON.parse made an own property', () => {
    const body = JSON.parse('{"__proto__":{"polluted":true},"items":[{"__proto__":{"polluted":true}}]}') as unknown;
    setPath(body, parsePath('items[*].x'), 1);
    renamePath(body, parsePath('items[*].x'), parsePath('items[*].y'));
    omitPath(body, parsePath('items[*].polluted'));
    pickPaths(body, [parsePath('items[*].polluted')]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('only walks array elements with [*], never the keys of an object', () => {
    const body = { constructor: { prototype: { polluted: 'no' } } } as unknown;
    setPath(body, [WILDCARD, 'polluted'], true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(valuesAt(body, [WILDCARD])).toEqual([]);
  });
});
