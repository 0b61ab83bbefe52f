/**
 * docs/api.md lists every export of the entry point: a new export without a line there fails here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.join(__dirname, '..', '..');
const entry = readFileSync(path.join(root, 'index.ts'), 'utf8');
const docs = readFileSync(path.join(root, 'docs', 'api.md'), 'utf8');
const exported = [...entry.matchAll(/^export (?:type )?\{([^}]+)\}/gm)].flatMap((match) => match[1].split(',').map((name) => name.trim()).filter(Boolean));

describe('docs/api.md', () => {
  it('finds the exports of index.ts', () => {
    expect(exported.length).toBeGreaterThan(40);
  });

  it.each(exported)('documents %s', (name) => {
    expect(docs).toContain(`\`${name}`);
  });
});
