/**
 * A real JWKS endpoint for the auth suites: the published kit's (frontdoor-gateway/testing) serve-these-keys
 * server, which counts fetches, rotates keys and fails on demand. startJwks() there adds a signing key.
 */
export { startJwksServer, JWKS_PATH } from '../../lib/testing/jwks';
export type { JwksServer, JwksMode } from '../../lib/testing/jwks';
