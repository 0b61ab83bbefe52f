/**
 * The one error type of the gateway. Every failure the gateway produces — a bad path, an upstream that
 * refused, a timeout — is a GatewayError; `lib/problem.ts` renders it as RFC 9457 problem+json.
 */

/** Stable error codes; each has a heading in docs/errors.md. */
export type GatewayErrorCode =
  | 'ERR_BAD_PATH'
  | 'ERR_BAD_REQUEST_BODY'
  | 'ERR_BODY_TOO_LARGE'
  | 'ERR_BAD_HEADER_VALUE'
  | 'ERR_UNSUPPORTED_MEDIA_TYPE'
  | 'ERR_BODY_NOT_FORWARDABLE'
  | 'ERR_UPSTREAM_UNAVAILABLE'
  | 'ERR_UPSTREAM_CONNECT_TIMEOUT'
  | 'ERR_UPSTREAM_TIMEOUT'
  | 'ERR_UPSTREAM_RESET'
  | 'ERR_NO_HEALTHY_UPSTREAM'
  | 'ERR_AUTH_MISSING'
  | 'ERR_AUTH_TOKEN_EXPIRED'
  | 'ERR_AUTH_TOKEN_INVALID'
  | 'ERR_AUTH_KEY_INVALID'
  | 'ERR_AUTH_CERT_INVALID'
  | 'ERR_AUTH_UNAVAILABLE'
  | 'ERR_FORBIDDEN_SCOPE'
  | 'ERR_FORBIDDEN'
  | 'ERR_IP_DENIED'
  | 'ERR_RATE_LIMITED'
  | 'ERR_RATE_LIMIT_UNAVAILABLE'
  | 'ERR_UPSTREAM_BAD_RESPONSE'
  | 'ERR_UPSTREAM_FAULT'
  | 'ERR_TRANSFORM_FAILED'
  | 'ERR_AGGREGATE_CALL_FAILED'
  | 'ERR_AGGREGATE_TIMEOUT'
  | 'ERR_GRPC_INVALID_ARGUMENT'
  | 'ERR_GRPC_UNAUTHENTICATED'
  | 'ERR_GRPC_PERMISSION_DENIED'
  | 'ERR_GRPC_NOT_FOUND'
  | 'ERR_GRPC_NO_METHOD'
  | 'ERR_GRPC_CONFLICT'
  | 'ERR_GRPC_RESOURCE_EXHAUSTED'
  | 'ERR_GRPC_CANCELLED'
  | 'ERR_GRPC_INTERNAL'
  | 'ERR_GRPC_UNIMPLEMENTED'
  | 'ERR_GRPC_UNAVAILABLE'
  | 'ERR_OVERLOADED'
  | 'ERR_NO_ROUTE'
  | 'ERR_INTERNAL';

/** Human titles per code (the problem+json `title`: the same for every occurrence of a code). */
export const ERROR_TITLES: Record<GatewayErrorCode, string> = {
  ERR_BAD_PATH: 'Bad request path',
  ERR_BAD_REQUEST_BODY: 'Malformed request body',
  ERR_BODY_TOO_LARGE: 'Request body too large',
  ERR_BAD_HEADER_VALUE: 'Header value not allowed',
  ERR_UNSUPPORTED_MEDIA_TYPE: 'Unsupported request body encoding',
  ERR_BODY_NOT_FORWARDABLE: 'Request body cannot be forwarded',
  ERR_UPSTREAM_UNAVAILABLE: 'Upstream unavailable',
  ERR_UPSTREAM_CONNECT_TIMEOUT: 'Upstream connect timeout',
  ERR_UPSTREAM_TIMEOUT: 'Upstream timeout',
  ERR_UPSTREAM_RESET: 'Upstream connection reset',
  ERR_NO_HEALTHY_UPSTREAM: 'No healthy upstream',
  ERR_AUTH_MISSING: 'Authentication required',
  ERR_AUTH_TOKEN_EXPIRED: 'Token expired',
  ERR_AUTH_TOKEN_INVALID: 'Invalid token',
  ERR_AUTH_KEY_INVALID: 'Invalid API key',
  ERR_AUTH_CERT_INVALID: 'Client certificate not accepted',
  ERR_AUTH_UNAVAILABLE: 'Authentication unavailable',
  ERR_FORBIDDEN_SCOPE: 'Insufficient scope',
  ERR_FORBIDDEN: 'Forbidden',
  ERR_IP_DENIED: 'Address not allowed',
  ERR_RATE_LIMITED: 'Too many requests',
  ERR_RATE_LIMIT_UNAVAILABLE: 'Rate limiting unavailable',
  ERR_UPSTREAM_BAD_RESPONSE: 'Malformed upstream response',
  ERR_UPSTREAM_FAULT: 'Upstream reported a fault',
  ERR_TRANSFORM_FAILED: 'Response transformation failed',
  ERR_AGGREGATE_CALL_FAILED: 'Aggregated call failed',
  ERR_AGGREGATE_TIMEOUT: 'Aggregated call timed out',
  ERR_GRPC_INVALID_ARGUMENT: 'Invalid argument',
  ERR_GRPC_UNAUTHENTICATED: 'Not authenticated by the service',
  ERR_GRPC_PERMISSION_DENIED: 'Permission denied by the service',
  ERR_GRPC_NOT_FOUND: 'Not found',
  ERR_GRPC_NO_METHOD: 'No method for this request',
  ERR_GRPC_CONFLICT: 'Conflict',
  ERR_GRPC_RESOURCE_EXHAUSTED: 'Resource exhausted',
  ERR_GRPC_CANCELLED: 'Call cancelled',
  ERR_GRPC_INTERNAL: 'Service error',
  ERR_GRPC_UNIMPLEMENTED: 'Method not implemented',
  ERR_GRPC_UNAVAILABLE: 'Service unavailable',
  ERR_OVERLOADED: 'Gateway overloaded',
  ERR_NO_ROUTE: 'No route',
  ERR_INTERNAL: 'Internal gateway error',
};

