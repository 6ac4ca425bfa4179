/**
 * Runs a vendored CommonJS bundle (a dependency and its tree in one file, next to the compiled
 * CLI's chunks; scripts/build.mjs makes them) through `vm.Script`, with V8's code cache for it
 * when there is one (`<file>.v8cache`, made at build time). The bundle saves Node resolving,
 * reading and linking each of the dependency's files; the cache saves compiling them. A cache V8
 * rejects (another Node version, a changed bundle) only costs the compile. Issue 14: mailparser's
 * load went from 170–200 ms (`require`) to 80–90 ms, imapflow's from 300–370 ms (`import`) to ~80.
 *
 * ES modules have no code cache API on Node 20, hence CommonJS.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Script } from "node:vm";

/** Appended to a bundle's path: V8's code cache for it (`Script#createCachedData`). */
export const CODE_CACHE_SUFFIX = ".v8cache";

export interface Vendored<T> {
  readonly module: T;
  /** The compiled bundle, from which the build takes the code cache. */
  readonly script: Script;
  /** Whether V8 refused the code cache; undefined when there was none. */
  readonly cacheRejected: boolean | undefined;
}

/**
 * Node's CommonJS wrapper. The build makes the code cache from the same wrapped source, and V8
 * accepts a cache only for the source it was made from.
 */
function wrap(source: string): string {
  return `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
}

/**
 * Runs the bundle at `file` as a CommonJS module, with its code cache when there is one.
 * Undefined when there is no bundle at `file`; throws what the bundle throws.
 */
export function loadVendored<T>(file: string): Vendored<T> | undefined {
  let source: string;
  try {
    source = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(`${file}${CODE_CACHE_SUFFIX}`);
  } catch {
    cachedData = undefined;
  }
  const script = new Script(wrap(source), { filename: file, cachedData });
  const module = { exports: {} as T };
  const run = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: { exports: T },
    filename: string,
    dirname: string,
  ) => void;
  run(module.exports, createRequire(file), module, file, dirname(file));
  return {
    module: module.exports,
    script,
    cacheRejected: cachedData === undefined ? undefined : script.cachedDataRejected === true,
  };
}

/**
 * The bundle's module, or undefined when there is no bundle at `file` or it cannot run
 * (unreadable, or it throws). Callers then load the dependency the ordinary way: a damaged
 * `dist/cli/` costs the start-up gain, never the feature.
 */
export function tryVendored<T>(file: string): T | undefined {
  try {
    return loadVendored<T>(file)?.module;
  } catch {
    return undefined;
  }
}
