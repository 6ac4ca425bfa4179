import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsStateStore } from "../../../lambdas/adapters/fs-state.ts";
import { ErrorCode } from "../../../lambdas/errors.ts";
import type { StateEntry } from "../../../lambdas/ports.ts";

function entry(uidl: string): StateEntry {
  return {
    uidl,
    id: `id-${uidl}`,
    ingestedAt: "2024-05-01T12:00:00.000Z",
    size: 10,
    sha256: "00".repeat(32),
  };
}

async function lines(path: string): Promise<string[]> {
  return (await readFile(path, "utf8")).split("\n").filter((l) => l !== "");
}

describe("FsStateStore", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "mail-ingest-fs-state-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("appends exactly one line per record or forget, never rewriting the log", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a"), entry("b")]);
    const first = await readFile(store.logPath("inbox"), "utf8");
    await store.record("inbox", [entry("c")]);
    await store.forget("inbox", ["a"]);
    const after = await readFile(store.logPath("inbox"), "utf8");
    expect(after.startsWith(first)).toBe(true);
    expect(await lines(store.logPath("inbox"))).toHaveLength(3);
  });

  it("ignores a torn last line and truncates it so the next append stays parseable", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a")]);
    // A crash mid-append: part of a line, no newline.
    await appendFile(store.logPath("inbox"), '{"op":"record","entries":[{"uidl":"b"');
    const reopened = new FsStateStore({ dir });
    expect([...(await reopened.load("inbox")).keys()]).toEqual(["a"]);
    await reopened.record("inbox", [entry("c")]);
    expect([...(await new FsStateStore({ dir }).load("inbox")).keys()]).toEqual(["a", "c"]);
  });

  it("repairs a torn tail before appending even when load was never called", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a")]);
    await appendFile(store.logPath("inbox"), '{"op":"forg');
    await new FsStateStore({ dir }).record("inbox", [entry("b")]);
    expect([...(await new FsStateStore({ dir }).load("inbox")).keys()]).toEqual(["a", "b"]);
  });

  it("reports a corrupt line in the middle of the log as STATE_CORRUPT", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a")]);
    await appendFile(store.logPath("inbox"), "garbage\n");
    await store.record("inbox", [entry("b")]);
    await expect(new FsStateStore({ dir }).load("inbox")).rejects.toMatchObject({
      code: ErrorCode.STATE_CORRUPT,
    });
  });

  it("rejects well-formed JSON with the wrong shape as STATE_CORRUPT", async () => {
    const store = new FsStateStore({ dir });
    await writeFile(
      store.logPath("inbox"),
      '{"op":"record","entries":[{"uidl":"a","id":"x","ingestedAt":"t","size":"10","sha256":"s"}]}\n',
    );
    await expect(store.load("inbox")).rejects.toMatchObject({ code: ErrorCode.STATE_CORRUPT });
  });

  it("compacts a log with far more lines than live entries into one line per entry", async () => {
    const store = new FsStateStore({ dir, compactMinLines: 10 });
    for (let i = 0; i < 20; i += 1) {
      await store.record("inbox", [entry(`u${i}`)]);
      if (i >= 2) await store.forget("inbox", [`u${i}`]);
    }
    expect(await lines(store.logPath("inbox"))).toHaveLength(38);
    const loaded = await store.load("inbox");
    expect([...loaded.keys()]).toEqual(["u0", "u1"]);
    expect(await lines(store.logPath("inbox"))).toHaveLength(2);
    await store.forget("inbox", ["u0"]);
    expect([...(await new FsStateStore({ dir }).load("inbox")).keys()]).toEqual(["u1"]);
  });

  it("leaves a log below the compaction threshold alone", async () => {
    const store = new FsStateStore({ dir, compactMinLines: 100 });
    for (let i = 0; i < 5; i += 1) await store.record("inbox", [entry(`u${i}`)]);
    await store.forget("inbox", ["u0", "u1", "u2", "u3"]);
    await store.load("inbox");
    expect(await lines(store.logPath("inbox"))).toHaveLength(6);
  });
});