/** The HTTP status of each code: a code means one status, everywhere. */
export const ERROR_STATUS: Record<GatewayErrorCode, number> = {
  ERR_BAD_PATH: 400,
  ERR_BAD_REQUEST_BODY: 400,
  ERR_BODY_TOO_LARGE: 413,
  ERR_BAD_HEADER_VALUE: 400,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_BODY_NOT_FORWARDABLE: 500,
  ERR_UPSTREAM_UNAVAILABLE: 502,
  ERR_UPSTREAM_CONNECT_TIMEOUT: 504,
  ERR_UPSTREAM_TIMEOUT: 504,
  ERR_UPSTREAM_RESET: 502,
  ERR_NO_HEALTHY_UPSTREAM: 503,
  ERR_AUTH_MISSING: 401,
  ERR_AUTH_TOKEN_EXPIRED: 401,
  ERR_AUTH_TOKEN_INVALID: 401,
  ERR_AUTH_KEY_INVALID: 401,
  ERR_AUTH_CERT_INVALID: 401,
  ERR_AUTH_UNAVAILABLE: 503,
  ERR_FORBIDDEN_SCOPE: 403,
  ERR_FORBIDDEN: 403,
  ERR_IP_DENIED: 403,
  ERR_RATE_LIMITED: 429,
  ERR_RATE_LIMIT_UNAVAILABLE: 503,
  ERR_UPSTREAM_BAD_RESPONSE: 502,
  ERR_UPSTREAM_FAULT: 502,
  ERR_TRANSFORM_FAILED: 502,
  ERR_AGGREGATE_CALL_FAILED: 502,
  ERR_AGGREGATE_TIMEOUT: 504,
  ERR_GRPC_INVALID_ARGUMENT: 400,
  ERR_GRPC_UNAUTHENTICATED: 401,
  ERR_GRPC_PERMISSION_DENIED: 403,
  ERR_GRPC_NOT_FOUND: 404,
  ERR_GRPC_NO_METHOD: 404,
  ERR_GRPC_CONFLICT: 409,
  ERR_GRPC_RESOURCE_EXHAUSTED: 429,
  ERR_GRPC_CANCELLED: 499,
  ERR_GRPC_INTERNAL: 500,
  ERR_GRPC_UNIMPLEMENTED: 501,
  ERR_GRPC_UNAVAILABLE: 503,
  ERR_OVERLOADED: 503,
  ERR_NO_ROUTE: 404,
  ERR_INTERNAL: 500,
};

export interface GatewayErrorOptions {
  /** Shown to the client: say what went wrong, never secrets, stack traces or internal hostnames. */
  detail?: string;
  /** The underlying error, kept for logs; never sent to the client. */
  cause?: unknown;
  /** Extra response headers, e.g. `Retry-After` or `WWW-Authenticate`. */
  headers?: Record<string, string>;
  /**
   * Extension members of the problem document (RFC 9457 §3.2), e.g. `{ faultcode, faultstring }` or `{ call }`.
   * They never replace the standard members (type, title, status, detail, instance, code, requestId).
   */
  extensions?: Record<string, unknown>;
  /** Log the cause for the operator (always done for a 500): a failure the client cannot fix, e.g. a throwing transform. */
  logCause?: boolean;
}

export class GatewayError extends Error {
  readonly status: number;
  readonly code: GatewayErrorCode;
  readonly detail: string | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly extensions: Record<string, unknown> | undefined;
  readonly logCause: boolean;

