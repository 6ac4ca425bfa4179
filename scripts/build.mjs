#!/usr/bin/env node
/**
 * `npm run build` (also `prepare`, so `npm ci`, git installs and `npm pack` run it):
 *
 * 1. `tsc -p tsconfig.build.json`: `lambdas/` and `infra/` to `dist/` as JavaScript, `.d.ts` and
 *    source maps. The sources import `./x.ts`; `rewriteRelativeImportExtensions` emits `./x.js`.
 * 2. esbuild: each Lambda handler into one file, `dist/lambda/<name>/index.mjs`, that the
 *    `MailIngestion` construct ships as the function's code when it runs from the installed
 *    package. The SDK and every other dependency are inside the bundle, so the deployed code runs
 *    exactly the versions this package was tested with.
 * 3. esbuild: the CLI (`bin/mail-ingest.js` runs it) into `dist/cli/`, see cliBuildOptions, with
 *    mailparser and imapflow vendored beside it and V8's code cache for each
 *    (mailparserBuildOptions, imapflowBuildOptions).
 *
 * Plain JavaScript so it needs nothing but the dev dependencies to run.
 */
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = `${ROOT}dist`;
const require = createRequire(import.meta.url);

/** Stands in for linkify-it in mailparser: builds it on first use, not at load (see the file). */
const LAZY_LINKIFY = `${ROOT}scripts/vendor/lazy-linkify-it.cjs`;

/** esbuild plugin: mailparser's `require("linkify-it")` bundles {@link LAZY_LINKIFY} instead. */
export const lazyLinkifyPlugin = {
  name: "lazy-linkify-it",
  setup(build) {
    build.onResolve({ filter: /^linkify-it$/ }, (args) =>
      /[\\/]node_modules[\\/]mailparser[\\/]/.test(args.importer)
        ? { path: LAZY_LINKIFY }
        : undefined,
    );
  },
};

/** The handlers the construct deploys, by name: `lambdas/handlers/<name>.ts`. */
export const HANDLERS = ["dispatcher", "poller"];

/**
 * The Lambda bundle options. ESM, with a `require` for the CommonJS dependencies (mailparser). The
 * construct deploys on nodejs24.x; a node22 target keeps the bundle runnable on nodejs22.x too.
 */
export function handlerBuildOptions(name) {
  return {
    entryPoints: [`${ROOT}lambdas/handlers/${name}.ts`],
    outfile: `${DIST}/lambda/${name}/index.mjs`,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    mainFields: ["module", "main"],
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    banner: {
      js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
    },
    plugins: [lazyLinkifyPlugin],
    logLevel: "warning",
  };
}

/**
 * The CLI as a handful of ES modules in `dist/cli/`: `main.js` plus one chunk per lazily imported
 * command and adapter (esbuild splits at each `import()`), dependencies left in node_modules.
 * Node resolves, reads and links each module of a graph separately; the ~100 files tsc emits cost
 * a poll ~50–90 ms of CPU before it connects (issue 14). Not minified, so stack traces stay
 * readable.
 */
export function cliBuildOptions() {
  return {
    entryPoints: [`${ROOT}lambdas/cli/main.ts`],
    outdir: `${DIST}/cli`,
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    sourcemap: true,
    sourcesContent: false,
    logLevel: "warning",
  };
}

/**
 * A dependency vendored as one CommonJS file, `dist/cli/<file>`, next to the CLI's chunks, where
 * its loader looks first (lambdas/util/vendored.ts runs it); a script in scripts/ then makes its
 * code cache. `contents` is the bundle's entry.
 */
function vendoredBuildOptions(contents, file) {
  return {
    stdin: { contents, resolveDir: ROOT, loader: "js" },
    outfile: `${DIST}/cli/${file}`,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    // For the bench's CPU profiles (bench/profile.ts maps frames back to node_modules files).
    sourcemap: "external",
    sourcesContent: false,
    logLevel: "warning",
  };
}

/**
 * mailparser and its dependency tree (lambdas/mime/mailparser-loader.ts; its code cache:
 * scripts/mailparser-cache.mjs). Like the Lambda bundles, the CLI then parses with the mailparser
 * this package was built and tested with.
 */
export function mailparserBuildOptions() {
  return {
    ...vendoredBuildOptions('module.exports = require("mailparser");', "mailparser.cjs"),
    plugins: [lazyLinkifyPlugin],
  };
}

/**
 * imapflow and its dependency tree (lambdas/adapters/imapflow-loader.ts; its code cache:
 * scripts/imapflow-cache.mjs), bundled from imapflow's ES module build, the one the tests run
 * through `import`.
 */
export function imapflowBuildOptions() {
  return vendoredBuildOptions('export * from "imapflow";', "imapflow.cjs");
}

async function main() {
  rmSync(DIST, { recursive: true, force: true });
  const tsc = spawnSync(
    process.execPath,
    [require.resolve("typescript/bin/tsc"), "-p", `${ROOT}tsconfig.build.json`],
    { stdio: "inherit" },
  );
  if (tsc.status !== 0) {
    process.exitCode = tsc.status ?? 1;
    return;
  }
  const { build } = await import("esbuild");
  await Promise.all([
    ...HANDLERS.map((name) => build(handlerBuildOptions(name))),
    build(cliBuildOptions()),
    build(mailparserBuildOptions()),
    build(imapflowBuildOptions()),
  ]);
  // Each in a fresh Node after tsc: V8 accepts a cache only under the flags it was made with.
  for (const [script, bundle] of [
    ["mailparser-cache.mjs", mailparserBuildOptions().outfile],
    ["imapflow-cache.mjs", imapflowBuildOptions().outfile],
  ]) {
    const cache = spawnSync(process.execPath, [`${ROOT}scripts/${script}`, bundle], {
      stdio: "inherit",
    });
    if (cache.status !== 0) process.exitCode = cache.status ?? 1;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
