/**
 * Loads a gateway configuration (the route table) from a YAML or JSON file, so the same table can
 * live next to deployment config instead of in code. Validation happens in gateway().
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors';
import { load } from './load';
import type { GatewayOptions } from '../middleware/gateway';

/**
 * Reads `file` (YAML, or JSON which is YAML too) and returns options for gateway().
 * Strings of the form `${NAME}` are replaced by the environment variable NAME, so targets can
 * differ per environment without editing the file.
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
  let parsed: unknown;
  try {
    parsed = load('yaml').parse(text);
  } catch (err) {
    throw new ConfigError(`the gateway config file ${JSON.stringify(file)} is not valid YAML: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`the gateway config file ${JSON.stringify(file)} must hold an object with "routes".`);
  }
  return substitute(parsed, env, file) as GatewayOptions;
}

function substitute(value: unknown, env: NodeJS.ProcessEnv, file: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const replacement = env[name];
      if (replacement === undefined) throw new ConfigError(`the gateway config file ${JSON.stringify(file)} uses \${${name}} but that environment variable is not set.`);
      return replacement;
    });
  }
  if (Array.isArray(value)) return value.map((item) => substitute(item, env, file));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substitute(item, env, file)]));
  }
  return value;
}
