/**
 * The `frontdoor` command line (bin/frontdoor.js runs main()): `check` validates a config file the way
 * gateway.fromFile() would, every mistake with `file:line:column`, for CI; `routes` prints the resolved route
 * table (path, methods, hosts, upstream targets, policies in pipeline order), as text or `--json`; `serve` runs the
 * gateway of the file as a server of its own (lib/serve/: workers, TLS, admin port, graceful shutdown). Arguments
 * are parsed by commander. Output is plain text (no colour), so NO_COLOR has nothing to strip; values that
 * came from the environment are redacted, and auth secrets and keys are never printed at all.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { Command, CommanderError } from 'commander';
import { fileError, readConfig } from './config-file';
import type { ConfigFile } from './config-file';
import { ConfigError } from './errors';
import { PHASES } from './pipeline';
import type { Phase } from './pipeline';
import { isRedisClient, isRedisOption } from './redis';
import type { RedisClientLike } from './redis';
import { serve, ServeUsageError } from './serve';
import type { ServeOptions } from './serve';
import { GATEWAY_FEATURES, ROUTE_FEATURES } from '../middleware/features';
import { gateway } from '../middleware/gateway';
import type { GatewayOptions } from '../middleware/gateway';

/** Where the CLI writes and what it reads; main() uses the process's own by default. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

/** Exit codes: the file is valid; it is not (or cannot be read); the command line itself is wrong. */
export const EXIT = { ok: 0, invalid: 1, usage: 2 } as const;

/** One row of `frontdoor routes --json`. */
export interface RouteRow {
  /** The route's index in the file's `routes`. */
  index: number;
  name: string;
  path: string;
  /** Methods matched (GET brings HEAD), or null for every method. */
  methods: string[] | null;
  /** Hosts matched, or null for any host. */
  hosts: string[] | null;
  stripPath: boolean;
  /** The final handler. */
  upstream: FinalHandler;
  /** The policies before the final handler, in the order they run. */
  policies: Array<{ option: string; phase: Phase; summary: string }>;
  /** What wraps the final handler (fallback, cutover, shadow), innermost first. */
  wrappers: Array<{ option: string; summary: string }>;
}

export type Target = { url: string; weight: number };

