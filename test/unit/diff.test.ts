/**
 * The diff engine of shadow traffic (lib/diff.ts): structural differences with ignore rules, unordered arrays
 * and numeric tolerance, bounded on any input; and the noise a secondary teaches.
 */
import { compileRules, deepEqual, diff, generalise, NoiseModel, PathSyntaxError } from '../../lib/diff';

const order = () => ({
  id: 7,
  updatedAt: '2024-05-01T10:00:00Z',
  total: 30.5,
  customer: { id: 'c-1', email: 'a@example.com' },
  items: [
    { id: 'i-1', sku: 'A', qty: 1, price: 10.25 },
    { id: 'i-2', sku: 'B', qty: 2, price: 10.125 },
  ],
});

const paths = (a: unknown, b: unknown, rules = compileRules()) => diff(a, b, rules).map((d) => `${d.kind} ${d.path}`);

describe('diff', () => {
  it('finds no difference between equal values', () => {
    expect(diff(order(), order())).toEqual([]);
    expect(diff([1, 'a', null, true], [1, 'a', null, true])).toEqual([]);
  });

  it('names changed, missing, extra and retyped fields by path, with both values', () => {
    const candidate = order() as Record<string, unknown>;
    candidate.total = 31;
    delete candidate.updatedAt;
    candidate.currency = 'EUR';
    (candidate.items as Array<Record<string, unknown>>)[1].qty = '2';
    const found = diff(order(), candidate, compileRules(), { prefix: 'body' });
    expect(found.map(({ path, kind, primary, candidate: value }) => ({ path, kind, primary, candidate: value }))).toEqual([
      { path: 'body.updatedAt', kind: 'missing', primary: '2024-05-01T10:00:00Z', candidate: undefined },
      { path: 'body.total', kind: 'value', primary: 30.5, candidate: 31 },
      { path: 'body.items[1].qty', kind: 'type', primary: 2, candidate: '2' },
      { path: 'body.currency', kind: 'extra', primary: undefined, candidate: 'EUR' },
    ]);
    expect(found[0]).not.toHaveProperty('candidate');
    expect(found[3]).not.toHaveProperty('primary');
  });

  it('reports array length differences as missing or extra elements', () => {
    expect(paths({ a: [1, 2, 3] }, { a: [1, 2] })).toEqual(['missing a[2]']);
    expect(paths([1], [1, 2])).toEqual(['extra [1]']);
  });

  it('ignores fields by dot path, with [*] for every element, and everything below them', () => {
    const candidate = order();
    candidate.updatedAt = 'later';
    candidate.items[0].id = 'x-1';
    candidate.items[1].id = 'x-2';
    candidate.customer = { id: 'other', email: 'b@example.com' };
    expect(paths(order(), candidate, compileRules({ ignore: ['updatedAt', 'items[*].id', 'customer'] }))).toEqual([]);
    expect(paths(order(), candidate, compileRules({ ignore: ['updatedAt', 'items[0].id', 'customer'] }))).toEqual(['value items[1].id']);
  });

  it('compares arrays as multisets where asked, and pairs a changed element field by field', () => {
    const a = { items: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }, { sku: 'C', qty: 3 }], tags: ['x', 'y'] };
    const b = { items: [{ sku: 'C', qty: 3 }, { sku: 'A', qty: 1 }, { sku: 'B', qty: 5 }], tags: ['y', 'x'] };
    expect(paths(a, b)).toHaveLength(8); // in order, every element differs
    expect(paths(a, b, compileRules({ unordered: ['items'] }))).toEqual(['value items[1].qty', 'value tags[0]', 'value tags[1]']);
    expect(paths(a, b, compileRules({ unordered: true }))).toEqual(['value items[1].qty']);
    expect(paths({ t: [1, 1, 2] }, { t: [1, 2, 2] }, compileRules({ unordered: true }))).toEqual(['value t[1]']);
    expect(paths({ t: [1, 2] }, { t: [2] }, compileRules({ unordered: true }))).toEqual(['missing t[0]']);
  });

  it('applies ignore rules inside unordered arrays before pairing', () => {
    const a = { items: [{ id: 1, sku: 'A' }, { id: 2, sku: 'B' }] };
    const b = { items: [{ id: 9, sku: 'B' }, { id: 8, sku: 'A' }] };
    expect(paths(a, b, compileRules({ unordered: ['items'], ignore: ['items[*].id'] }))).toEqual([]);
  });

  it('compares numbers within a tolerance, everywhere or by path', () => {
    const candidate = order();
    candidate.total = 30.504;
    candidate.items[0].price = 10.2;
    expect(paths(order(), candidate, compileRules({ tolerance: 0.01 }))).toEqual(['value items[0].price']);
    expect(paths(order(), candidate, compileRules({ tolerance: { total: 0.01, 'items[*].price': 0.1 } }))).toEqual([]);
    expect(paths(order(), candidate, compileRules({ tolerance: { total: 0.001 } }))).toEqual(['value total', 'value items[0].price']);
  });

  it('stops at the limit and leaves out what skip() rejects without counting it', () => {
    const a = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
    const b = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, -i - 1]));
    expect(diff(a, b, compileRules(), { limit: 5 })).toHaveLength(5);
    const found = diff(a, b, compileRules(), { limit: 5, skip: (path) => Number(path.slice(1)) < 10 });
    expect(found.map((d) => d.path)).toEqual(['k10', 'k11', 'k12', 'k13', 'k14']);
  });

  it('survives values nested far deeper than any answer, without recursion past a fixed depth', () => {
    const deep = (leaf: number) => {
      let value: unknown = leaf;
      for (let i = 0; i < 20_000; i++) value = [value];
      return value;
    };
    const found = diff(deep(1), deep(2));
    expect(found).toHaveLength(1);
    expect(found[0].path).toMatch(/^(\[0\]){64}$/);
    expect(diff(deep(1), deep(1))).toEqual([]);
    expect(diff(deep(1), deep(2), compileRules({ unordered: true }))).toHaveLength(1);
  });

  it('refuses bad paths with the rule and path named', () => {
    expect(() => compileRules({ ignore: ['a..b'] })).toThrow(PathSyntaxError);
    expect(() => compileRules({ ignore: ['items.*.id'] })).toThrow(/ignore "items\.\*\.id"/);
    expect(() => compileRules({ tolerance: { '__proto__.x': 1 } })).toThrow(/tolerance/);
  });

  it('never follows prototype keys of the data', () => {
    const a = JSON.parse('{"__proto__": {"x": 1}, "y": 1}');
    const b = JSON.parse('{"__proto__": {"x": 2}, "y": 1}');
    expect(paths(a, b)).toEqual(['value __proto__.x']);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('deepEqual', () => {
  it('compares structurally', () => {
    expect(deepEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(deepEqual({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(deepEqual([1, 2], [2, 1])).toBe(false);
  });
});

describe('noise', () => {
  it('generalises indexes', () => {
    expect(generalise('body.items[3].id')).toBe('body.items[*].id');
  });

  it('learns fields that differ between two runs of the old code, and treats them and what is below as noise', () => {
    const noise = new NoiseModel();
    const primary = { ...order(), meta: { servedAt: 1, node: 'a' } };
    const secondary = { ...order(), updatedAt: 'other', meta: 'elsewhere' };
    secondary.items = secondary.items.map((item) => ({ ...item, id: `${item.id}-b` }));
    noise.learn(diff(primary, secondary, compileRules(), { prefix: 'body' }));
    expect(noise.list().map((field) => field.path)).toEqual(['body.items[*].id', 'body.meta', 'body.updatedAt']);
    expect(noise.list()[0].count).toBe(2);
    expect(noise.isNoise('body.items[7].id')).toBe(true);
    expect(noise.isNoise('body.meta.servedAt')).toBe(true);
    expect(noise.isNoise('body.total')).toBe(false);
    expect(noise.isNoise('body.updatedAtX')).toBe(false);
  });

  it('keeps a bounded number of fields', () => {
    const noise = new NoiseModel(3);
    noise.learn(['a', 'b', 'c', 'd', 'e'].map((path) => ({ path, kind: 'value' as const, at: [path] })));
    expect(noise.list()).toHaveLength(3);
    noise.clear();
    expect(noise.isNoise('a')).toBe(false);
  });
});
