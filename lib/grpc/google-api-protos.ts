/**
 * The google/api protos that `google.api.http` annotations import (and google/rpc/status.proto, the form of a
 * service's error details), shipped as text so users need not vendor
 * googleapis: written once to a directory under the OS temp dir (named by their hash, so every process shares one
 * copy), which the proto loader gets as an include dir. They carry only what the bridge needs (HttpRule, the
 * MethodOptions extension, Status), with the field numbers of googleapis.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const HTTP_PROTO = `syntax = "proto3";
package google.api;
option go_package = "google.golang.org/genproto/googleapis/api/annotations;annotations";
option java_package = "com.google.api";

message Http {
  repeated HttpRule rules = 1;
  bool fully_decode_reserved_expansion = 2;
}

message HttpRule {
  string selector = 1;
  oneof pattern {
    string get = 2;
    string put = 3;
    string post = 4;
    string delete = 5;
    string patch = 6;
    CustomHttpPattern custom = 8;
  }
  string body = 7;
  string response_body = 12;
  repeated HttpRule additional_bindings = 11;
}

message CustomHttpPattern {
  string kind = 1;
  string path = 2;
}
`;

const ANNOTATIONS_PROTO = `syntax = "proto3";
package google.api;
import "google/api/http.proto";
import "google/protobuf/descriptor.proto";
option go_package = "google.golang.org/genproto/googleapis/api/annotations;annotations";
option java_package = "com.google.api";

extend google.protobuf.MethodOptions {
  HttpRule http = 72295728;
}
`;

// google.rpc.Status: the rich error a service may send in `grpc-status-details-bin`.
const STATUS_PROTO = `syntax = "proto3";
package google.rpc;
import "google/protobuf/any.proto";
option go_package = "google.golang.org/genproto/googleapis/rpc/status;status";

message Status {
  int32 code = 1;
  string message = 2;
  repeated google.protobuf.Any details = 3;
}
`;

/** The protos by their import path. */
export const GOOGLE_API_PROTOS: Readonly<Record<string, string>> = {
  'google/api/http.proto': HTTP_PROTO,
  'google/api/annotations.proto': ANNOTATIONS_PROTO,
  'google/rpc/status.proto': STATUS_PROTO,
};

let includeDir: string | undefined;

/** The include dir holding `google/api/*.proto`, written on first use. */
export function googleApiIncludeDir(): string {
  if (includeDir) return includeDir;
  const hash = createHash('sha256').update(JSON.stringify(GOOGLE_API_PROTOS)).digest('hex').slice(0, 16);
  const dir = path.join(tmpdir(), `frontdoor-google-api-${hash}`);
  for (const [file, text] of Object.entries(GOOGLE_API_PROTOS)) {
    const target = path.join(dir, file);
    if (existsSync(target)) continue;
    mkdirSync(path.dirname(target), { recursive: true });
    // Written aside and renamed: a process loading at the same moment never reads half a file.
    const partial = `${target}.${process.pid}.tmp`;
    writeFileSync(partial, text);
    renameSync(partial, target);
  }
  includeDir = dir;
  return dir;
}