export type FinalHandler =
  | { kind: 'url' | 'inline' | 'named'; name?: string; targets: Target[]; rewrite?: Record<string, string>; ws?: boolean; preserveHost?: boolean }
  | { kind: 'aggregate'; calls: Array<{ name: string; url?: string; upstream?: string; targets?: Target[]; path?: string; optional: boolean }> }
  | { kind: 'app' };

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: readonly string[] = process.argv, io: CliIo = processIo()): Promise<number> {
  let code: number = EXIT.ok;
  const program = new Command('frontdoor')
    .description('Check a frontdoor-gateway config file, list its routes, or serve it.')
    .version(packageVersion(), '-V, --version', 'print the version of frontdoor-gateway')
    .helpCommand(false)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run frontdoor --help for the commands)');

  program
    .command('check')
    .description('Validate a YAML or JSON config file: exit 0 when it is valid, 1 with every mistake on stderr (file:line:column) otherwise.')
    .argument('<file>', 'the config file (gateway.yaml, gateway.json)')
    .option('--env-file <file>', 'read ${env:NAME} values from this dotenv file too (over the environment)')
    .exitOverride()
    .action(async (file: string, options: { envFile?: string }) => {
      code = await run(io, file, options.envFile, (config) => {
        const routes = config.options.routes.length;
        io.stdout(`ok: ${config.file} is valid (${routes} ${routes === 1 ? 'route' : 'routes'})\n`);
      });
    });

  program
    .command('routes')
    .description('Print the resolved route table: path, methods, hosts, upstream targets and the policies in pipeline order.')
    .argument('<file>', 'the config file (gateway.yaml, gateway.json)')
    .option('--json', 'print the table as JSON')
    .option('--env-file <file>', 'read ${env:NAME} values from this dotenv file too (over the environment)')
    .exitOverride()
    .action(async (file: string, options: { json?: boolean; envFile?: string }) => {
      code = await run(io, file, options.envFile, (config) => {
        const rows = redactDeep(routeTable(config.options), config);
        io.stdout(options.json ? `${JSON.stringify({ file: config.file, routes: rows }, null, 2)}\n` : renderTable(rows));
      });
    });

  program
    .command('serve')
    .description('Serve the gateway of a config file on its own server: SIGTERM/SIGINT drain it; requests no route matches get a 404 problem.')
    .argument('<file>', 'the config file (gateway.yaml, gateway.json)')
    .option('-p, --port <port>', 'port of the public listener (default 8080)')
    .option('-H, --host <address>', 'address of the public listener (default 0.0.0.0)')
    .option('-w, --workers <n>', 'processes serving requests (node:cluster), or "auto" for one per core (default 1)')
    .option('--cert <file>', 'PEM certificate chain: serve HTTPS (with --key)')
    .option('--key <file>', 'PEM private key of --cert')
    .option('--ca <file>', 'PEM CA certificates: ask clients for a certificate and check it against them (auth: { mtls })')
    .option('--watch', 'reload the config file when it changes, in every worker')
    .option('--admin-port <port>', 'serve /healthz, /readyz and /metrics on this port (the public port puts them on the public listener)')
    .option('--admin-host <address>', 'address of the admin listener (default: --host)')
    .option('--drain-timeout <duration>', 'how long requests in flight may finish after SIGTERM/SIGINT (default 30s)')
    .option('--env-file <file>', 'read ${env:NAME} values from this dotenv file too (over the environment)')
    .exitOverride()
    .action(async (file: string, options: Omit<ServeOptions, 'file' | 'env'> & { envFile?: string }) => {
      code = await runServe(io, file, options);
    });

  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    throw err;
  }
}

/** Reads and checks the file, then hands it to `then`; every mistake goes to stderr. */
async function run(io: CliIo, file: string, envFile: string | undefined, then: (config: ConfigFile) => void): Promise<number> {
  try {
    const config = await checkFile(file, envFile ? withEnvFile(io.env, envFile) : io.env);
    then(config);
    return EXIT.ok;
  } catch (err) {
    return report(io, file, err);
  }
}

/** Writes what went wrong to stderr: a ConfigError as one `file:line:column: message` line per mistake. */
function report(io: CliIo, file: string, err: unknown): number {
  if (!(err instanceof ConfigError)) {
    io.stderr(`frontdoor: ${(err as Error)?.message ?? String(err)}\n`);
    return EXIT.invalid;
  }
  const located = err.issues.filter((issue) => issue.file !== undefined);
  if (located.length === 0) {
    io.stderr(`${err.message}\n`);
    return EXIT.invalid;
  }
  // In the file's order, as an editor lists them.
  located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  for (const issue of located) io.stderr(`${issue.file}${issue.line ? `:${issue.line}:${issue.column}` : ''}: ${issue.message}\n`);
  io.stderr(`frontdoor: ${file} is not valid: ${located.length} ${located.length === 1 ? 'mistake' : 'mistakes'}.\n`);
  return EXIT.invalid;
}

/** `frontdoor serve`: runs until a signal ends it; a flag that cannot be used exits 2, a file that does not check out 1. */
async function runServe(io: CliIo, file: string, flags: Omit<ServeOptions, 'file' | 'env'> & { envFile?: string }): Promise<number> {
  const { envFile, ...options } = flags;
  let env: NodeJS.ProcessEnv;
  try {
    env = envFile ? withEnvFile(io.env, envFile) : io.env;
  } catch (err) {
    io.stderr(`frontdoor: ${(err as Error).message}\n`);
    return EXIT.invalid;
  }
  try {
    return await serve({ ...options, file, env });
  } catch (err) {
    if (err instanceof ServeUsageError) {
      io.stderr(`frontdoor serve: ${err.message}\n`);
      return EXIT.usage;
    }
    return report(io, file, err);
  }
}

