#!/usr/bin/env node
/**
 * The after-bundling step of the construct's synth-time esbuild bundling (`infra/handler-code.ts`),
 * run as `node scripts/lambda-after-bundling.mjs INPUT_DIR OUTPUT_DIR` so it behaves the same on
 * Linux, macOS, Windows and inside CDK's Docker bundling image (no shell tools, no host paths):
 *
 * 1. copies the mailbox config, `MAIL_INGEST_CONFIG_SOURCE` (a path relative to INPUT_DIR, the
 *    project root), into the code package as `config.json`;
 * 2. rewrites the source map's `sources` relative to the project root. esbuild writes them
 *    relative to the bundle, which CDK puts under the cloud assembly directory, so without this
 *    the asset hash (a hash of the package's content) changed with the `--output` directory and
 *    a pipeline synthesizing elsewhere redeployed unchanged code.
 *
 * Plain JavaScript, like `build.mjs`, so it runs with nothing but Node.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The file name `handler-code.ts` and the handlers expect beside `index.mjs`. */
const CONFIG_FILE = "config.json";
const MAP_FILE = "index.mjs.map";

/** A source that is a URL (some dependencies' own maps point at their repository), not a path. */
const URL_SOURCE = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * `sources` of a source map written in `outputDir`, made relative to `projectRoot` with `/`
 * separators: the same text wherever `outputDir` is. URLs are kept as they are.
 */
export function projectRelativeSources(sources, projectRoot, outputDir) {
  return sources.map((source) =>
    URL_SOURCE.test(source)
      ? source
      : path.relative(projectRoot, path.resolve(outputDir, source)).split(path.sep).join("/"),
  );
}

export function afterBundling(inputDir, outputDir, configSource) {
  if (!configSource) throw new Error("MAIL_INGEST_CONFIG_SOURCE is not set");
  copyFileSync(path.resolve(inputDir, configSource), path.join(outputDir, CONFIG_FILE));
  const mapFile = path.join(outputDir, MAP_FILE);
  if (!existsSync(mapFile)) return;
  const map = JSON.parse(readFileSync(mapFile, "utf8"));
  map.sources = projectRelativeSources(map.sources, inputDir, outputDir);
  writeFileSync(mapFile, JSON.stringify(map));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [inputDir, outputDir] = process.argv.slice(2);
  if (!inputDir || !outputDir) {
    console.error("usage: node scripts/lambda-after-bundling.mjs INPUT_DIR OUTPUT_DIR");
    process.exit(2);
  }
  afterBundling(inputDir, outputDir, process.env.MAIL_INGEST_CONFIG_SOURCE);
}
