/**
 * Loads mailparser, once, on the first parse: with its dependencies (html-to-text, iconv-lite,
 * linkify-it, entities) it is most of the CLI's module loading, and a poll with nothing new never
 * parses a message (issue 11: such a poll in at most 0.3 s).
 *
 * Where it comes from, first found wins:
 * 1. `mailparser.cjs` next to this module: the compiled CLI (`dist/cli/`, scripts/build.mjs) ships
 *    mailparser and its dependency tree as one CommonJS file, run by util/vendored.ts with a V8
 *    code cache beside it (`mailparser.cjs.v8cache`) made at build time after parsing sample
 *    mail. The bundle saves resolving and reading ~60 files; the cache saves compiling them, and
 *    the functions a parse runs. Issue 14: `require("mailparser")` took 170–200 ms, the bundle 140–160 ms, the bundle
 *    with the cache 80–90 ms. A cache V8 rejects (another Node version) only costs the compile;
 *    a bundle that cannot run at all falls back to 2.
 * 2. `require("mailparser")` where node_modules holds it (the sources, the tests, the tsc output):
 *    on Node 20 its CommonJS build loads in about half the time of its ES module build
 *    (170–200 ms against 350–400 ms, issue 14).
 * 3. `import("mailparser")`: the Lambda bundle, which has no node_modules; esbuild resolved this
 *    import into the bundle.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { tryVendored } from "../util/vendored.ts";

type Mailparser = typeof import("mailparser");

/** The vendored bundle's file name; scripts/build.mjs writes it next to the CLI's chunks. */
export const VENDORED_FILE = "mailparser.cjs";

let loading: Promise<Mailparser> | undefined;

/** mailparser, loaded on the first call (see the module comment for where from). */
export function mailparser(): Promise<Mailparser> {
  loading ??= load();
  return loading;
}

/** Makes `module` the mailparser every later parse uses: the build's warm-up parses with it. */
export function useMailparser(module: Mailparser): void {
  loading = Promise.resolve(module);
}

function load(): Promise<Mailparser> {
  return loadFrom(fileURLToPath(new URL(`./${VENDORED_FILE}`, import.meta.url)));
}

/**
 * mailparser from the bundle at `vendoredFile`, else from node_modules, else from the Lambda
 * bundle. A bundle that cannot be run (unreadable, or it throws) falls back to node_modules, which
 * the installed package always has: a damaged `dist/cli/` costs the start-up gain, not the parse.
 */
export async function loadFrom(vendoredFile: string): Promise<Mailparser> {
  const vendored = tryVendored<Mailparser>(vendoredFile);
  if (vendored) return vendored;
  try {
    return createRequire(import.meta.url)("mailparser") as Mailparser;
  } catch {
    return import("mailparser");
  }
}
