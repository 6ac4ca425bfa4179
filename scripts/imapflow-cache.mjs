#!/usr/bin/env node
/**
 * Makes the V8 code cache of the CLI's vendored imapflow (`dist/cli/imapflow.cjs`, see
 * lambdas/adapters/imapflow-loader.ts), run by scripts/build.mjs in a fresh Node after tsc: V8
 * accepts a cache only under the flags it was made with, and a plain `node` is how the CLI runs.
 *
 * The bundle is loaded and one client constructed (it connects only on `connect()`) before the
 * cache is taken, so the cache holds the modules' top levels and the constructor's functions.
 *
 * Usage: node scripts/imapflow-cache.mjs <dist>/cli/imapflow.cjs
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const DIST = fileURLToPath(new URL("../dist/", import.meta.url));
const file = process.argv[2];
if (!file) throw new Error("usage: imapflow-cache.mjs <bundle file>");

const { loadVendored, CODE_CACHE_SUFFIX } = await import(`${DIST}lambdas/util/vendored.js`);
const vendored = loadVendored(file);
if (!vendored) throw new Error(`no imapflow bundle at ${file}`);
new vendored.module.ImapFlow({
  host: "localhost",
  port: 993,
  secure: true,
  auth: { user: "warm-up", pass: "warm-up" },
  logger: false,
});
writeFileSync(`${file}${CODE_CACHE_SUFFIX}`, vendored.script.createCachedData());
