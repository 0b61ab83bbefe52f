/**
 * Loads .proto files into protobufjs reflection (types, enums, services with their options), the way
 * @grpc/proto-loader does, for the gRPC bridge. The bridge needs the reflection objects themselves (field types,
 * oneofs, maps, json names) to map JSON strictly, which proto-loader's package definitions do not expose. The
 * protobufjs used is proto-loader's own, so nothing beyond @grpc/proto-loader is needed at run time, and it has the
 * google/protobuf protos proto-loader registers (descriptor.proto, which google/api/annotations.proto imports).
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type * as Protobuf from 'protobufjs';
import { ConfigError } from '../errors';
import { googleApiIncludeDir } from './google-api-protos';

// Loading proto-loader first registers the google/protobuf protos protobufjs does not bundle (descriptor.proto).
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('@grpc/proto-loader');
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const protobuf = require(require.resolve('protobufjs', { paths: [path.dirname(require.resolve('@grpc/proto-loader'))] })) as typeof Protobuf;

export type { Protobuf };

export interface LoadOptions {
  /** The .proto files. */
  protos: readonly string[];
  /** Where imports are looked up, after each proto's own directory. */
  includeDirs: readonly string[];
}

/**
 * Loads `protos` (imports resolved against `includeDirs`, each proto's directory, and the bundled google/api protos)
 * and resolves every type. Throws a ConfigError naming `option` when a file is missing or does not parse.
 */
export function loadProtos(options: LoadOptions, option: string): Protobuf.Root {
  const dirs = [...options.includeDirs.map((dir) => path.resolve(dir)), ...options.protos.map((file) => path.dirname(path.resolve(file))), googleApiIncludeDir()];
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      try {
        accessSync(candidate, constants.R_OK);
        return candidate;
      } catch {
        continue;
      }
    }
    return protobuf.util.path.resolve(origin, target);
  };
  const files = options.protos.map((file) => path.resolve(file));
  for (const file of files) {
    try {
      accessSync(file, constants.R_OK);
    } catch {
      throw new ConfigError(`"${option}" lists ${JSON.stringify(file)}, which cannot be read.`);
    }
  }
  try {
    root.loadSync(files, { keepCase: true });
    // google.rpc.Status reads a service's error details; loaded unless the user's protos brought their own.
    if (!root.lookup('google.rpc.Status')) root.loadSync(path.join(googleApiIncludeDir(), 'google/rpc/status.proto'), { keepCase: true });
    root.resolveAll();
  } catch (err) {
    throw new ConfigError(`"${option}" could not be loaded: ${(err as Error).message}`);
  }
  return root;
}

/** Every service of `root`, by full name without the leading dot (`shop.v1.Inventory`). */
export function servicesOf(root: Protobuf.Root): Map<string, Protobuf.Service> {
  const found = new Map<string, Protobuf.Service>();
  const walk = (namespace: Protobuf.NamespaceBase) => {
    for (const nested of namespace.nestedArray) {
      if (nested instanceof protobuf.Service) found.set(nested.fullName.slice(1), nested);
      else if (nested instanceof protobuf.Namespace) walk(nested);
    }
  };
  walk(root);
  return found;
}
