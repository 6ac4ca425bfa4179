import { mkdtemp, rm, rmdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DirCache } from "../../../lambdas/adapters/fs-atomic.ts";

let root: string | undefined;
afterEach(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe("DirCache", () => {
  it("remembers created directories, so a vanished one is not recreated by ensure()", async () => {
    root = await mkdtemp(path.join(tmpdir(), "mi-dircache-"));
    const cache = new DirCache(4);
    const a = path.join(root, "a");
    await cache.ensure(a);
    await rmdir(a);
    await cache.ensure(a);
    await expect(stat(a)).rejects.toMatchObject({ code: "ENOENT" });
  });

  // Regression: one parts directory per message made the cache grow with the mailbox.
  it("starts over past its limit, so its size never grows with the number of directories", async () => {
    root = await mkdtemp(path.join(tmpdir(), "mi-dircache-"));
    const cache = new DirCache(2);
    const [a, b, c] = ["a", "b", "c"].map((d) => path.join(root as string, d)) as [
      string,
      string,
      string,
    ];
    await cache.ensure(a);
    await cache.ensure(b);
    await cache.ensure(c);
    await rmdir(a);
    await cache.ensure(a);
    expect((await stat(a)).isDirectory()).toBe(true);
  });
});
