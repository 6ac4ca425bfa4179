import { mkdtemp, rm } from "node:fs/promises";
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
  return {
    open: () => new FsStateStore({ dir, compactMinLines: 8 }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

stateStoreContract("ObjectStateStore over FsObjectStore", async () => {
  const dir = await tempDir();
  return {
    open: () => new ObjectStateStore({ store: new FsObjectStore({ dir }), compactAfter: 4 }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

stateStoreContract("ObjectStateStore over S3ObjectStore on fauxqs", async () => {
  const bucket = await fauxqs.createBucket();
  return {
    open: () =>
      new ObjectStateStore({
        store: new S3ObjectStore({ client: fauxqs.s3, bucket }),
        compactAfter: 4,
      }),
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
