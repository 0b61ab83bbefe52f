/**
 * docs/configuration.md cannot drift from the schema: every gateway option and every route option of
 * gatewaySchema() has a row in the page's tables (and every row is an option), every feature has its section,
 * and every option one level inside a feature's object (`upstream.targets`, `rateLimit.window`) is named in
 * that section. A new option without a line in the reference fails here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type * as Zod from 'zod';
import { GATEWAY_FEATURES, ROUTE_FEATURES } from '../../middleware/features';
import { gatewaySchema } from '../../middleware/gateway-schema';

const docs = readFileSync(path.join(__dirname, '..', '..', 'docs', 'configuration.md'), 'utf8');

type Def = { type: string; shape?: Record<string, Zod.ZodType>; innerType?: Zod.ZodType; in?: Zod.ZodType; options?: Zod.ZodType[]; element?: Zod.ZodType; valueType?: Zod.ZodType };
const defOf = (schema: Zod.ZodType) => schema._zod.def as unknown as Def;

/** The keys of the object(s) a schema takes, through optional, default, pipe and union (as lib/schema.ts reads them). */
function keysOf(schema: Zod.ZodType | undefined): string[] {
  if (!schema) return [];
  const def = defOf(schema);
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
      return keysOf(def.innerType);
    case 'pipe':
      return keysOf(def.in);
    case 'union':
      return [...new Set((def.options ?? []).flatMap(keysOf))];
    case 'object':
      return Object.keys(def.shape ?? {});
  }
  return [];
}

/** The keys of a record's values (`upstreams: { name: upstream }`). */
function recordValueKeys(schema: Zod.ZodType | undefined): string[] {
  if (!schema) return [];
  const def = defOf(schema);
  if (['optional', 'nullable', 'default', 'prefault', 'readonly'].includes(def.type)) return recordValueKeys(def.innerType);
  return def.type === 'record' ? keysOf(def.valueType) : keysOf(schema);
}

/** The text under a heading (up to the next heading of the same or a higher level). */
function section(heading: RegExp, level: number): string {
  const lines = docs.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`${'#'.repeat(level)} `) && heading.test(line));
  if (start < 0) return '';
  const end = lines.findIndex((line, index) => index > start && new RegExp(`^#{1,${level}} `).test(line));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

/** The options in the first column of a section's first table. */
function tableOptions(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => /^\| `[^`]+` \|/.test(line))
    .map((line) => /^\| `([^`]+)`/.exec(line)?.[1] as string);
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const featureSection = (option: string) => section(new RegExp(`^### \`${escape(option)}\`$`), 3);
const mentions = (text: string, key: string) => text.includes(`\`${key}\``);

const shape = defOf(gatewaySchema()).shape as Record<string, Zod.ZodType>;
const gatewayOptions = Object.keys(shape);
const routeOptions = keysOf(defOf(shape.routes).type === 'array' ? defOf(shape.routes).element : undefined);
const gatewayTable = tableOptions(section(/^## Gateway options$/, 2).split('\n### ')[0]);
const routeTable = tableOptions(section(/^## Route options$/, 2).split('\n### ')[0]);

describe('docs/configuration.md', () => {
  it('reads the options from the schema', () => {
    expect(gatewayOptions).toEqual(expect.arrayContaining(['routes', 'upstreams', 'authSchemes', 'trace']));
    expect(routeOptions).toEqual(expect.arrayContaining(['path', 'upstream', 'auth', 'rateLimit', 'rewrite']));
  });

  it('has a row for every gateway option, and no row for an option that is not one', () => {
    expect([...gatewayTable].sort()).toEqual([...gatewayOptions].sort());
  });

  it('has a row for every route option, and no row for an option that is not one', () => {
    expect([...routeTable].sort()).toEqual([...routeOptions].sort());
  });

  describe.each(ROUTE_FEATURES.map((feature) => [feature.option, feature] as const))('route option %s', (option, feature) => {
    it('has a section', () => {
      expect(featureSection(option)).not.toBe('');
    });

    // Features that declare no schemas yet take any value (z.unknown()): only their name is checked.
    const keys = feature.schemas ? keysOf(feature.schemas().option) : [];
    if (keys.length > 0) {
      it.each(keys)(`names ${option}.%s in its section`, (key) => {
        expect(mentions(featureSection(option), key)).toBe(true);
      });
    }
  });

  describe.each(GATEWAY_FEATURES.map((feature) => [feature.option, feature] as const))('gateway option %s', (option, feature) => {
    it.each(keysOf(feature.schemas().option))(`names ${option}.%s in its section`, (key) => {
      expect(mentions(featureSection(option), key)).toBe(true);
    });
  });

  // `upstreams` and `authSchemes` hold what the route options `upstream` and `auth` take: documented in either section.
  describe.each(ROUTE_FEATURES.flatMap((feature) => (feature.gatewayOptions ?? []).filter((option) => option !== feature.option).map((option) => [option, feature] as const)))('gateway option %s', (option, feature) => {
    it('has a section', () => {
      expect(featureSection(option)).not.toBe('');
    });
    const keys = feature.schemas ? recordValueKeys(feature.schemas().gateway?.[option]) : [];
    if (keys.length > 0) {
      it.each(keys)(`names ${option}.<name>.%s, in its section or in the section of ${feature.option}`, (key) => {
        expect(mentions(featureSection(option), key) || mentions(featureSection(feature.option), key)).toBe(true);
      });
    }
  });

  it('has the headings other pages link to, and its own links to headings resolve', () => {
    const slugs = new Set(
      docs
        .split('\n')
        .filter((line) => /^#{1,6} /.test(line))
        .map((line) =>
          line
            .replace(/^#+ /, '')
            .toLowerCase()
            .replace(/[^\p{L}\p{N} _-]/gu, '')
            .replace(/ /g, '-'),
        ),
    );
    expect(slugs).toContain('editor-completion');
    const anchors = [...docs.matchAll(/\]\(#([^)]+)\)/g)].map((match) => match[1]);
    expect(anchors.length).toBeGreaterThan(10);
    for (const anchor of anchors) expect(slugs).toContain(anchor);
  });
});
