/**
 * util/vendored.ts runs the compiled CLI's vendored bundles (mailparser, imapflow) through
 * `vm.Script` with a V8 code cache. A missing, stale or foreign cache must never change what runs,
 * only how fast.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CODE_CACHE_SUFFIX, loadVendored, type Vendored } from "../../../lambdas/util/vendored.ts";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mi-vendored-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Fake = { base: string; dir: string; double(n: number): number };

/** The fake bundle's exports; throws when nothing was loaded. */
function fake(loaded: Vendored<Fake> | undefined): Fake {
  if (!loaded) throw new Error("no bundle loaded");
  return loaded.module;
}

describe("loadVendored", () => {
  const source = `const path = require("node:path");
module.exports = { base: path.basename(__filename), dir: __dirname, double: (n) => n * 2 };`;

  it("is undefined when there is no bundle (the sources, the tsc output, the Lambda bundle)", () => {
    expect(loadVendored(join(dir, "absent.cjs"))).toBeUndefined();
  });

  it("runs the bundle as a CommonJS module, with and without a code cache", async () => {
    const file = join(dir, "fake.cjs");
    await writeFile(file, source);
    const cold = loadVendored<Fake>(file);
    expect(cold?.cacheRejected).toBeUndefined();
    expect(fake(cold)).toMatchObject({ base: "fake.cjs", dir });
    expect(fake(cold).double(21)).toBe(42);

    await writeFile(`${file}${CODE_CACHE_SUFFIX}`, cold?.script.createCachedData() as Buffer);
    const cached = loadVendored<Fake>(file);
    expect(cached?.cacheRejected).toBe(false);
    expect(fake(cached).double(2)).toBe(4);
  });

  it("still runs the bundle when V8 refuses the cache (another Node, a changed bundle)", async () => {
    const file = join(dir, "stale.cjs");
    await writeFile(file, source);
    await writeFile(`${file}${CODE_CACHE_SUFFIX}`, Buffer.from("not a V8 code cache"));
    const loaded = loadVendored<Fake>(file);
    expect(loaded?.cacheRejected).toBe(true);
    expect(fake(loaded).double(5)).toBe(10);
  });
});
