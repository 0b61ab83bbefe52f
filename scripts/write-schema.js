// Writes dist/schema.json: the JSON Schema of a gateway config file, generated from the same zod schemas
// gateway() validates with (middleware/gateway-schema.ts), shipped as `frontdoor-gateway/schema.json` for
// editor completion: `# yaml-language-server: $schema=./node_modules/frontdoor-gateway/dist/schema.json`.
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const { gatewayJsonSchema } = require(path.join(dist, 'middleware', 'gateway-schema.js'));
const schema = { title: 'frontdoor-gateway configuration', ...gatewayJsonSchema() };
fs.writeFileSync(path.join(dist, 'schema.json'), `${JSON.stringify(schema, null, 2)}\n`);
