// Writes dist/index.mjs: an ES module entry that re-exports the CommonJS build, so `import` and
// `require` share one instance of every module (no dual-package hazard: one upstream pool, one registry).
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const cjs = require(path.join(dist, 'index.js'));
const names = Object.keys(cjs).filter((name) => name !== '__esModule' && name !== 'default');
const lines = [
  "import cjs from './index.js';",
  ...names.map((name) => `export const ${name} = cjs.${name};`),
  'export default cjs;',
  '',
];
fs.writeFileSync(path.join(dist, 'index.mjs'), lines.join('\n'));
