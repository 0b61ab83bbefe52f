/**
 * frontdoor-gateway/testing: what a test suite needs to check the gateway of an app: real upstreams that
 * record and fail on demand, signed tokens and a JWKS endpoint, API keys, and assertions with readable
 * failures. No test framework needed; works under jest, vitest, node:test and mocha.
 */
export { startUpstream, closedPort } from './lib/testing/upstream';
export type { Upstream, UpstreamHandler, StartUpstreamOptions, ReceivedRequest, FailureMode, FailOptions } from './lib/testing/upstream';
export { signToken, createKeyPair, hmacSecret, randomKid, nowSeconds } from './lib/testing/tokens';
export type { SignTokenOptions, KeyPair, SigningAlgorithm, AsymmetricAlgorithm } from './lib/testing/tokens';
export { startJwks, JWKS_PATH } from './lib/testing/jwks';
export type { Jwks, StartJwksOptions, RotateOptions } from './lib/testing/jwks';
export { apiKey, apiKeyDigest } from './lib/testing/api-key';
export type { TestApiKeyOptions } from './lib/testing/api-key';
export { closeAll } from './lib/testing/registry';
export { isProblem, expectForwarded, expectNotForwarded, FrontdoorAssertionError } from './lib/testing/assert';
export type { ResponseLike, ProblemExpectation, ProblemBody, ForwardedExpectation, RecordingUpstream } from './lib/testing/assert';
