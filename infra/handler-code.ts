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
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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

/** A config file written for the duration of the functions' construction. */
export interface StagedConfig {
  readonly path: string;
  /** Removes the file and its directory (and any prebuilt code staged beside it). */
  remove(): void;
}

/**
 * Writes `json` as `fileName` into a fresh directory. From source, the directory is under the
 * project root (`.tmp/`, git-ignored), so the bundling hook reaches it by a project-relative
 * path, also inside CDK's Docker bundling image where host temp paths do not exist.
 */
export function stageConfig(fileName: string, json: string): StagedConfig {
  let root = tmpdir();
  if (FROM_SOURCE) {
    root = path.join(REPO_ROOT, ".tmp");
    mkdirSync(root, { recursive: true });
  }
  const dir = mkdtempSync(path.join(root, "mail-ingest-config-"));
  const file = path.join(dir, fileName);
  writeFileSync(file, json);
  return { path: file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

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
      // Relative to the project root, so it names the same file on the host and in Docker. It
      // travels in the environment, which enters CDK's asset cache key (functions do not), so
      // two constructs with different configs in one app never share a staged package.
      environment: {
        MAIL_INGEST_CONFIG_SOURCE: path.relative(REPO_ROOT, configSource).split(path.sep).join("/"),
      },
      commandHooks: {
        beforeBundling: () => [],
        beforeInstall: () => [],
        // A Node script, not `cp`: the hook runs under sh, cmd.exe or Docker alike. Double
        // quotes are the quoting both shells share.
        afterBundling: (inputDir, outputDir) => [
          `node "${inputDir}/scripts/lambda-after-bundling.mjs" "${inputDir}" "${outputDir}"`,
        ],
      },
    },
  };
}
