/**
 * The binding table of a gRPC route: for each RPC of the route's services, its google.api.http rules (with their
 * additional_bindings), the route's explicit `methods` entries, and the fallback `POST /<package.Service>/<Method>`
 * for RPCs that have neither. Client-streaming and bidirectional RPCs are not bridged (a JSON request is one message).
 */
import { ConfigError } from '../errors';
import { closest } from '../options';
import type { Binding, BodyRule } from './http-rule';
import { expressToTemplate, orderBindings, parseTemplate } from './http-rule';
import type { Protobuf } from './protos';
import { bindingProblem } from './request-message';

/** An RPC the route can call. */
export interface RpcMethod {
  /** `shop.v1.Inventory` */
  service: string;
  /** `GetItem` */
  name: string;
  /** The gRPC path: `/shop.v1.Inventory/GetItem`. */
  path: string;
  requestType: Protobuf.Type;
  responseType: Protobuf.Type;
  serverStreaming: boolean;
}

const HTTP_VERBS = ['get', 'put', 'post', 'delete', 'patch'] as const;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

interface HttpRule {
  get?: string;
  put?: string;
  post?: string;
  delete?: string;
  patch?: string;
  custom?: { kind?: string; path?: string };
  body?: string;
  response_body?: string;
  additional_bindings?: HttpRule | HttpRule[];
}

export interface BindingSources {
  /** Explicit entries: `'GET /items/:id'` → `'GetItem'` (or `'shop.v1.Inventory.GetItem'`). */
  methods: Record<string, string> | undefined;
  /** Bind RPCs without a rule to `POST /<package.Service>/<Method>`. */
  unbound: boolean;
}

/** The RPCs of the services, and their bindings, most specific first. Throws a ConfigError naming the option. */
export function compileBindings(services: readonly Protobuf.Service[], sources: BindingSources, optionPrefix: string): Array<Binding<RpcMethod>> {
  const bindings: Array<Binding<RpcMethod>> = [];
  const rpcs: RpcMethod[] = [];
  const ruled = new Set<RpcMethod>();
  for (const service of services) {
    for (const method of service.methodsArray) {
      if (method.requestStream) continue;
      const rpc: RpcMethod = {
        service: service.fullName.slice(1),
        name: method.name,
        path: `/${service.fullName.slice(1)}/${method.name}`,
        requestType: method.resolvedRequestType!,
        responseType: method.resolvedResponseType!,
        serverStreaming: method.responseStream === true,
      };
      rpcs.push(rpc);
      for (const rule of httpRulesOf(method)) {
        bindings.push(bindingFromRule(rule, rpc, `${optionPrefix}protos (${rpc.path})`));
        ruled.add(rpc);
      }
    }
  }
  for (const [key, target] of Object.entries(sources.methods ?? {})) {
    const option = `${optionPrefix}methods.${key}`;
    const match = /^(GET|PUT|POST|DELETE|PATCH)\s+(\/\S*)$/.exec(key);
    if (!match) throw new ConfigError(`"${option}" must be a method and a path such as 'GET /items/:id'.`);
    const rpc = findRpc(rpcs, target, option);
    const body: BodyRule = BODY_METHODS.has(match[1]) ? { kind: 'all' } : { kind: 'none' };
    bindings.push(makeBinding(match[1], expressToTemplate(match[2]), body, undefined, rpc, option));
    ruled.add(rpc);
  }
  if (sources.unbound) {
    for (const rpc of rpcs) if (!ruled.has(rpc)) bindings.push(makeBinding('POST', rpc.path, { kind: 'all' }, undefined, rpc, `${optionPrefix}unboundMethods`));
  }
  return orderBindings(bindings);
}

/** The method's google.api.http rule and its additional bindings, flattened. */
function httpRulesOf(method: Protobuf.Method): HttpRule[] {
  const options = (method.parsedOptions ?? []) as Array<Record<string, unknown>>;
  const rules: HttpRule[] = [];
  for (const option of Array.isArray(options) ? options : [options]) {
    const rule = option['(google.api.http)'] as HttpRule | undefined;
    if (!rule) continue;
    const { additional_bindings: additional, ...main } = rule;
    rules.push(main);
    for (const extra of additional === undefined ? [] : Array.isArray(additional) ? additional : [additional]) rules.push(extra);
  }
  return rules;
}

function bindingFromRule(rule: HttpRule, rpc: RpcMethod, where: string): Binding<RpcMethod> {
  const verbs = HTTP_VERBS.filter((verb) => typeof rule[verb] === 'string');
  let httpMethod: string;
  let path: string;
  if (verbs.length === 1) {
    httpMethod = verbs[0].toUpperCase();
    path = rule[verbs[0]]!;
  } else if (verbs.length === 0 && rule.custom?.kind && rule.custom.path) {
    httpMethod = rule.custom.kind.toUpperCase();
    path = rule.custom.path;
  } else {
    throw new ConfigError(`"${where}" has a google.api.http rule without exactly one of get, put, post, delete, patch or custom.`);
  }
  const body: BodyRule = !rule.body ? { kind: 'none' } : rule.body === '*' ? { kind: 'all' } : { kind: 'field', field: rule.body.split('.') };
  return makeBinding(httpMethod, path, body, rule.response_body ? rule.response_body.split('.') : undefined, rpc, where);
}

function makeBinding(httpMethod: string, path: string, body: BodyRule, responseBody: string[] | undefined, rpc: RpcMethod, where: string): Binding<RpcMethod> {
  let template;
  try {
    template = parseTemplate(path);
  } catch (err) {
    throw new ConfigError(`"${where}": ${(err as Error).message}.`);
  }
  const problem = bindingProblem(template, body, responseBody, rpc.requestType, rpc.responseType);
  if (problem) throw new ConfigError(`"${where}" cannot bind ${httpMethod} ${path} to ${rpc.path}: ${problem}.`);
  return { httpMethod, template, body, responseBody, method: rpc };
}

/** The RPC a `methods` entry names: `GetItem`, `shop.v1.Inventory.GetItem` or `shop.v1.Inventory/GetItem`. */
function findRpc(rpcs: readonly RpcMethod[], name: string, option: string): RpcMethod {
  const normalised = name.replace(/^\//, '').replace('/', '.');
  const found = rpcs.filter((rpc) => rpc.name === normalised || `${rpc.service}.${rpc.name}` === normalised);
  if (found.length === 1) return found[0];
  if (found.length > 1) throw new ConfigError(`"${option}" names ${JSON.stringify(name)}, which several services have; write it as '${found[0].service}.${found[0].name}'.`);
  const suggestion = closest(name, rpcs.map((rpc) => rpc.name));
  throw new ConfigError(`"${option}" names the RPC ${JSON.stringify(name)}, which the route's services do not have (client-streaming RPCs are not bridged).${suggestion ? ` Did you mean "${suggestion}"?` : ''}`);
}
