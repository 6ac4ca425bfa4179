import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsStateStore } from "../../../lambdas/adapters/fs-state.ts";
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

  it("drops a torn last line with a warning naming the file, and truncates it so the next append stays parseable", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a")]);
    // A crash mid-append: part of a line, no newline.
    await appendFile(store.logPath("inbox"), '{"op":"record","entries":[{"uidl":"b"');
    const reopened = new FsStateStore({ dir });
    const warnings: string[] = [];
    const loaded = await reopened.load("inbox", { onWarning: (m) => warnings.push(m) });
    expect([...loaded.keys()]).toEqual(["a"]);
    expect(warnings).toEqual([
      expect.stringContaining(`state ${store.logPath("inbox")}: dropped a torn last line`),
    ]);
    await reopened.record("inbox", [entry("c")]);
    const again: string[] = [];
    const reloaded = await new FsStateStore({ dir }).load("inbox", {
      onWarning: (m) => again.push(m),
    });
    expect([...reloaded.keys()]).toEqual(["a", "c"]);
    expect(again).toEqual([]);
  });

  it("repairs a torn tail before appending even when load was never called", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a")]);
    await appendFile(store.logPath("inbox"), '{"op":"forg');
    await new FsStateStore({ dir }).record("inbox", [entry("b")]);
    expect([...(await new FsStateStore({ dir }).load("inbox")).keys()]).toEqual(["a", "b"]);
  });

  it("skips a corrupt middle line with a warning naming file:line, and loads the lines around it", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a")]);
    await appendFile(store.logPath("inbox"), "garbage\n");
    await store.record("inbox", [entry("b")]);
    const warnings: string[] = [];
    const loaded = await new FsStateStore({ dir }).load("inbox", {
      onWarning: (m) => warnings.push(m),
    });
    expect([...loaded.keys()]).toEqual(["a", "b"]);
    expect(warnings[0]).toBe(
      `state ${store.logPath("inbox")}:2: unreadable (not JSON), skipped; an unknown number of messages may be fetched again under the same ids, which consumers dedupe`,
    );
  });

  it("keeps the valid entries of a partly corrupt record line and counts the unreadable ones", async () => {
    const store = new FsStateStore({ dir });
    const bad = { ...entry("b"), size: "10" };
    const line = JSON.stringify({ op: "record", entries: [entry("a"), bad, entry("c")] });
    await writeFile(store.logPath("inbox"), `${line}\n`);
    const warnings: string[] = [];
    const loaded = await store.load("inbox", { onWarning: (m) => warnings.push(m) });
    expect([...loaded.keys()]).toEqual(["a", "c"]);
    expect(warnings[0]).toBe(
      `state ${store.logPath("inbox")}:1: 1 of 3 recorded entries unreadable (entry 2: size is not a non-negative integer), skipped; up to 1 message(s) may be fetched again under the same ids, which consumers dedupe`,
    );
  });

  it("brings the UIDLs of a corrupt forget line back as known, saying nothing is fetched again", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a"), entry("b"), entry("c")]);
    await appendFile(store.logPath("inbox"), '{"op":"forget","uidls":["a",7]}\n');
    const warnings: string[] = [];
    const loaded = await store.load("inbox", { onWarning: (m) => warnings.push(m) });
    expect([...loaded.keys()]).toEqual(["b", "c"]);
    expect(warnings[0]).toContain(":2: 1 of 2 forgotten UIDLs unreadable (uidl 2 is not a string)");
    expect(warnings[0]).toContain("no message is fetched again");
  });

  it("copies corrupt lines aside, then rewrites the log without them so the next load is clean", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a")]);
    await appendFile(store.logPath("inbox"), "garbage\n[1]\n");
    await store.forget("inbox", ["a"]);
    await store.record("inbox", [entry("b")]);
    const warnings: string[] = [];
    await new FsStateStore({ dir }).load("inbox", { onWarning: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(3);
    expect(warnings[1]).toContain(`${store.logPath("inbox")}:3: unreadable (not an object)`);
    const aside = warnings[2]?.match(/a copy of them is in (\S+)$/)?.[1] ?? "";
    expect(aside.startsWith(join(dir, ".corrupt", "inbox."))).toBe(true);
    expect(await readFile(aside, "utf8")).toBe("garbage\n[1]\n");
    expect(await lines(store.logPath("inbox"))).toEqual([
      JSON.stringify({ op: "record", entries: [entry("b")] }),
    ]);
    const again: string[] = [];
    const reloaded = await new FsStateStore({ dir }).load("inbox", {
      onWarning: (m) => again.push(m),
    });
    expect([...reloaded.keys()]).toEqual(["b"]);
    expect(again).toEqual([]);
  });

  it("still loads when the corrupt lines cannot be set aside, and leaves the log as it was", async () => {
    const store = new FsStateStore({ dir });
    await store.record("inbox", [entry("a")]);
    await appendFile(store.logPath("inbox"), "garbage\n");
    const before = await readFile(store.logPath("inbox"), "utf8");
    // A regular file where the set-aside directory goes: a real ENOTDIR/EEXIST from the fs.
    await writeFile(join(dir, ".corrupt"), "");
    const warnings: string[] = [];
    const loaded = await store.load("inbox", { onWarning: (m) => warnings.push(m) });
    expect([...loaded.keys()]).toEqual(["a"]);
    expect(warnings[1]).toMatch(/could not set its 1 unreadable line\(s\) aside and rewrite it/);
    expect(await readFile(store.logPath("inbox"), "utf8")).toBe(before);
    await store.record("inbox", [entry("b")]);
    expect([...(await new FsStateStore({ dir }).load("inbox")).keys()]).toEqual(["a", "b"]);
  });

  it("loads a corrupt log without onWarning instead of failing", async () => {
    const store = new FsStateStore({ dir });
    await writeFile(
      store.logPath("inbox"),
      `not json\n${JSON.stringify({ op: "record", entries: [entry("a")] })}\n`,
    );
    expect([...(await store.load("inbox")).keys()]).toEqual(["a"]);
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