/**
 * Checks a file as gateway.fromFile() would: the schema (readConfig), then building the gateway, which finds
 * the mistakes between options (twin routes, an unknown upstream or auth scheme, a route without a final
 * handler), then closing it at once. Building opens no socket to an http upstream before a request; Redis
 * URLs are swapped for an offline stand-in first, so a check never connects to Redis (CI has none to reach).
 */
export async function checkFile(file: string, env: NodeJS.ProcessEnv): Promise<ConfigFile> {
  const config = await readConfig(file, env);
  let built;
  try {
    built = gateway(offline(config.options) as GatewayOptions);
  } catch (err) {
    throw err instanceof ConfigError ? fileError(config, err.issues) : err;
  }
  await built.close();
  return config;
}

/**
 * A copy of the options where every `redis` that would connect (a URL, `{ cluster }`, `{ sentinels, name }`) is a
 * client that answers every command at once without a connection. One stand-in per value, so routes that share a
 * counter or store still compare equal; a value the schema would refuse is left for it to report.
 */
function offline(options: unknown): unknown {
  const standIns = new Map<string, RedisClientLike>();
  const copy = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(copy);
    if (!value || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => {
        if (key === 'redis' && isRedisOption(item) && !isRedisClient(item)) {
          const id = JSON.stringify(item);
          if (!standIns.has(id)) standIns.set(id, { call: async () => '' });
          return [key, standIns.get(id)];
        }
        return [key, copy(item)];
      }),
    );
  };
  return copy(options);
}

/** `env` with the variables of a dotenv file over it. */
function withEnvFile(env: NodeJS.ProcessEnv, file: string): NodeJS.ProcessEnv {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the env file ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
  return { ...env, ...parseEnv(text) };
}

type Options = Record<string, unknown>;

/** The resolved route table of (checked) options, in the file's order. */
export function routeTable(options: GatewayOptions): RouteRow[] {
  const gatewayOptions = options as unknown as Options;
  const observe = GATEWAY_FEATURES.filter((feature) => isSet(gatewayOptions[feature.option])).map((feature) => ({
    option: feature.option,
    phase: 'observe' as Phase,
    summary: summarise(feature.option, gatewayOptions[feature.option], gatewayOptions),
  }));
  return options.routes.map((given, index) => {
    const route = given as unknown as Options;
    // As gateway() does: a feature listing its own option among its gatewayOptions takes the gateway's value as the default.
    const valueOf = (feature: (typeof ROUTE_FEATURES)[number]) => route[feature.option] ?? (feature.gatewayOptions?.includes(feature.option) ? gatewayOptions[feature.option] : undefined);
    const present = ROUTE_FEATURES.filter((feature) => valueOf(feature) !== undefined);
    // A wrapper without a final handler of its own wraps the app's handler, as gateway() does.
    const final = present.find((feature) => feature.phase === 'final' && !feature.wraps);
    const wrappers = present.filter((feature) => feature.wraps).map((feature) => ({ option: feature.option, summary: summarise(feature.option, valueOf(feature), gatewayOptions) }));
    // Registry order within a phase; a part may run in another phase than its feature's (a limit by IP alone).
    const policies = present
      .filter((feature) => feature.phase !== 'final')
      .map((feature) => ({ option: feature.option, phase: effectivePhase(feature.option, feature.phase, valueOf(feature)), summary: summarise(feature.option, valueOf(feature), gatewayOptions) }))
      .sort((a, b) => PHASES.indexOf(a.phase) - PHASES.indexOf(b.phase));
    const methods = Array.isArray(route.methods) ? [...new Set(route.methods.map((method) => String(method).toUpperCase()))] : null;
    if (methods?.includes('GET') && !methods.includes('HEAD')) methods.splice(methods.indexOf('GET') + 1, 0, 'HEAD');
    return {
      index,
      name: String(route.name ?? route.path),
      path: String(route.path),
      methods,
      hosts: route.host === undefined ? null : [route.host].flat().map(String),
      stripPath: route.stripPath === true,
      upstream: finalHandler(final?.option ?? 'app', final ? valueOf(final) : true, route, gatewayOptions),
      policies: [...observe, ...policies],
      wrappers,
    };
  });
}

