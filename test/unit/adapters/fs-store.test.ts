import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsObjectStore } from "../../../lambdas/adapters/fs-store.ts";
import { describeError, ErrorCode, isMailIngestError } from "../../../lambdas/errors.ts";

async function collect(items: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe("FsObjectStore", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "mail-ingest-fs-store-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("never exposes a crash-leftover temp file through get, head or list", async () => {
    const store = new FsObjectStore({ dir });
    await store.put("real/key", Buffer.from("x"));
    await writeFile(join(dir, ".tmp", "dead.tmp"), "partial");
    expect(await collect(store.list(""))).toEqual(["real/key"]);
    await expect(store.get(".tmp/dead.tmp")).rejects.toMatchObject({
      code: ErrorCode.STORE_FAILED,
    });
    await expect(store.head(".tmp/dead.tmp")).rejects.toMatchObject({
      code: ErrorCode.STORE_FAILED,
    });
  });

  it("sweeps stale temp files on the first put but spares ones a live writer may own", async () => {
    await mkdir(join(dir, ".tmp"), { recursive: true });
    const stale = join(dir, ".tmp", "stale.tmp");
    const fresh = join(dir, ".tmp", "fresh.tmp");
    await writeFile(stale, "old");
    await writeFile(fresh, "new");
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    await utimes(stale, twoHoursAgo, twoHoursAgo);
    const store = new FsObjectStore({ dir });
    await store.put("k", Buffer.from("x"));
    expect((await readdir(join(dir, ".tmp"))).sort()).toEqual(["fresh.tmp"]);
    expect(await store.sweepTemp(0)).toBe(1);
    expect(await readdir(join(dir, ".tmp"))).toEqual([]);
  });

  it("removes its temp file and leaves no object when the source fails", async () => {
    const store = new FsObjectStore({ dir });
    const failing = new Readable({
      read() {
        this.destroy(new Error("boom"));
      },
    });
    const err = await store.put("k", failing).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.STORE_FAILED)).toBe(true);
    expect(await readdir(join(dir, ".tmp"))).toEqual([]);
    expect(await store.head("k")).toBeNull();
  });

  it("refuses string chunks, since bytes must never be decoded to move them", async () => {
    const store = new FsObjectStore({ dir });
    const err = await store.put("k", Readable.from(["text"])).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.STORE_FAILED)).toBe(true);
    expect(await store.head("k")).toBeNull();
  });

  it("writes files readable only by their owner", async () => {
    const store = new FsObjectStore({ dir });
    await store.put("private/mail.eml", Buffer.from("x"));
    expect((await stat(join(dir, "private", "mail.eml"))).mode & 0o077).toBe(0);
  });

  it("keeps the ifAbsent winner's bytes and cleans up the loser's temp file", async () => {
    const store = new FsObjectStore({ dir });
    await store.put("k", Buffer.from("winner"), { ifAbsent: true });
    expect(await store.put("k", Buffer.from("loser"), { ifAbsent: true })).toEqual({
      size: 0,
      created: false,
    });
    expect(await readdir(join(dir, ".tmp"))).toEqual([]);
    expect(await store.head("k")).toEqual({ size: 6 });
  });

  it("reports an unreadable key path as STORE_FAILED, not as absent", async () => {
    const store = new FsObjectStore({ dir });
    await store.put("file", Buffer.from("x"));
    // "file" is a regular file, so "file/child" cannot exist: ENOTDIR means absent.
    expect(await store.head("file/child")).toBeNull();
    const err = await store.put("file/child", Buffer.from("y")).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.STORE_FAILED });
    // The report shows the system error under the wrapper, not just "Failed to …". The
    // directory cache does not stat what mkdir says exists, so the rename is what fails.
    expect(describeError(err)).toMatch(/^Failed to write file\/child: ENOTDIR: not a directory, /);
  });
});