  /** `new GatewayError('ERR_UPSTREAM_TIMEOUT', { detail })`: the status follows from the code (ERROR_STATUS). */
  constructor(code: GatewayErrorCode, options?: GatewayErrorOptions);
  /** @deprecated The status follows from the code: pass the code alone. A status that disagrees with it is a TypeError. */
  constructor(status: number, code: GatewayErrorCode, options?: GatewayErrorOptions);
  constructor(first: number | GatewayErrorCode, second?: GatewayErrorCode | GatewayErrorOptions, third?: GatewayErrorOptions) {
    const code = (typeof first === 'number' ? second : first) as GatewayErrorCode;
    const options = (typeof first === 'number' ? third : (second as GatewayErrorOptions | undefined)) ?? {};
    super(options.detail ?? ERROR_TITLES[code], options.cause === undefined ? undefined : { cause: options.cause });
    const status = ERROR_STATUS[code];
    if (status === undefined) throw new TypeError(`Unknown GatewayError code ${JSON.stringify(code)}.`);
    if (typeof first === 'number' && first !== status) throw new TypeError(`${code} is a ${status}, not a ${first}.`);
    this.name = 'GatewayError';
    this.status = status;
    this.code = code;
    this.detail = options.detail;
    this.headers = options.headers;
    this.extensions = options.extensions;
    this.logCause = options.logCause === true || status === 500;
  }
}

/** One mistake in options: where it is, and what is wrong with it. */
export interface ConfigIssue {
  /** The option path, e.g. `routes[2].upstream.targets[0]` ('' when the options as a whole are wrong). */
  path: string;
  /** What is wrong and, where it helps, the fix. */
  message: string;
  /** The config file the option is in, and the line and column (1-based) of its value, for options read from a file. */
  file?: string;
  line?: number;
  column?: number;
}

/** Thrown at construction time for unusable options; the message names the option and the fix. */
export class ConfigError extends TypeError {
  readonly code = 'ERR_CONFIG';
  /** Every mistake found, each with its option path (`routes[2].upstream.targets[0]`); one when only one was checked. */
  readonly issues: readonly ConfigIssue[];
  constructor(message: string, issues?: readonly ConfigIssue[]) {
    super(`frontdoor: ${message}`);
    this.name = 'ConfigError';
    this.issues = issues ?? [{ path: /"([^"]+)"/.exec(message)?.[1] ?? '', message }];
  }
}

/** Collects the ConfigErrors of several constructions, to report them all at once. */
export class ConfigIssues {
  private readonly found: ConfigIssue[] = [];

  /** Runs `build`; a ConfigError it throws is kept (and undefined returned), any other error is thrown. */
  collect<T>(build: () => T): T | undefined {
    try {
      return build();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.found.push(...err.issues);
      return undefined;
    }
  }

  /** Throws one ConfigError with every issue collected, when there is any. */
  throwIfAny(): void {
    if (this.found.length === 0) return;
    if (this.found.length === 1) throw new ConfigError(this.found[0].message.replace(/^frontdoor: /, ''), this.found);
    throw new ConfigError(`${this.found.length} mistakes in the options:\n${this.found.map((issue) => `- ${issue.message.replace(/^frontdoor: /, '')}`).join('\n')}`, this.found);
  }
}

/**
 * Errors raised by body parsers mounted before the gateway (express.json(), urlencoded()) carry a
 * `type` and a 4xx `status`; turn them into a GatewayError so the client gets problem+json.
 */
export function fromBodyParserError(err: unknown): GatewayError | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const { type, status } = err as { type?: unknown; status?: unknown };
  if (typeof type !== 'string' || typeof status !== 'number' || status < 400 || status > 499) return undefined;
  const details: Record<string, [GatewayErrorCode, string]> = {
    'entity.parse.failed': ['ERR_BAD_REQUEST_BODY', 'The request body could not be parsed.'],
    'entity.too.large': ['ERR_BODY_TOO_LARGE', 'The request body is too large.'],
    'encoding.unsupported': ['ERR_UNSUPPORTED_MEDIA_TYPE', 'The request body encoding is not supported.'],
    'charset.unsupported': ['ERR_UNSUPPORTED_MEDIA_TYPE', 'The request body charset is not supported.'],
    'request.size.invalid': ['ERR_BAD_REQUEST_BODY', 'The request body length does not match Content-Length.'],
    'request.aborted': ['ERR_BAD_REQUEST_BODY', 'The request body was not received completely.'],
  };
  const known = details[type];
  if (known) return new GatewayError(known[0], { detail: known[1], cause: err });
  const code = status === 413 ? 'ERR_BODY_TOO_LARGE' : status === 415 ? 'ERR_UNSUPPORTED_MEDIA_TYPE' : 'ERR_BAD_REQUEST_BODY';
  return new GatewayError(code, { detail: 'The request body was rejected.', cause: err });
}
