/**
 * Lambda figures: the bundled poller's size and its cold-start import time. The bundle is built
 * the way a deployment would build it (ESM, node22, minified) into bench/.build/, which is never
 * committed.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { median } from "./stats.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENTRY = `${ROOT}lambdas/handlers/poller.ts`;
const OUT_DIR = `${ROOT}bench/.build`;
const OUT_FILE = `${OUT_DIR}/poller.mjs`;

/** ESM bundles still meet CommonJS dependencies that call require(); this gives them one. */
const REQUIRE_BANNER =
  "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

export interface LambdaFigures {
  readonly bundleBytes: number;
  readonly bundleGzipBytes: number;
  readonly sourcemapBytes: number;
  /** Median wall time of `await import(bundle)` in a fresh node process, ms. */
  readonly coldImportMs: number;
  readonly coldImportSamplesMs: readonly number[];
}

export type LambdaOutcome =
  | { readonly ok: true; readonly figures: LambdaFigures }
  | { readonly ok: false; readonly reason: string };

function importOnce(): Promise<number> {
  const script =
    "const t = performance.now(); await import(process.argv[1]); console.log(performance.now() - t);";
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, OUT_FILE], {
      cwd: OUT_DIR,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.once("error", reject);
    child.once("close", (code) => {
      const ms = Number(out.trim().split("\n").at(-1));
      if (code === 0 && Number.isFinite(ms)) resolve(ms);
      else reject(new Error(`importing the bundle failed (${code}): ${err.slice(0, 400)}`));
    });
  });
}

export async function lambdaFigures(samples: number): Promise<LambdaOutcome> {
  if (!existsSync(ENTRY)) {
    return { ok: false, reason: "lambdas/handlers/poller.ts does not exist yet" };
  }
  const esbuild = await import("esbuild");
  await mkdir(OUT_DIR, { recursive: true });
  try {
    await esbuild.build({
      entryPoints: [ENTRY],
      outfile: OUT_FILE,
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node22",
      minify: true,
      sourcemap: true,
      banner: { js: REQUIRE_BANNER },
      logLevel: "silent",
    });
  } catch (err) {
    return { ok: false, reason: `esbuild failed: ${(err as Error).message.split("\n")[0]}` };
  }
  const code = await readFile(OUT_FILE);
  const map = await stat(`${OUT_FILE}.map`);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    try {
      times.push(await importOnce());
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  }
  return {
    ok: true,
    figures: {
      bundleBytes: code.byteLength,
      bundleGzipBytes: gzipSync(code, { level: 9 }).byteLength,
      sourcemapBytes: map.size,
      coldImportMs: median(times),
      coldImportSamplesMs: times,
    },
  };
}
