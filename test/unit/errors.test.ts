/**
 * One error table: every code has its status, a heading in docs/errors.md, and a GatewayError built from a
 * code alone carries that status; a status that disagrees with the code is a bug caught at once.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ERROR_STATUS, fromBodyParserError, GatewayError } from '../../lib/errors';
import type { GatewayErrorCode } from '../../lib/errors';

const docs = readFileSync(path.join(__dirname, '..', '..', 'docs', 'errors.md'), 'utf8');
const codes = Object.keys(ERROR_STATUS) as GatewayErrorCode[];

describe('the error table', () => {
  it.each(codes)('%s has a heading in docs/errors.md naming its status', (code) => {
    const section = docs.split(`\n## ${code}\n`)[1];
    expect(section).toBeDefined();
    expect(section.split('\n## ')[0]).toContain(`**${ERROR_STATUS[code]}`);
  });

  it('derives the status from the code, and refuses one that disagrees', () => {
    expect(new GatewayError('ERR_UPSTREAM_TIMEOUT').status).toBe(504);
    expect(new GatewayError(429, 'ERR_RATE_LIMITED').status).toBe(429);
    expect(() => new GatewayError(500, 'ERR_RATE_LIMITED')).toThrow(/ERR_RATE_LIMITED is a 429, not a 500/);
  });

  it('maps body-parser rejections to codes of their own status', () => {
    expect(fromBodyParserError({ type: 'entity.too.large', status: 413 })).toMatchObject({ status: 413, code: 'ERR_BODY_TOO_LARGE' });
    expect(fromBodyParserError({ type: 'charset.unsupported', status: 415 })).toMatchObject({ status: 415, code: 'ERR_UNSUPPORTED_MEDIA_TYPE' });
    expect(fromBodyParserError({ type: 'entity.parse.failed', status: 400 })).toMatchObject({ status: 400, code: 'ERR_BAD_REQUEST_BODY' });
    expect(fromBodyParserError({ type: 'something.new', status: 413 })).toMatchObject({ status: 413, code: 'ERR_BODY_TOO_LARGE' });
  });
});