function isSet(value: unknown): boolean {
  return value !== undefined && value !== false;
}

/** The phase a feature's part runs in, when it differs from the feature's (see rateLimitFeature.build). */
function effectivePhase(option: string, phase: Phase, value: unknown): Phase {
  if (option === 'rateLimit' && value && typeof value === 'object') {
    // rate-limit.ts limitsByAddressOnly(): counted by IP alone (the default key), no tiers, in every per-method count too.
    const limit = value as { key?: unknown; tiers?: unknown; methods?: Record<string, { key?: unknown; tiers?: unknown }> };
    const counts = [limit, ...Object.values(limit.methods ?? {})];
    if (counts.every((count) => (count.key ?? limit.key ?? 'ip') === 'ip' && (count.tiers ?? limit.tiers) === undefined)) return 'admit';
  }
  return phase;
}

function finalHandler(option: string | undefined, value: unknown, route: Options, gatewayOptions: Options): FinalHandler {
  if (option === 'app') return { kind: 'app' };
  if (option === 'aggregate') {
    const calls = Object.entries(((value as Options).calls ?? {}) as Record<string, Options>);
    return {
      kind: 'aggregate',
      calls: calls.map(([name, call]) => {
        const upstream = call.upstream === undefined ? undefined : resolveUpstream(call.upstream, gatewayOptions);
        return {
          name,
          ...(typeof call.url === 'string' ? { url: hideUserinfo(call.url) } : {}),
          ...(upstream ? { upstream: upstream.name ?? upstream.kind, targets: upstream.targets } : {}),
          ...(typeof call.path === 'string' ? { path: call.path } : {}),
          optional: call.optional === true,
        };
      }),
    };
  }
  const upstream = resolveUpstream(value, gatewayOptions);
  return {
    ...upstream,
    ...(route.rewrite && typeof route.rewrite === 'object' ? { rewrite: route.rewrite as Record<string, string> } : {}),
    ...(route.ws === true ? { ws: true } : {}),
    ...(route.preserveHost === true ? { preserveHost: true } : {}),
  };
}

/** A route's `upstream` value: a URL, the name of one of the gateway's `upstreams` (resolved to its targets), or an object. */
function resolveUpstream(value: unknown, gatewayOptions: Options): { kind: 'url' | 'inline' | 'named'; name?: string; targets: Target[] } {
  if (typeof value === 'string') {
    const named = (gatewayOptions.upstreams as Record<string, unknown> | undefined)?.[value];
    if (named !== undefined) return { kind: 'named', name: value, targets: targetsOf(named) };
    return { kind: 'url', targets: targetsOf(value) };
  }
  return { kind: 'inline', targets: targetsOf(value) };
}

function targetsOf(upstream: unknown): Target[] {
  if (typeof upstream === 'string') return [{ url: hideUserinfo(upstream), weight: 1 }];
  const { target, targets } = (upstream ?? {}) as { target?: string; targets?: Array<string | { url: string; weight?: number }> };
  const list = targets ?? (target === undefined ? [] : [target]);
  return list.map((entry) => (typeof entry === 'string' ? { url: hideUserinfo(entry), weight: 1 } : { url: hideUserinfo(entry.url), weight: entry.weight ?? 1 }));
}

/** `http://user:secret@host` → `http://user:***@host`: a password written in a URL is never printed. */
function hideUserinfo(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, '$1:***@');
}

