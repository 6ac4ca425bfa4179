/**
 * The ObjectStore contract, written once and run against every adapter (see
 * object-store.test.ts). A backend lacking a feature says so through {@link ObjectStoreHarness}
 * and the affected assertion is skipped for it, never weakened.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, isMailIngestError, MailIngestError } from "../../lambdas/errors.ts";
import type { ObjectStore } from "../../lambdas/ports.ts";

export interface ObjectStoreHarness {
  readonly store: ObjectStore;
  /** The URI the store must give `key`. */
  expectedUri(key: string): string;
  /** Bytes the backend has durably accepted so far for in-flight writes (backpressure probe). */
  sinkBytes(): Promise<number>;
  /** Most bytes the adapter may legitimately pull ahead of what the sink has accepted. */
  readonly maxReadAhead: number;
  /** False when the backend ignores create-only writes (fauxqs ignores `If-None-Match`). */
  readonly enforcesIfAbsent: boolean;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

export function objectStoreContract(name: string, setup: () => Promise<ObjectStoreHarness>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let h: ObjectStoreHarness;
    beforeEach(async () => {
      h = await setup();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it("round-trips all 256 byte values untouched, from a Uint8Array and from a stream", async () => {
      const bytes = allByteValues(4);
      expect(await h.store.put("bin/array", bytes)).toEqual({ size: 1024, created: true });
      expect(await h.store.put("bin/stream", chunked(bytes, 7))).toEqual({
        size: 1024,
        created: true,
      });
      expect(await readBytes(h.store, "bin/array")).toEqual(Buffer.from(bytes));
      expect(await readBytes(h.store, "bin/stream")).toEqual(Buffer.from(bytes));
    });

    it("stores an empty body as a zero-byte object", async () => {
      expect(await h.store.put("empty/stream", Readable.from([]))).toEqual({
        size: 0,
        created: true,
      });
      expect(await h.store.put("empty/array", new Uint8Array(0))).toEqual({
        size: 0,
        created: true,
      });
      expect(await h.store.head("empty/stream")).toEqual({ size: 0 });
      expect(await readBytes(h.store, "empty/array")).toEqual(Buffer.alloc(0));
    });

    it("streams a 20 MB multi-part-sized body and gets back the same sha256", async () => {
      const total = 20 * 1000 * 1000;
      const source = generated(total, 64 * 1024);
      const result = await h.store.put("big/20mb.eml", source.stream);
      expect(result).toEqual({ size: total, created: true });
      expect(await h.store.head("big/20mb.eml")).toEqual({ size: total });
      const stream = await h.store.get("big/20mb.eml");
      expect(stream).not.toBeNull();
      const hash = createHash("sha256");
      for await (const chunk of stream ?? []) hash.update(chunk);
      expect(hash.digest("hex")).toBe(source.sha256());
    });

    it("pulls a slow source no further ahead than its bounded buffer (backpressure)", async () => {
      const total = 32 * MiB;
      let pulled = 0;
      let worstLead = 0;
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const source = new Readable({
        highWaterMark: 64 * 1024,
        read() {
          // Sample the sink each time the store asks for more: a store that buffered the whole
          // body would race ahead of what it has written.
          void h.sinkBytes().then((sunk) => {
            worstLead = Math.max(worstLead, pulled - sunk);
            if (pulled >= total) {
              this.push(null);
              return;
            }
            pulled += chunk.length;
            this.push(chunk);
          });
        },
      });
      const result = await h.store.put("slow/body", source);
      expect(result.size).toBe(total);
      expect(worstLead).toBeLessThanOrEqual(h.maxReadAhead);
    });

    it("rejects with the source's own error and leaves no object when the body fails", async () => {
      let sent = 0;
      const failing = new Readable({
        read() {
          if (sent >= 2 * MiB) {
            this.destroy(new MailIngestError(ErrorCode.SIZE_MISMATCH, "server closed early"));
            return;
          }
          sent += 256 * 1024;
          this.push(Buffer.alloc(256 * 1024, 0x62));
        },
      });
      const err = await h.store.put("broken/body", failing).catch((e: unknown) => e);
      expect(isMailIngestError(err, ErrorCode.SIZE_MISMATCH)).toBe(true);
      expect(await h.store.get("broken/body")).toBeNull();
      expect(await h.store.head("broken/body")).toBeNull();
      expect(await collect(h.store.list(""))).toEqual([]);
    });

    it("creates with ifAbsent when the key is free and reports the size", async () => {
      expect(await h.store.put("once/a", Buffer.from("first"), { ifAbsent: true })).toEqual({
        size: 5,
        created: true,
      });
      expect((await readBytes(h.store, "once/a")).toString()).toBe("first");
    });

    it("leaves an existing object untouched and reports created:false with ifAbsent", async (ctx) => {
      // fauxqs 1.9.2 ignores If-None-Match on PutObject/CompleteMultipartUpload; the 412 path
      // is covered against a mocked S3 in test/unit/adapters/s3-store.test.ts.
      if (!h.enforcesIfAbsent) ctx.skip();
      await h.store.put("once/b", Buffer.from("first"));
      expect(await h.store.put("once/b", Buffer.from("second!"), { ifAbsent: true })).toEqual({
        size: 0,
        created: false,
      });
      expect(
        await h.store.put("once/b", chunked(Buffer.from("third!!"), 2), { ifAbsent: true }),
      ).toEqual({ size: 0, created: false });
      expect((await readBytes(h.store, "once/b")).toString()).toBe("first");
    });

    it("lets exactly one of two racing ifAbsent writers create the object", async (ctx) => {
      if (!h.enforcesIfAbsent) ctx.skip();
      const results = await Promise.all([
        h.store.put("race/x", chunked(Buffer.alloc(300_000, 1), 4096), { ifAbsent: true }),
        h.store.put("race/x", chunked(Buffer.alloc(300_000, 2), 4096), { ifAbsent: true }),
      ]);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      const winner = results[0]?.created ? 1 : 2;
      expect(await readBytes(h.store, "race/x")).toEqual(Buffer.alloc(300_000, winner));
    });

    it("overwrites an existing object when ifAbsent is not set", async () => {
      await h.store.put("over/a", Buffer.from("old bytes"));
      expect(await h.store.put("over/a", Buffer.from("new"))).toEqual({ size: 3, created: true });
      expect((await readBytes(h.store, "over/a")).toString()).toBe("new");
      expect(await h.store.head("over/a")).toEqual({ size: 3 });
    });

    it("returns null from get and head for a missing key and for a bare prefix", async () => {
      expect(await h.store.get("missing/key")).toBeNull();
      expect(await h.store.head("missing/key")).toBeNull();
      await h.store.put("dir/child", Buffer.from("x"));
      expect(await h.store.get("dir")).toBeNull();
      expect(await h.store.head("dir")).toBeNull();
    });

    it("deletes idempotently", async () => {
      await h.store.put("del/a", Buffer.from("x"));
      await h.store.delete("del/a");
      expect(await h.store.head("del/a")).toBeNull();
      await expect(h.store.delete("del/a")).resolves.toBeUndefined();
      await expect(h.store.delete("never/was")).resolves.toBeUndefined();
    });

    it("lists keys under a prefix, including partial-segment prefixes", async () => {
      for (const key of ["p/a", "p/b/c", "pq/d", "other/e"]) {
        await h.store.put(key, Buffer.from(key));
      }
      expect((await collect(h.store.list("p/"))).sort()).toEqual(["p/a", "p/b/c"]);
      expect((await collect(h.store.list("p"))).sort()).toEqual(["p/a", "p/b/c", "pq/d"]);
      expect((await collect(h.store.list("p/b/"))).sort()).toEqual(["p/b/c"]);
      expect((await collect(h.store.list(""))).sort()).toEqual(["other/e", "p/a", "p/b/c", "pq/d"]);
      expect(await collect(h.store.list("nothing/"))).toEqual([]);
    });

    it("gives each key a stable URI of the backend's scheme", () => {
      expect(h.store.uri("raw/2024/abc.eml")).toBe(h.expectedUri("raw/2024/abc.eml"));
      expect(h.store.uri("raw/2024/abc.eml")).toMatch(/^(file|s3):\/\//);
      expect(h.store.uri("a")).not.toBe(h.store.uri("b"));
    });

    it.each([
      "",
      "/abs",
      "../escape",
      "a/../../b",
      "a//b",
      "a/./b",
      "trailing/",
      "back\\slash",
      "nul\0byte",
    ])("rejects the unsafe key %j with STORE_FAILED", async (key) => {
      const err = await h.store.put(key, Buffer.from("x")).catch((e: unknown) => e);
      expect(isMailIngestError(err, ErrorCode.STORE_FAILED)).toBe(true);
      await expect(h.store.get(key)).rejects.toMatchObject({ code: ErrorCode.STORE_FAILED });
    });
  });
}

export function allByteValues(repeat: number): Uint8Array {
  const out = new Uint8Array(256 * repeat);
  for (let i = 0; i < out.length; i += 1) out[i] = i % 256;
  return out;
}

/** A Readable that yields `bytes` in chunks of `size`. */
export function chunked(bytes: Uint8Array, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size)
    chunks.push(Buffer.from(bytes.subarray(i, i + size)));
  return Readable.from(chunks);
}

/** A lazily generated pseudo-random body of `total` bytes, hashed as it is produced. */
export function generated(
  total: number,
  chunkSize: number,
): { stream: Readable; sha256(): string } {
  const hash = createHash("sha256");
  let produced = 0;
  let seed = 0x12345678;
  const stream = new Readable({
    read() {
      if (produced >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunkSize, total - produced);
      const words = Buffer.allocUnsafe(Math.ceil(n / 4) * 4);
      for (let i = 0; i < words.length; i += 4) {
        // xorshift32: cheap, deterministic, and covers every byte value.
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        words.writeUInt32LE(seed >>> 0, i);
      }
      const chunk = words.subarray(0, n);
      hash.update(chunk);
      produced += n;
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.digest("hex") };
}

export async function readBytes(store: ObjectStore, key: string): Promise<Buffer> {
  const stream = await store.get(key);
  if (stream === null) throw new Error(`expected ${key} to exist`);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
