import { mkdtemp, rm, rmdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DirCache, DirSyncer } from "../../../lambdas/adapters/fs-atomic.ts";

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

describe("DirCache durability of new directories", () => {
  // Regression: a new parts/ directory's entry was never fsynced in its parent, so a power loss
  // could take the directory, and every fsynced file in it, with it after the checkpoint.
  it("fsyncs the parent of every directory it makes, before ensure() resolves", async () => {
    root = await mkdtemp(path.join(tmpdir(), "mi-dircache-"));
    const synced: string[] = [];
    const release: Array<() => void> = [];
    const syncer = new DirSyncer(
      (dir) =>
        new Promise<void>((resolve) => {
          synced.push(dir);
          release.push(resolve);
        }),
    );
    const cache = new DirCache(16, syncer);
    const deep = path.join(root, "parts", "mbx", "id");
    let ready = false;
    const ensured = cache.ensure(deep).then(() => {
      ready = true;
    });
    // Each level waits for its parent's fsync before its own mkdir, so release them in turn.
    for (let i = 0; i < 3; i++) {
      for (let t = 0; t < 20 && release.length === 0; t++)
        await new Promise((r) => setTimeout(r, 5));
      expect(ready).toBe(false);
      release.shift()?.();
    }
    await ensured;
    // `root` existed already, so its own parent is not synced: only what ensure() had to make.
    expect(synced).toEqual([root, path.join(root, "parts"), path.join(root, "parts", "mbx")]);
    expect((await stat(deep)).isDirectory()).toBe(true);
  });

  it("fsyncs the parent once even when the directory already existed (a killed writer's leftover)", async () => {
    root = await mkdtemp(path.join(tmpdir(), "mi-dircache-"));
    const synced: string[] = [];
    const cache = new DirCache(16, new DirSyncer(async (dir) => void synced.push(dir)));
    await cache.ensure(root);
    await cache.ensure(root);
    expect(synced).toEqual([path.dirname(root)]);
  });
});

describe("DirSyncer", () => {
  /** A fake fsync whose calls are counted and finished by the test, one at a time. */
  function fakeFsync() {
    const pending: Array<{ dir: string; finish: (err?: Error) => void }> = [];
    const fsync = (dir: string) =>
      new Promise<void>((resolve, reject) => {
        pending.push({ dir, finish: (err) => (err ? reject(err) : resolve()) });
      });
    return { fsync, pending };
  }
  const settled = async (p: Promise<unknown>) => {
    let done = false;
    p.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    for (let i = 0; i < 5; i++) await Promise.resolve();
    return done;
  };

  // The group commit: entries made while an fsync runs share the one queued behind it.
  it("runs one fsync for every caller that arrived while another was running", async () => {
    const { fsync, pending } = fakeFsync();
    const syncer = new DirSyncer(fsync);
    const first = syncer.sync("/d");
    const later = [syncer.sync("/d"), syncer.sync("/d"), syncer.sync("/d")];
    expect(pending).toHaveLength(1);
    pending[0]?.finish();
    await first;
    // The running fsync may have started before their entries existed: it does not count.
    expect(await settled(Promise.all(later))).toBe(false);
    await Promise.resolve();
    expect(pending).toHaveLength(2);
    pending[1]?.finish();
    await Promise.all(later);
    expect(pending).toHaveLength(2);
  });

  it("keeps directories apart and passes an fsync failure to the callers that shared it", async () => {
    const { fsync, pending } = fakeFsync();
    const syncer = new DirSyncer(fsync);
    const a = syncer.sync("/a");
    const b = syncer.sync("/b");
    expect(pending.map((p) => p.dir)).toEqual(["/a", "/b"]);
    pending[0]?.finish(Object.assign(new Error("EIO"), { code: "EIO" }));
    pending[1]?.finish();
    await expect(a).rejects.toMatchObject({ code: "EIO" });
    await expect(b).resolves.toBeUndefined();
    // After a failure the next caller gets a fresh fsync, not the failed one.
    const again = syncer.sync("/a");
    expect(pending).toHaveLength(3);
    pending[2]?.finish();
    await expect(again).resolves.toBeUndefined();
  });
});
