#!/usr/bin/env node
// `npx frontdoor …`: the CLI is lib/cli.ts, compiled to dist/lib/cli.js by `npm run build`.
require('../dist/lib/cli.js')
  .main(process.argv)
  .then(
    (code) => {
      process.exitCode = code;
      // Exit once the output is written even if something the check built still holds the event loop.
      setTimeout(() => process.exit(code), 1000).unref();
    },
    (err) => {
      process.stderr.write(`frontdoor: ${(err && err.stack) || err}\n`);
      process.exitCode = 1;
    },
  );
