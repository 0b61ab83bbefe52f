/**
 * Gateway configuration files: YAML or JSON in the shape of gateway()'s options. A file is validated by the
 * same schemas as code (middleware/gateway-schema.ts), every mistake is reported at once with its option path
 * and the file's line and column, secrets come from the environment and never appear in a message, and a
 * duration needs its unit (`timeout: 10` is 10 ms in code, and almost never what a file's author meant).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Document, LineCounter } from 'yaml';
import { ConfigError, ConfigIssue } from './errors';
import { load } from './load';
import { durationsWithoutUnit, parseOptions } from './schema';
import type { GatewayOptions } from '../middleware/gateway';
import { gatewaySchema } from '../middleware/gateway-schema';

/** A parsed config file: the options, and how to point at a place in it. */
export interface ConfigFile {
  file: string;
  options: GatewayOptions;
  /** Line and column (1-based) of the value at an option path (`routes[2].upstream`), when the file has it. */
  locate(path: string): { line: number; column: number } | undefined;
  /** Replaces the values taken from the environment by `***`, so an error or a listing never shows a secret. */
  redact(text: string): string;
}

// ${env:NAME}, ${env:NAME:-default} and the shorthand ${NAME}.
const REFERENCE = /\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Reads `file` (YAML, or JSON which is YAML too) and returns options for gateway(), unchecked: gateway()
 * checks them. Prefer readConfig(), which checks them against the file's lines.
 *
 * @example
 * app.use(gateway(loadConfig('gateway.yaml')));
 */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): GatewayOptions {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the gateway config file ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
  return parseConfig(text, file, env).options;
}

/**
 * Reads and checks a config file: every mistake, each with `file:line:column` and its option path, in one
 * ConfigError (`issues` carry them as data). The file's options are not built into a gateway here.
 */
export async function readConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the gateway config file ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
  const config = parseConfig(text, file, env);
  const issues: ConfigIssue[] = [];
  try {
    parseOptions(gatewaySchema(), config.options);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    issues.push(...err.issues);
  }
  for (const path of durationsWithoutUnit(gatewaySchema(), config.options)) {
    issues.push({ path, message: `"${path}" needs a unit in a config file, e.g. '10s' or '500ms' (a bare number would be milliseconds).` });
  }
  if (issues.length > 0) throw fileError(config, issues);
  return config;
}

/** The ConfigError of a file: each issue with the file, line and column of its value, secrets redacted. */
export function fileError(config: ConfigFile, issues: readonly ConfigIssue[]): ConfigError {
  const located = issues.map((issue) => {
    const position = config.locate(issue.path);
    const message = config.redact(issue.message.replace(/^frontdoor: /, ''));
    return { ...issue, message, file: config.file, ...(position ?? {}) };
  });
  const lines = located.map((issue) => `${issue.file}${issue.line ? `:${issue.line}:${issue.column}` : ''}: ${issue.message}`);
  return new ConfigError(located.length === 1 ? lines[0] : `${located.length} mistakes in ${config.file}:\n${lines.map((line) => `- ${line}`).join('\n')}`, located);
}

function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv): ConfigFile {
  const yaml = load('yaml');
  const lineCounter: LineCounter = new yaml.LineCounter();
  const document: Document = yaml.parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    const issues = document.errors.map((error) => {
      const [line, column] = error.linePos?.[0] ? [error.linePos[0].line, error.linePos[0].col] : [undefined, undefined];
      return { path: '', file, line, column, message: error.message.split('\n')[0] };
    });
    throw new ConfigError(`the gateway config file ${JSON.stringify(file)} is not valid YAML:\n${issues.map((issue) => `- ${file}${issue.line ? `:${issue.line}:${issue.column}` : ''}: ${issue.message}`).join('\n')}`, issues);
  }
  const raw: unknown = document.toJS({ maxAliasCount: 100 });
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`the gateway config file ${JSON.stringify(file)} must hold an object with "routes".`);

  // A JSON file may name its schema for editors ("$schema": "…/frontdoor-gateway/dist/schema.json"): not an option.
  delete (raw as Record<string, unknown>).$schema;
  const secrets = new Set<string>();
  const missing = new Map<string, string>();
  const options = substitute(raw, env, secrets, missing, '');
  const config: ConfigFile = {
    file,
    options: options as GatewayOptions,
    locate(path) {
      const node = document.getIn(toKeys(path), true) as { range?: [number, number, number] } | undefined;
      const offset = node?.range?.[0];
      if (offset === undefined) return path.includes('.') || path.includes('[') ? config.locate(parentOf(path)) : undefined;
      const { line, col } = lineCounter.linePos(offset);
      return { line, column: col };
    },
    redact(message) {
      let redacted = message;
      for (const secret of secrets) redacted = redacted.split(secret).join('***');
      return redacted;
    },
  };
  if (missing.size > 0) {
    throw fileError(
      config,
      [...missing].map(([name, path]) => ({ path, message: `uses \${env:${name}}, but the environment variable ${name} is not set (give a default with \${env:${name}:-value}).` })),
    );
  }
  return config;
}

/** Replaces environment references in every string; values that came from the environment are kept as secrets. */
function substitute(value: unknown, env: NodeJS.ProcessEnv, secrets: Set<string>, missing: Map<string, string>, path: string): unknown {
  if (typeof value === 'string') {
    return value.replace(REFERENCE, (_match, name: string, fallback: string | undefined) => {
      const replacement = env[name] ?? fallback;
      if (replacement === undefined) {
        if (!missing.has(name)) missing.set(name, path);
        return '';
      }
      // Short values ('1', 'on') would redact half of every message; a secret is never that short.
      if (env[name] !== undefined && replacement.length >= 4) secrets.add(replacement);
      return replacement;
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => substitute(item, env, secrets, missing, `${path}[${index}]`));
  if (value && typeof value === 'object') {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // A file is data: a key that would reach an object's prototype has no meaning in gateway options.
      if (key === '__proto__' || key === 'constructor' || key === 'prototype') continue;
      result[key] = substitute(item, env, secrets, missing, path ? `${path}.${key}` : key);
    }
    return result;
  }
  return value;
}

/** `routes[2].upstream.targets[0]` → ['routes', 2, 'upstream', 'targets', 0]. */
function toKeys(path: string): Array<string | number> {
  const keys: Array<string | number> = [];
  for (const part of path.match(/[^.[\]]+|\[\d+\]/g) ?? []) keys.push(part.startsWith('[') ? Number(part.slice(1, -1)) : part);
  return keys;
}

function parentOf(path: string): string {
  return path.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
}
