/**
 * The example suite of docs/testing.md (examples/testing/shop.test.js) passes, run the way a user runs
 * theirs: its own jest config, plain JavaScript, the kit required as `frontdoor-gateway/testing` (resolved
 * through the package's exports to the built dist: `npm test` builds it first). Each topic the docs walk
 * through has its test, so neither can quietly lose one.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '..', '..');

interface JestReport {
  success: boolean;
  numPassedTests: number;
  numFailedTests: number;
  testResults: Array<{ message: string; assertionResults: Array<{ title: string; status: string }> }>;
}

describe('examples/testing', () => {
  beforeAll(() => {
    if (!existsSync(path.join(repo, 'dist', 'testing.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does) before this suite.');
  });

  it('passes: routing to two instances, 401, 403, the body as sent, a rate limit reached, 502 with the request id and fail-over', async () => {
    const jest = path.join(repo, 'node_modules', 'jest', 'bin', 'jest.js');
    const config = path.join(repo, 'examples', 'testing', 'jest.config.js');
    let stdout: string;
    try {
      ({ stdout } = await run(process.execPath, [jest, '--config', config, '--json', '--ci'], { cwd: repo, timeout: 50_000, maxBuffer: 16 * 1024 * 1024 }));
    } catch (err) {
      const failed = err as { stdout?: string; stderr?: string };
      throw new Error(`the example suite failed:\n${failed.stderr ?? ''}\n${failed.stdout ?? ''}`);
    }
    const report = JSON.parse(stdout) as JestReport;
    const titles = report.testResults.flatMap((file) => file.assertionResults.filter((test) => test.status === 'passed').map((test) => test.title));
    expect({ success: report.success, failed: report.numFailedTests }).toEqual({ success: true, failed: 0 });
    for (const topic of [/two instances/, /\b401\b/, /\b403\b/, /byte for byte/, /\b429\b/, /502 with the request id.*fails over/]) {
      expect({ topic: String(topic), passed: titles.some((title) => topic.test(title)) }).toEqual({ topic: String(topic), passed: true });
    }
  }, 60_000);
});
