/**
 * google.api.http path templates: parsing, matching (literals, `*`, `**`, variables with sub-templates, verbs),
 * Express-style paths, and the order in which bindings are tried.
 */
import { expressToTemplate, findBinding, matchTemplate, orderBindings, parseTemplate } from '../../lib/grpc/http-rule';
import type { Binding } from '../../lib/grpc/http-rule';

const match = (template: string, path: string) => matchTemplate(parseTemplate(template), path);

describe('path templates', () => {
  it('binds a single-segment variable, percent-decoded', () => {
    expect(match('/v1/items/{id}', '/v1/items/a%20b')).toEqual([[['id'], 'a b']]);
    expect(match('/v1/items/{id}', '/v1/items')).toBeUndefined();
    expect(match('/v1/items/{id}', '/v1/items/1/2')).toBeUndefined();
    expect(match('/v1/items/{id}', '/v1/items/')).toBeUndefined();
  });

  it('binds nested field paths and multi-segment sub-templates', () => {
    expect(match('/v1/items/{item.id}', '/v1/items/7')).toEqual([[['item', 'id'], '7']]);
    expect(match('/v1/{name=shelves/*/items/*}', '/v1/shelves/s1/items/i2')).toEqual([[['name'], 'shelves/s1/items/i2']]);
    expect(match('/v1/{name=shelves/*/items/*}', '/v1/shelves/s1/books/i2')).toBeUndefined();
    expect(match('/v1/{name=shelves/*}/items/{item}', '/v1/shelves/s1/items/i2')).toEqual([
      [['name'], 'shelves/s1'],
      [['item'], 'i2'],
    ]);
  });

  it('`**` takes the rest of the path, even nothing', () => {
    expect(match('/v1/files/{path=**}', '/v1/files/a/b/c.txt')).toEqual([[['path'], 'a/b/c.txt']]);
    expect(match('/v1/files/{path=**}', '/v1/files')).toEqual([[['path'], '']]);
    expect(match('/v1/*/x', '/v1/any/x')).toEqual([]);
  });

  it('a verb must be present when the template has one, and is not part of the last variable', () => {
    expect(match('/v1/items:watch', '/v1/items:watch')).toEqual([]);
    expect(match('/v1/items:watch', '/v1/items')).toBeUndefined();
    expect(match('/v1/items/{id}:cancel', '/v1/items/9:cancel')).toEqual([[['id'], '9']]);
    expect(match('/v1/items/{id}', '/v1/items/9:cancel')).toEqual([[['id'], '9:cancel']]);
  });

  it.each([['v1/items'], ['/v1/{id'], ['/v1/{a}/{a}'], ['/v1/**/x'], ['/v1/{a.1b}'], ['/v1//x'], ['/v1/{a={b}}']])('refuses %s', (template) => {
    expect(() => parseTemplate(template)).toThrow();
  });

  it('reads Express-style paths', () => {
    expect(expressToTemplate('/items/:id/parts/:part')).toBe('/items/{id}/parts/{part}');
    expect(expressToTemplate('/files/*')).toBe('/files/**');
  });
});

describe('binding order', () => {
  const binding = (httpMethod: string, template: string, method: string): Binding<string> => ({ httpMethod, template: parseTemplate(template), body: { kind: 'none' }, responseBody: undefined, method });

  it('tries verbs first, then more literal segments, then fixed length before `**`', () => {
    const ordered = orderBindings([binding('GET', '/v1/{path=**}', 'rest'), binding('GET', '/v1/items/{id}', 'item'), binding('GET', '/v1/items/special', 'special'), binding('GET', '/v1/items:watch', 'watch')]);
    expect(findBinding(ordered, 'GET', '/v1/items/special')?.binding.method).toBe('special');
    expect(findBinding(ordered, 'GET', '/v1/items/7')?.binding.method).toBe('item');
    expect(findBinding(ordered, 'GET', '/v1/items:watch')?.binding.method).toBe('watch');
    expect(findBinding(ordered, 'GET', '/v1/other/thing')?.binding.method).toBe('rest');
    expect(findBinding(ordered, 'POST', '/v1/items/7')).toBeUndefined();
  });
});
