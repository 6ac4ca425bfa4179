/**
 * Where a handler's Lambda code comes from.
 *
 * - **Installed package** (this module runs as `dist/infra/handler-code.js`): the handler was
 *   bundled when the package was built, into `dist/lambda/<name>/index.mjs`. The construct ships
 *   that directory as the asset, so a consumer's synth needs no esbuild, no Docker and no lockfile
 *   of ours, and deploys exactly the bundle the package was tested with.
 * - **This repository** (this module runs as `infra/handler-code.ts`): esbuild bundles
 *   `lambdas/handlers/<name>.ts` at synth time, so `cdk synth` picks up source changes at once.
 *
 * Both packages carry the mailbox `config.json` beside `index.mjs` (see `MailIngestion`).
 */
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Code } from "aws-cdk-lib/aws-lambda";
import { type NodejsFunctionProps, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";

export type HandlerName = "dispatcher" | "poller";

/** The code-related props of a `NodejsFunction`: either prebuilt `code` or source `bundling`. */
export type HandlerCode = Pick<
  NodejsFunctionProps,
  "code" | "handler" | "entry" | "projectRoot" | "depsLockFilePath" | "bundling"
>;

/** The bundle's file name; `scripts/build.mjs` writes it, the Lambda handler string names it. */
export const BUNDLE_FILE = "index.mjs";

/** Compiled, this module is `dist/infra/handler-code.js` and the bundles are in `dist/lambda/`. */
const PREBUILT_ROOT = fileURLToPath(new URL("../lambda/", import.meta.url));
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * The code of handler `name`, with `configSource` (a file named `config.json`) beside its bundle.
 * For a prebuilt bundle, the asset directory is staged next to `configSource`: the caller deletes
 * that directory once the function is constructed (CDK copies an asset into the cloud assembly
 * while the function is constructed).
 */
export function handlerCode(name: HandlerName, configSource: string): HandlerCode {
  if (FROM_SOURCE) return sourceBundling(name, configSource);
  return { code: Code.fromAsset(stagePrebuilt(name, configSource)), handler: "index.handler" };
}

/**
 * Copies the prebuilt bundle, its source map and the config into one directory. The asset hash is
 * that directory's content, so it changes exactly when the bundle or the config changes.
 */
export function stagePrebuilt(
  name: HandlerName,
  configSource: string,
  prebuiltRoot = PREBUILT_ROOT,
): string {
  const from = path.join(prebuiltRoot, name);
  const bundle = path.join(from, BUNDLE_FILE);
  if (!existsSync(bundle)) {
    throw new Error(
      `mail-ingest: the prebuilt ${name} handler is missing (${bundle}); the package was built without its Lambda bundles. Reinstall it, or run "npm run build" in a git checkout.`,
    );
  }
  const to = path.join(path.dirname(configSource), `${name}-code`);
  mkdirSync(to, { recursive: true });
  copyFileSync(bundle, path.join(to, BUNDLE_FILE));
  const map = `${bundle}.map`;
  if (existsSync(map)) copyFileSync(map, path.join(to, `${BUNDLE_FILE}.map`));
  copyFileSync(configSource, path.join(to, path.basename(configSource)));
  return to;
}

/** Single-quotes a word for POSIX sh (the local bundling shell). */
function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** esbuild at synth time, with the same options `scripts/build.mjs` uses for the prebuilt bundles. */
function sourceBundling(name: HandlerName, configSource: string): HandlerCode {
  return {
    entry: path.join(REPO_ROOT, "lambdas", "handlers", `${name}.ts`),
    handler: "handler",
    projectRoot: REPO_ROOT,
    depsLockFilePath: path.join(REPO_ROOT, "package-lock.json"),
    bundling: {
      forceDockerBundling: false,
      format: OutputFormat.ESM,
      minify: true,
      sourceMap: true,
      sourcesContent: false,
      target: "node24",
      mainFields: ["module", "main"],
      // Bundle the SDK too: the artifact then runs exactly the versions the tests ran.
      externalModules: [],
      // CommonJS dependencies (mailparser) call require(); ESM output has none without this.
      banner:
        "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
      // The path travels in the environment, not the command line, so no shell quoting of it is
      // needed. It also enters CDK's asset cache key (functions do not), so two constructs with
      // different configs in one app never share a staged package.
      environment: { MAIL_INGEST_CONFIG_SOURCE: configSource },
      commandHooks: {
        beforeBundling: () => [],
        beforeInstall: () => [],
        afterBundling: (_inputDir, outputDir) => [
          `cp "$MAIL_INGEST_CONFIG_SOURCE" ${shellQuote(path.join(outputDir, path.basename(configSource)))}`,
        ],
      },
    },
  };
}