/**
 * A one-line description of a policy. Secrets never appear: auth is described by its schemes only, Redis by
 * the word, and a policy without a description of its own by the names of the keys it sets.
 */
function summarise(option: string, value: unknown, gatewayOptions: Options): string {
  if (option === 'cutover') {
    const cutover = (typeof value === 'number' ? { percent: value } : value) as { percent?: number; sticky?: unknown };
    const sticky = cutover.sticky === undefined ? '' : `, sticky by ${typeof cutover.sticky === 'string' ? cutover.sticky : Object.entries(cutover.sticky as object).map(([by, name]) => `${by} ${name}`).join(' ')}`;
    return `${cutover.percent}% to the upstream, the rest to the app${sticky}`;
  }
  if (option === 'fallback') {
    const on = value === true ? undefined : (value as { on?: unknown[] }).on;
    return `to the app on ${(on ?? ['unavailable', 'timeout']).join(' ')}`;
  }
  if (option === 'shadow' && value && typeof value === 'object') {
    const shadow = value as { candidate?: unknown; percent?: number; unsafe?: boolean };
    const urls = targetsOf(shadow.candidate).map((target) => target.url);
    return `copies ${shadow.percent ?? 100}% of ${shadow.unsafe ? 'all' : 'safe'} requests to ${urls.join(', ')} and compares`;
  }
  if (value === true) return 'on';
  if (value === false) return 'off';
  if (typeof value !== 'object' || value === null) return option === 'auth' ? describeAuthScheme(String(value), gatewayOptions) : String(value);
  const options = value as Options;
  const list = (items: unknown) => (Array.isArray(items) ? items.join(' ') : String(items));
  switch (option) {
    case 'auth':
      return describeAuth(options);
    case 'rateLimit': {
      const parts = [`${options.limit ?? 60} per ${options.window ?? '1m'} by ${typeof options.key === 'string' ? options.key : 'ip'}`];
      if (options.tiers) parts.push(`tiers ${Object.entries(options.tiers as Record<string, number>).map(([tier, limit]) => `${tier}=${limit}`).join(' ')}`);
      if (options.methods) parts.push(`own limits for ${Object.keys(options.methods as object).join(' ')}`);
      if (options.redis) parts.push('in Redis');
      if (options.name) parts.push(`counter "${options.name}"`);
      return parts.join(', ');
    }
    case 'authorize': {
      const parts: string[] = [];
      if (options.scopes) parts.push(`scopes ${list(options.scopes)}`);
      if (options.tiers) parts.push(`tiers ${list(options.tiers)}`);
      if (options.methods) parts.push(`own rules for ${Object.keys(options.methods as object).join(' ')}`);
      return parts.join(', ') || keysOf(options);
    }
    case 'ipFilter':
      return [options.allow ? `allow ${list(options.allow)}` : '', options.deny ? `deny ${list(options.deny)}` : ''].filter(Boolean).join(', ') || keysOf(options);
    case 'bodyLimit':
      return String(options.max);
    case 'cache':
      return [`ttl ${options.ttl}`, options.perConsumer ? 'per consumer' : '', options.redis ? 'in Redis' : ''].filter(Boolean).join(', ');
    case 'headers':
      return (['request', 'response'] as const)
        .filter((side) => options[side])
        .map((side) => `${side}: ${Object.entries(options[side] as Options).map(([change, names]) => `${change} ${Array.isArray(names) ? names.join(' ') : Object.keys(names as object).join(' ')}`).join(', ')}`)
        .join('; ');
    default:
      return keysOf(options);
  }
}

function keysOf(options: Options): string {
  return Object.keys(options).join(', ');
}

/** `auth: 'partners'`: the scheme's name and what it is. */
function describeAuthScheme(name: string, gatewayOptions: Options): string {
  const scheme = (gatewayOptions.authSchemes as Record<string, Options> | undefined)?.[name];
  return scheme ? `${name}: ${describeAuth(scheme)}` : name;
}

