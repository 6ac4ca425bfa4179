/**
 * The MessageQueue contract, written once and run against every adapter (see queue.test.ts).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, isMailIngestError } from "../../lambdas/errors.ts";
import type { MessageQueue, QueueEntry } from "../../lambdas/ports.ts";

export interface QueueHarness {
  readonly queue: MessageQueue;
  /** Consumes and returns every message the backend now holds (bodies, in any order). */
  receiveAll(): Promise<string[]>;
  /** Backend requests made so far, for adapters that batch (SQS SendMessageBatch). */
  readonly batchCalls?: () => number;
  /**
   * For fan-out adapters (EventBridgeFanout): takes the bodies published to the second channel
   * since the last call. Each receive then checks that they are exactly the delivered bodies, so
   * an entry queued but not published (or published twice) fails the contract.
   */
  readonly takePublished?: () => string[];
  /** True when sending an id twice yields one message (fs file per id, SQS FIFO dedupe id). */
  readonly dedupesById: boolean;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

export function queueContract(name: string, setup: () => Promise<QueueHarness>): void {
  describe(`MessageQueue contract: ${name}`, () => {
    let h: QueueHarness;
    beforeEach(async () => {
      h = await setup();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it("delivers 25 entries exactly once each, in batches of at most 10", async () => {
      const entries = makeEntries(25);
      await h.queue.send(entries);
      expect((await receive(h)).sort()).toEqual(entries.map((e) => e.body).sort());
      if (h.batchCalls) expect(h.batchCalls()).toBe(3);
    });

    // The fs queue links such an entry to the file; every adapter must still deliver the body.
    it("delivers the body of an entry whose bytes are also a stored file (sameAs)", async () => {
      const dir = await mkdtemp(join(tmpdir(), "mail-ingest-queue-same-"));
      try {
        const body = JSON.stringify({ id: "same1", subject: "stored once" });
        const file = join(dir, "same1.json");
        await writeFile(file, body);
        await h.queue.send([{ id: "same1", body, sameAs: pathToFileURL(file).href }]);
        expect(await receive(h)).toEqual([body]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it("splits batches so no request carries more than 1 MiB of bodies", async () => {
      const entries = [0, 1, 2].map((i) => ({
        id: `big${i}`,
        body: JSON.stringify({ i, pad: "x".repeat(400 * 1024) }),
      }));
      await h.queue.send(entries);
      expect((await receive(h)).sort()).toEqual(entries.map((e) => e.body).sort());
      if (h.batchCalls) expect(h.batchCalls()).toBe(2);
    });

    it("advertises the SQS body limit of 1 MiB and accepts a body of exactly that size", async () => {
      expect(h.queue.maxBodyBytes).toBe(MiB);
      const body = JSON.stringify("a".repeat(MiB - 2));
      expect(Buffer.byteLength(body)).toBe(MiB);
      await h.queue.send([{ id: "max", body }]);
      const received = await receive(h);
      expect(received).toHaveLength(1);
      expect(received[0] === body).toBe(true);
    });

    it("counts the limit in UTF-8 bytes and rejects one byte over without sending anything", async () => {
      // "é" is 2 bytes in UTF-8: the string is half as many characters as bytes.
      const fits = JSON.stringify(`${"é".repeat((MiB - 2) / 2)}`);
      expect(Buffer.byteLength(fits)).toBe(MiB);
      const over = JSON.stringify(`${"é".repeat((MiB - 2) / 2)}a`);
      const err = await h.queue
        .send([
          { id: "ok", body: '{"ok":true}' },
          { id: "over", body: over },
        ])
        .catch((e: unknown) => e);
      expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
      expect(String(err)).toContain("over");
      expect(await receive(h)).toEqual([]);
      await h.queue.send([{ id: "fits", body: fits }]);
      expect(await receive(h)).toEqual([fits]);
    });

    it("delivers an id sent twice once where the backend dedupes by id", async (ctx) => {
      // Standard SQS is at-least-once; consumers dedupe by the id inside the body.
      if (!h.dedupesById) ctx.skip();
      const entry = { id: "0123abcd", body: '{"id":"0123abcd"}' };
      await h.queue.send([entry]);
      await h.queue.send([entry]);
      expect(await receive(h)).toEqual([entry.body]);
    });

    it("sends nothing for an empty list", async () => {
      await h.queue.send([]);
      expect(await receive(h)).toEqual([]);
      if (h.batchCalls) expect(h.batchCalls()).toBe(0);
    });
  });
}

/** Everything delivered since the last call, checked against what a fan-out published. */
async function receive(h: QueueHarness): Promise<string[]> {
  const delivered = await h.receiveAll();
  if (h.takePublished) expect([...h.takePublished()].sort()).toEqual([...delivered].sort());
  return delivered;
}

export function makeEntries(n: number): QueueEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const id = `${i.toString(16).padStart(8, "0")}.msg`;
    return { id, body: JSON.stringify({ id, n: i, subject: `héllo ${i}` }) };
  });
}
