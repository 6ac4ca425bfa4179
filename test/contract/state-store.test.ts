import { appendFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FsStateStore } from "../../lambdas/adapters/fs-state.ts";
import { FsObjectStore } from "../../lambdas/adapters/fs-store.ts";
import { ObjectStateStore } from "../../lambdas/adapters/object-state.ts";
import { S3ObjectStore } from "../../lambdas/adapters/s3-store.ts";
import type { ObjectStore, PutOptions, PutResult } from "../../lambdas/ports.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { collect } from "./object-store.contract.ts";
import { entry, stateStoreContract } from "./state-store.contract.ts";

let fauxqs: Fauxqs;
beforeAll(async () => {
  fauxqs = await startFauxqs();
});
afterAll(async () => {
  await fauxqs?.stop();
});

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "mail-ingest-state-"));
}

stateStoreContract("FsStateStore", async () => {
  const dir = await tempDir();
  const open = () => new FsStateStore({ dir, compactMinLines: 8 });
  return {
    open,
    async inject(mailbox, text) {
      const path = open().logPath(mailbox);
      await mkdir(dir, { recursive: true });
      const before = await readFile(path, "utf8").catch(() => "");
      await appendFile(path, `${text}\n`);
      return `${path}:${before.split("\n").length}`;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

/** Writes `text` as a delta named to sort after every delta written so far (names are ms-based). */
async function injectDelta(store: ObjectStore, mailbox: string, text: string): Promise<string> {
  const key = `state/${mailbox}/delta/${String(Date.now()).padStart(15, "0")}-999999-00000000.json`;
  await store.put(key, Buffer.from(text, "utf8"));
  return key;
}

stateStoreContract("ObjectStateStore over FsObjectStore", async () => {
  const dir = await tempDir();
  const store = new FsObjectStore({ dir });
  return {
    open: () => new ObjectStateStore({ store, compactAfter: 4 }),
    inject: (mailbox, text) => injectDelta(store, mailbox, text),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

stateStoreContract("ObjectStateStore over S3ObjectStore on fauxqs", async () => {
  const store = new S3ObjectStore({ client: fauxqs.s3, bucket: await fauxqs.createBucket() });
  return {
    open: () => new ObjectStateStore({ store, compactAfter: 4 }),
    inject: (mailbox, text) => injectDelta(store, mailbox, text),
    cleanup: async () => undefined,
  };
});

/** An ObjectStore that dies (throws) at a chosen put or delete, like a process killed there. */
class CrashingStore implements ObjectStore {
  readonly bucket: string | undefined;
  crashOnPutOf: string | undefined;
  crashOnDelete: (key: string) => boolean = () => false;
  constructor(private readonly inner: ObjectStore) {
    this.bucket = inner.bucket;
  }
  put(key: string, body: Readable | Uint8Array, options?: PutOptions): Promise<PutResult> {
    if (this.crashOnPutOf !== undefined && key.endsWith(this.crashOnPutOf)) {
      return Promise.reject(new Error(`crash before writing ${key}`));
    }
    return this.inner.put(key, body, options);
  }
  get(key: string) {
    return this.inner.get(key);
  }
  head(key: string) {
    return this.inner.head(key);
  }
  delete(key: string): Promise<void> {
    if (this.crashOnDelete(key)) return Promise.reject(new Error(`crash before deleting ${key}`));
    return this.inner.delete(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  uri(key: string) {
    return this.inner.uri(key);
  }
}

const backings: [string, () => Promise<ObjectStore>][] = [
  ["FsObjectStore", async () => new FsObjectStore({ dir: await tempDir() })],
  [
    "S3ObjectStore on fauxqs",
    async () => new S3ObjectStore({ client: fauxqs.s3, bucket: await fauxqs.createBucket() }),
  ],
];

for (const [name, makeBacking] of backings) {
  describe(`ObjectStateStore interrupted compaction over ${name}`, () => {
    let backing: ObjectStore;
    let crashing: CrashingStore;
    const COMPACT_AFTER = 3;
    const open = (store: ObjectStore) =>
      new ObjectStateStore({ store, compactAfter: COMPACT_AFTER });

    beforeEach(async () => {
      backing = await makeBacking();
      crashing = new CrashingStore(backing);
      // "gone" is recorded, then forgotten; replaying the old record over a snapshot taken
      // after the forget would wrongly bring it back.
      const writer = open(backing);
      await writer.record("inbox", [entry("gone")]);
      await writer.record("inbox", [entry("kept-1")]);
      await writer.forget("inbox", ["gone"]);
      await writer.record("inbox", [entry("kept-2")]);
      await writer.record("inbox", [entry("kept-3")]);
    });

    const expected = ["kept-1", "kept-2", "kept-3"];

    it("is unchanged when the crash comes before the snapshot is written", async () => {
      crashing.crashOnPutOf = "snapshot.json";
      await expect(open(crashing).load("inbox")).rejects.toThrow(/crash/);
      expect([...(await open(backing).load("inbox")).keys()].sort()).toEqual(expected);
    });

    it("does not replay folded deltas when the crash comes after the snapshot, before deletes", async () => {
      crashing.crashOnDelete = () => true;
      await expect(open(crashing).load("inbox")).rejects.toThrow(/crash/);
      expect(await collect(backing.list("state/inbox/delta/"))).toHaveLength(5);
      expect([...(await open(backing).load("inbox")).keys()].sort()).toEqual(expected);
    });

    it("recovers when concurrent deletes stopped partway with an older delta left behind", async () => {
      // Deletes run concurrently, so a crash can leave the oldest delta ("record gone") while
      // the newer "forget gone" is already deleted; replaying it would resurrect "gone".
      const oldest = (await collect(backing.list("state/inbox/delta/"))).sort()[0];
      crashing.crashOnDelete = (key) => key === oldest;
      await expect(open(crashing).load("inbox")).rejects.toThrow(/crash/);
      const recovered = open(backing);
      expect([...(await recovered.load("inbox")).keys()].sort()).toEqual(expected);
      expect(await collect(backing.list("state/inbox/delta/"))).toEqual([]);
      await recovered.forget("inbox", ["kept-1"]);
      await recovered.record("inbox", [entry("new")]);
      expect([...(await open(backing).load("inbox")).keys()].sort()).toEqual([
        "kept-2",
        "kept-3",
        "new",
      ]);
    });

    it("folds deltas into one snapshot once more than compactAfter are pending", async () => {
      await open(backing).load("inbox");
      expect(await collect(backing.list("state/inbox/delta/"))).toEqual([]);
      expect(await backing.head("state/inbox/snapshot.json")).not.toBeNull();
      expect([...(await open(backing).load("inbox")).keys()].sort()).toEqual(expected);
    });
  });
}

for (const [name, makeBacking] of backings) {
  describe(`ObjectStateStore damaged objects over ${name}`, () => {
    let backing: ObjectStore;
    const open = () => new ObjectStateStore({ store: backing, compactAfter: 3 });
    const SNAPSHOT = "state/inbox/snapshot.json";
    const load = async () => {
      const warnings: string[] = [];
      const state = await open().load("inbox", { onWarning: (m) => warnings.push(m) });
      return { keys: [...state.keys()].sort(), warnings };
    };
    const text = async (key: string) => {
      const body = await backing.get(key);
      return body === null ? null : Buffer.concat(await collect<Buffer>(body)).toString("utf8");
    };

    beforeEach(async () => {
      backing = await makeBacking();
    });

    it("replays the deltas past an unreadable snapshot, warns that its entries may be re-fetched, and keeps it aside", async () => {
      const writer = open();
      for (const uidl of ["s1", "s2", "s3", "s4"]) await writer.record("inbox", [entry(uidl)]);
      await open().load("inbox"); // folds the four deltas into a snapshot
      expect(await backing.head(SNAPSHOT)).not.toBeNull();
      await backing.put(SNAPSHOT, Buffer.from('{"version":1,"upTo":"0'));
      await writer.record("inbox", [entry("d1")]);

      const first = await load();
      expect(first.keys).toEqual(["d1"]);
      expect(first.warnings[0]).toBe(
        `state ${SNAPSHOT}: unreadable (not JSON), skipped; an unknown number of messages may be fetched again under the same ids, which consumers dedupe`,
      );
      expect(first.warnings[1]).toContain(
        "set 1 unreadable object(s) aside under state/inbox/corrupt/",
      );
      const aside = await collect(backing.list("state/inbox/corrupt/"));
      expect(aside).toEqual([expect.stringMatching(/^state\/inbox\/corrupt\/snapshot-\d+\.json$/)]);
      expect(await text(aside[0] as string)).toBe('{"version":1,"upTo":"0');
      expect(await collect(backing.list("state/inbox/delta/"))).toEqual([]);

      // The next session: it loads (under the mailbox lock) before it writes.
      const next = open();
      await next.load("inbox");
      await next.record("inbox", [entry("d2")]);
      expect(await load()).toEqual({ keys: ["d1", "d2"], warnings: [] });
    });

    it("keeps the readable entries and upTo of a partly damaged snapshot", async () => {
      const writer = open();
      await writer.record("inbox", [entry("folded")]);
      const [folded] = await collect(backing.list("state/inbox/delta/"));
      const upTo = (folded as string).slice("state/inbox/delta/".length, -".json".length);
      const entries = [entry("a"), { ...entry("b"), uidl: 42 }, entry("c")];
      await backing.put(SNAPSHOT, Buffer.from(JSON.stringify({ version: 1, upTo, entries })));
      await writer.record("inbox", [entry("d1")]);

      const first = await load();
      // "folded" sits at or below upTo: a leftover of a compaction, not replayed.
      expect(first.keys).toEqual(["a", "c", "d1"]);
      expect(first.warnings[0]).toBe(
        `state ${SNAPSHOT}: 1 of 3 recorded entries unreadable (entry 2: uidl is not a string), skipped; up to 1 message(s) may be fetched again under the same ids, which consumers dedupe`,
      );
      expect(await load()).toEqual({ keys: ["a", "c", "d1"], warnings: [] });
    });

    it("replays every delta when the snapshot's upTo is unreadable, and says why", async () => {
      const writer = open();
      await writer.record("inbox", [entry("x")]);
      const entries = [entry("a")];
      await backing.put(SNAPSHOT, Buffer.from(JSON.stringify({ version: 1, upTo: 7, entries })));
      const first = await load();
      expect(first.keys).toEqual(["a", "x"]);
      expect(first.warnings[0]).toMatch(/^state state\/inbox\/snapshot.json: upTo is unreadable/);
      expect(await load()).toEqual({ keys: ["a", "x"], warnings: [] });
    });

    it("copies an unreadable delta under corrupt/ with its own name before deleting it", async () => {
      const writer = open();
      await writer.record("inbox", [entry("a")]);
      const key = await injectDelta(backing, "inbox", '{"op":"shred"}');
      const first = await load();
      expect(first.keys).toEqual(["a"]);
      expect(first.warnings[0]).toContain(`state ${key}: unreadable (unknown operation), skipped`);
      const aside = key.replace("/delta/", "/corrupt/");
      expect(await text(aside)).toBe('{"op":"shred"}');
      expect(await backing.head(key)).toBeNull();
    });
  });
}

/** An ObjectStore that records each call as `<op> <key relative to state/inbox/>`. */
class CountingStore extends CrashingStore {
  readonly calls: string[] = [];
  private note(op: string, key: string): void {
    this.calls.push(`${op} ${key.replace(/^state\/inbox\//, "")}`);
  }
  override put(key: string, body: Readable | Uint8Array, options?: PutOptions) {
    this.note("put", key);
    return super.put(key, body, options);
  }
  override get(key: string) {
    this.note("get", key);
    return super.get(key);
  }
  /** Keys whose HEAD is refused, as S3 refuses it (403) to a caller that may not list them. */
  headRefused: (key: string) => boolean = () => false;
  override head(key: string) {
    this.note("head", key);
    if (this.headRefused(key)) return Promise.reject(new Error("AccessDenied: Forbidden (403)"));
    return super.head(key);
  }
  override delete(key: string) {
    this.note("delete", key);
    return super.delete(key);
  }
  override list(prefix: string) {
    this.note("list", prefix);
    return super.list(prefix);
  }
}

for (const [name, makeBacking] of backings) {
  describe(`ObjectStateStore clean marker (idle loads without LIST) over ${name}`, () => {
    let backing: ObjectStore;
    let counting: CountingStore;
    const DIRTY = "state/inbox/dirty.json";
    const SNAPSHOT = "state/inbox/snapshot.json";
    const open = (store: ObjectStore = counting) => new ObjectStateStore({ store });
    const keys = async (store: ObjectStateStore = open(), options = {}) =>
      [...(await store.load("inbox", options)).keys()].sort();

    beforeEach(async () => {
      backing = await makeBacking();
      counting = new CountingStore(backing);
    });

    it("loads a mailbox with nothing new since its last compaction from the snapshot alone", async () => {
      await open().record("inbox", [entry("a")]);
      expect(await backing.head(DIRTY)).not.toBeNull();
      expect(await keys()).toEqual(["a"]); // folds the delta, removes the marker
      expect(await backing.head(DIRTY)).toBeNull();
      counting.calls.length = 0;
      expect(await keys()).toEqual(["a"]);
      // The regression this guards: a LIST ($0.005/1k) plus a GET per delta on every idle poll.
      expect(counting.calls.sort()).toEqual(["get snapshot.json", "head dirty.json"]);
    });

    it("writes the marker once per load: a session's later checkpoints add only their delta", async () => {
      const writer = open();
      expect(await keys(writer)).toEqual([]); // the session's load, under the mailbox lock
      counting.calls.length = 0;
      await writer.record("inbox", [entry("a")]);
      await writer.record("inbox", [entry("b")]);
      await writer.forget("inbox", ["a"]);
      expect(counting.calls.map((c) => c.replace(/delta\/.*/, "delta"))).toEqual([
        "put dirty.json",
        "put delta",
        "put delta",
        "put delta",
      ]);
      expect(await keys()).toEqual(["b"]); // the next session's load sees every delta
    });

    it("writes the marker again after its own load, which folds the deltas and removes it", async () => {
      const writer = open();
      await writer.record("inbox", [entry("a")]);
      expect(await keys(writer)).toEqual(["a"]); // folds "a" and deletes the marker
      expect(await backing.head(DIRTY)).toBeNull();
      counting.calls.length = 0;
      await writer.record("inbox", [entry("b")]);
      expect(counting.calls.map((c) => c.replace(/delta\/.*/, "delta"))).toEqual([
        "put dirty.json",
        "put delta",
      ]);
      // Without the second marker this load would take the idle path and miss "b".
      expect(await keys()).toEqual(["a", "b"]);
    });

    it("a read-only load (check) leaves the marker alone, so the writer need not write it again", async () => {
      const writer = open();
      await writer.record("inbox", [entry("a")]);
      expect(await keys(writer, { readOnly: true })).toEqual(["a"]);
      expect(await backing.head(DIRTY)).not.toBeNull();
      counting.calls.length = 0;
      await writer.record("inbox", [entry("b")]);
      expect(counting.calls.map((c) => c.replace(/delta\/.*/, "delta"))).toEqual(["put delta"]);
      expect(await keys()).toEqual(["a", "b"]);
    });

    it("takes the full path, never the idle one, when the marker's HEAD is refused (403)", async () => {
      const writer = open(backing);
      await writer.record("inbox", [entry("a")]);
      expect(await keys(open(backing))).toEqual(["a"]); // compacted: the idle path would apply
      await writer.record("inbox", [entry("b")]);
      counting.headRefused = (key) => key === DIRTY;
      counting.calls.length = 0;
      expect(await keys()).toEqual(["a", "b"]);
      expect(counting.calls).toContain("list delta/");
    });

    it("takes the full path when a crash left the marker after the snapshot, and clears it", async () => {
      await open().record("inbox", [entry("a")]);
      counting.crashOnDelete = (key) => key === DIRTY;
      await expect(keys()).rejects.toThrow(/crash/);
      counting.crashOnDelete = () => false;
      expect(await backing.head(DIRTY)).not.toBeNull();
      await open(backing).record("inbox", [entry("b")]);
      counting.calls.length = 0;
      expect(await keys()).toEqual(["a", "b"]);
      expect(counting.calls).toContain("list delta/");
      expect(await backing.head(DIRTY)).toBeNull();
    });

    it("lists the deltas of a state written before the marker (version 1 snapshot), then rewrites it once", async () => {
      const delta = await injectDelta(backing, "inbox", '{"op":"record","entries":[]}');
      await backing.put(
        SNAPSHOT,
        Buffer.from(JSON.stringify({ version: 1, upTo: null, entries: [entry("old")] })),
      );
      await backing.delete(delta);
      await injectDelta(
        backing,
        "inbox",
        JSON.stringify({ op: "record", entries: [entry("legacy-delta")] }),
      );
      expect(await keys()).toEqual(["legacy-delta", "old"]);
      expect(counting.calls).toContain("list delta/");
      counting.calls.length = 0;
      expect(await keys()).toEqual(["legacy-delta", "old"]);
      expect(counting.calls).not.toContain("list delta/");
    });

    it("neither compacts nor deletes on a read-only load (a check beside a running session)", async () => {
      await open().record("inbox", [entry("a")]);
      counting.calls.length = 0;
      expect(await keys(open(), { readOnly: true })).toEqual(["a"]);
      expect(counting.calls.filter((c) => /^(put|delete)/.test(c))).toEqual([]);
      expect(await backing.head(DIRTY)).not.toBeNull();
    });
  });
}
