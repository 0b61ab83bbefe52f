// Writes the ES module entries, dist/index.mjs and dist/testing.mjs: each re-exports its CommonJS build, so
// `import` and `require` share one instance of every module (no dual-package hazard: one upstream pool, one
// registry; the testing kit's closeAll() sees the servers started through either).
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');

for (const entry of ['index', 'testing']) {
  const cjs = require(path.join(dist, `${entry}.js`));
  const names = Object.keys(cjs).filter((name) => name !== '__esModule' && name !== 'default');
  const lines = [
    `import cjs from './${entry}.js';`,
    ...names.map((name) => `export const ${name} = cjs.${name};`),
    'export default cjs;',
    '',
  ];
  fs.writeFileSync(path.join(dist, `${entry}.mjs`), lines.join('\n'));
}