/** The kinds of credentials accepted, e.g. `jwt (HS256)`, `apiKey (3 keys)`; never a secret, key or key digest. */
function describeAuth(options: Options): string {
  const schemes: string[] = [];
  const jwt = options.jwt as Options | undefined;
  if (jwt) schemes.push(`jwt (${[Array.isArray(jwt.algorithms) ? jwt.algorithms.join(' ') : '', jwt.jwksUri ? 'JWKS' : ''].filter(Boolean).join(', ')})`);
  const apiKey = options.apiKey as Options | undefined;
  if (apiKey) {
    const keys = apiKey.keys ? Object.keys(apiKey.keys as object).length : 0;
    schemes.push(`apiKey (${apiKey.lookup ? 'lookup' : `${keys} ${keys === 1 ? 'key' : 'keys'}`})`);
  }
  if (options.mtls) schemes.push('mtls');
  return `${schemes.join(' or ') || 'none'}${options.optional === true ? ', optional' : ''}`;
}

/** Every string of `value` through `config.redact()`: a value that came from the environment is never printed. */
function redactDeep<T>(value: T, config: ConfigFile): T {
  if (typeof value === 'string') return config.redact(value) as T;
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, config)) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactDeep(item, config)])) as T;
  return value;
}

/** The table as text: one block per route, the steps numbered in the order they run. */
export function renderTable(rows: RouteRow[]): string {
  const blocks = rows.map((row) => {
    const head = [row.path, row.name !== row.path ? `(${row.name})` : '', row.methods ? row.methods.join(' ') : 'any method', row.hosts ? `host ${row.hosts.join(' ')}` : 'any host', row.stripPath ? 'stripPath' : '']
      .filter(Boolean)
      .join('  ');
    const steps = [...row.policies.map((policy) => [policy.option, policy.phase, policy.summary]), finalStep(row.upstream), ...row.wrappers.map((wrapper) => [wrapper.option, 'final (wraps)', wrapper.summary])];
    const width = Math.max(...steps.map(([option]) => option.length));
    const lines = steps.map(([option, phase, summary], step) => `  ${String(step + 1).padStart(2)}. ${option.padEnd(width)}  ${phase.padEnd(13)}  ${summary}`.trimEnd());
    return [head, ...lines].join('\n');
  });
  return `${blocks.join('\n\n')}\n`;
}

function finalStep(handler: FinalHandler): [string, string, string] {
  const targets = (list: Target[]) => list.map((target) => (target.weight === 1 ? target.url : `${target.url} (weight ${target.weight})`)).join(', ');
  if (handler.kind === 'app') return ['app', 'final', "the app's own handlers"];
  if (handler.kind === 'aggregate') {
    const calls = handler.calls.map((call) => `${call.name}${call.optional ? '?' : ''} ${call.url ?? `${call.upstream === 'url' || call.upstream === 'inline' ? '' : `${call.upstream} `}${targets(call.targets ?? [])}${call.path ?? ''}`}`);
    return ['aggregate', 'final', calls.join('; ')];
  }
  const extras = [handler.rewrite ? `rewrite ${Object.entries(handler.rewrite).map(([from, to]) => `${from} → ${to}`).join(', ')}` : '', handler.ws ? 'ws' : '', handler.preserveHost ? 'preserveHost' : ''].filter(Boolean);
  return ['upstream', 'final', `${handler.name ? `${handler.name} → ` : ''}${targets(handler.targets)}${extras.length ? ` (${extras.join(', ')})` : ''}`];
}

/** The version of the installed frontdoor-gateway (its package.json, above dist/lib or lib). */
function packageVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'frontdoor-gateway' && manifest.version) return manifest.version;
    } catch {
      // no package.json here: look further up
    }
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

function processIo(): CliIo {
  return { stdout: (text) => process.stdout.write(text), stderr: (text) => process.stderr.write(text), env: process.env };
}
