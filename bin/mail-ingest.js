#!/usr/bin/env node
// Runs the compiled CLI in dist/ (`npm run build`; `npm ci` and installs build it via `prepare`).
// In a git checkout, MAIL_INGEST_FROM_SOURCE=1 runs the TypeScript sources through tsx instead, so
// a source change is picked up without a build; the tests run the CLI that way.

// The fs store fsyncs every object; more libuv threads let concurrent fsyncs share journal
// commits instead of queueing four at a time. It must be set before the thread pool first runs,
// hence before any import that could do I/O.
process.env.UV_THREADPOOL_SIZE ??= "16";

const { existsSync } = await import("node:fs");
// One bundled module graph (scripts/build.mjs): loads faster than the tsc output in dist/lambdas/.
const compiled = new URL("../dist/cli/main.js", import.meta.url);
let main;
if (process.env.MAIL_INGEST_FROM_SOURCE !== "1" && existsSync(compiled)) {
  ({ main } = await import(compiled.href));
} else {
  const source = new URL("../lambdas/cli/main.ts", import.meta.url);
  let register;
  try {
    ({ register } = await import("tsx/esm/api"));
  } catch {
    register = undefined;
  }
  if (!register || !existsSync(source)) {
    process.stderr.write(
      'mail-ingest: dist/ is not built and the TypeScript sources cannot run here (tsx missing); run "npm run build"\n',
    );
    process.exit(2);
  }
  if (process.env.MAIL_INGEST_FROM_SOURCE !== "1") {
    process.stderr.write(
      'mail-ingest: dist/ is not built; running the TypeScript sources through tsx (slow start). Run "npm run build".\n',
    );
  }
  register();
  ({ main } = await import(source.href));
}
process.exitCode = await main(process.argv.slice(2));
