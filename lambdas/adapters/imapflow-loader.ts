/**
 * Loads imapflow, once, for the first IMAP session: with its dependencies (pino, libmime,
 * iconv-lite, nodemailer's parts) it took an IMAP poll 300–370 ms to import from node_modules'
 * ES modules on the bench machine (issue 14), more than the rest of an incremental poll.
 *
 * Where it comes from, first found wins:
 * 1. `imapflow.cjs` next to this module: the compiled CLI (`dist/cli/`, scripts/build.mjs) ships
 *    imapflow (its ES module build, the one the tests run) and its dependency tree as one CommonJS
 *    file, run by util/vendored.ts with a V8 code cache beside it. ~80 ms. A bundle that cannot
 *    run at all falls back to 2.
 * 2. `import("imapflow")`: node_modules (the sources, the tests, the tsc output), or, in the
 *    Lambda bundle, the copy esbuild resolved into it.
 */
import { fileURLToPath } from "node:url";
import { tryVendored } from "../util/vendored.ts";

type Imapflow = typeof import("imapflow");

/** The vendored bundle's file name; scripts/build.mjs writes it next to the CLI's chunks. */
export const VENDORED_IMAPFLOW = "imapflow.cjs";

let loading: Promise<Imapflow> | undefined;

/** imapflow, loaded on the first call (see the module comment for where from). */
export function imapflow(): Promise<Imapflow> {
  loading ??= loadFrom(fileURLToPath(new URL(`./${VENDORED_IMAPFLOW}`, import.meta.url)));
  return loading;
}

/** Makes `module` the imapflow every later session uses (a test runs one with the bundle). */
export function useImapflow(module: Imapflow): void {
  loading = Promise.resolve(module);
}

/** imapflow from the bundle at `vendoredFile` when it runs, else through `import()`. */
export async function loadFrom(vendoredFile: string): Promise<Imapflow> {
  return tryVendored<Imapflow>(vendoredFile) ?? (await import("imapflow"));
}
