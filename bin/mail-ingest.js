#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `npx mail-ingest` works right after `npm ci` with no build step.

// The fs store fsyncs every object; more libuv threads let concurrent fsyncs share journal
// commits instead of queueing four at a time. It must be set before the thread pool first runs,
// hence before any import that could do I/O.
process.env.UV_THREADPOOL_SIZE ??= "16";
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../lambdas/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
