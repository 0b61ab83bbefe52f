/**
 * Demo credentials for the shop example: an HMAC secret and HS256 tokens signed with it, using nothing
 * but node:crypto. In a real deployment tokens come from your identity provider and the gateway only
 * verifies them; signing them here just lets the printed curl commands carry working tokens.
 */
'use strict';

const crypto = require('node:crypto');

/**
 * The secret the gateway verifies tokens with: JWT_SECRET when set, otherwise 32 random bytes as hex,
 * new on every start (so tokens printed by an earlier run stop working, which is the point of a secret).
 */
function jwtSecret() {
  return process.env.JWT_SECRET || crypto.randomBytes(32).toString('hex');
}

function base64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/**
 * Signs an HS256 JWT: base64url(header).base64url(payload).base64url(HMAC-SHA256 of the two).
 *
 * @param {string} secret
 * @param {Record<string, unknown>} claims e.g. `{ sub: 'alice', scope: 'orders:write' }`
 * @param {{ expiresInSeconds?: number }} [options] default 1 hour
 */
function signToken(secret, claims, { expiresInSeconds = 3600 } = {}) {
  const iat = Math.floor(Date.now() / 1000);
  const unsigned = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url({ ...claims, iat, exp: iat + expiresInSeconds })}`;
  const signature = crypto.createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

/** alice may create orders; bob has a valid token too, but only to read. */
function demoTokens(secret) {
  return {
    alice: signToken(secret, { sub: 'alice', scope: 'orders:write' }),
    bob: signToken(secret, { sub: 'bob', scope: 'orders:read' }),
  };
}

module.exports = { jwtSecret, signToken, demoTokens };
