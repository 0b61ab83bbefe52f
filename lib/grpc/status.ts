/**
 * gRPC status codes → the gateway's errors, with the HTTP statuses grpc-gateway gives them
 * (runtime.HTTPStatusFromCode), and which of them count against a target's passive health.
 */
import { GatewayError } from '../errors';
import type { GatewayErrorCode } from '../errors';

/** gRPC status codes by number (google.rpc.Code). */
export const GRPC_STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

const CODES: Record<number, GatewayErrorCode> = {
  1: 'ERR_GRPC_CANCELLED', // 499
  2: 'ERR_GRPC_INTERNAL', // UNKNOWN → 500
  3: 'ERR_GRPC_INVALID_ARGUMENT', // 400
  4: 'ERR_UPSTREAM_TIMEOUT', // DEADLINE_EXCEEDED → 504
  5: 'ERR_GRPC_NOT_FOUND', // 404
  6: 'ERR_GRPC_CONFLICT', // ALREADY_EXISTS → 409
  7: 'ERR_GRPC_PERMISSION_DENIED', // 403
  8: 'ERR_GRPC_RESOURCE_EXHAUSTED', // 429
  9: 'ERR_GRPC_INVALID_ARGUMENT', // FAILED_PRECONDITION → 400
  10: 'ERR_GRPC_CONFLICT', // ABORTED → 409
  11: 'ERR_GRPC_INVALID_ARGUMENT', // OUT_OF_RANGE → 400
  12: 'ERR_GRPC_UNIMPLEMENTED', // 501
  13: 'ERR_GRPC_INTERNAL', // 500
  14: 'ERR_GRPC_UNAVAILABLE', // 503
  15: 'ERR_GRPC_INTERNAL', // DATA_LOSS → 500
  16: 'ERR_GRPC_UNAUTHENTICATED', // 401
};

/** Statuses that say the target is unwell (unreachable, timing out, failing inside), as a 5xx or a refused connection would. */
const UNHEALTHY = new Set([2, 4, 13, 14, 15]);

/** A non-OK status of a call, as grpc-js reports it. */
export interface CallStatus {
  code: number;
  details: string;
}

/** The status name, e.g. `NOT_FOUND` (`CODE_42` for one outside the table). */
export function statusName(code: number): string {
  return GRPC_STATUS_NAMES[code] ?? `CODE_${code}`;
}

/** True when the status counts as a failure of the target (passive health). */
export function isTargetFailure(code: number): boolean {
  return UNHEALTHY.has(code);
}

/**
 * The client's problem for a status: the gateway code of its HTTP status, the service's status message as the
 * detail, `grpcStatus` and `grpcCode` members, and `grpcDetails` (the google.rpc.Status details as JSON) when given.
 */
export function statusError(status: CallStatus, details?: unknown[]): GatewayError {
  const code = CODES[status.code] ?? 'ERR_GRPC_INTERNAL';
  const extensions: Record<string, unknown> = { grpcStatus: statusName(status.code), grpcCode: status.code };
  if (details && details.length > 0) extensions.grpcDetails = details;
  return new GatewayError(code, { detail: status.details || `The service answered ${statusName(status.code)}.`, extensions });
}
