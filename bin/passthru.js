#!/usr/bin/env node
// Entry point: runs the compiled JavaScript in dist/ (built by `npm ci` / `npm install` through
// the `prepare` script, or by `npm run build`). No TypeScript loader at run time.
// A closed pipe (`passthru list ... | head`) ends the output quietly, as for any Unix tool.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
let mod;
try {
  mod = await import('../dist/cli/main.js');
} catch (e) {
  if (e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/cli/main.js')) {
    process.stderr.write('passthru: the compiled CLI (dist/) is missing: run `npm ci` or `npm run build` in the passthru checkout\n');
    process.exit(1);
  }
  throw e;
}
process.exitCode = await mod.main(process.argv.slice(2));
