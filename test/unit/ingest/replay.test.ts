import { describe, expect, it } from "vitest";
import { ErrorCode, isMailIngestError } from "../../../lambdas/errors.ts";
import { messageId } from "../../../lambdas/ingest/keys.ts";
import { replayMailbox } from "../../../lambdas/ingest/replay.ts";
import type { MessageQueue, ObjectStore, QueueEntry } from "../../../lambdas/ports.ts";
import { MemoryObjectStore } from "../mime/memory-store.ts";

/** A stored full-form message, as describeStored writes it. */
function meta(mailbox: string, n: number): { id: string; text: string } {
  const id = messageId(mailbox, `u${n}`);
  const message = {
    schemaVersion: 2,
    id,
    mailbox,
    source: { protocol: "pop3", uidl: `u${n}` },
    ingestedAt: new Date(Date.UTC(2026, 10, 1) + n * 60_000).toISOString(),
    size: 100,
    sha256: "0".repeat(64),
    raw: { key: `raw/${mailbox}/${id}.eml`, uri: `file:///raw/${mailbox}/${id}.eml` },
    headers: {},
    attachments: [],
  };
  return { id, text: JSON.stringify(message) };
}

function recordingQueue(maxBodyBytes = 1_048_576) {
  const batches: QueueEntry[][] = [];
  const queue: MessageQueue = {
    maxBodyBytes,
    async send(entries) {
      batches.push([...entries]);
    },
  };
  return { queue, batches };
}

describe("replayMailbox", () => {
  it("streams the listing: keys are pulled only one queue batch ahead of the sends", async () => {
    const store = new MemoryObjectStore();
    for (let n = 0; n < 35; n++) {
      const { id, text } = meta("box", n);
      await store.put(`meta/box/${id}.json`, Buffer.from(text));
    }
    let pulled = 0;
    const { queue, batches } = recordingQueue();
    const pulledAtSend: number[] = [];
    const streaming: ObjectStore = Object.assign(Object.create(store), {
      async *list(prefix: string) {
        for await (const key of store.list(prefix)) {
          pulled++;
          yield key;
        }
      },
    });
    const counting: MessageQueue = {
      maxBodyBytes: queue.maxBodyBytes,
      async send(entries) {
        pulledAtSend.push(pulled);
        await queue.send(entries);
      },
    };
    const report = await replayMailbox("box", streaming, counting);
    expect(report).toMatchObject({ found: 35, replayed: 35, pointers: 0 });
    expect(batches.map((b) => b.length)).toEqual([10, 10, 10, 5]);
    // A replay that collected the listing first would have pulled all 35 before the first send.
    expect(pulledAtSend).toEqual([10, 20, 30, 35]);
  });

  it("ignores other mailboxes' objects and keys that are not metadata objects", async () => {
    const store = new MemoryObjectStore();
    const mine = meta("box", 1);
    const other = meta("boxer", 1);
    await store.put(`meta/box/${mine.id}.json`, Buffer.from(mine.text));
    await store.put(`meta/boxer/${other.id}.json`, Buffer.from(other.text));
    await store.put(`meta/box/${mine.id}.json.tmp`, Buffer.from("x"));
    const { queue, batches } = recordingQueue();
    const report = await replayMailbox("box", store, queue);
    expect(report).toMatchObject({ found: 1, replayed: 1, invalid: 0 });
    expect(batches.flat()).toEqual([{ id: mine.id, body: mine.text }]);
  });

  it("skips, with a warning naming the key, a metadata object whose id or mailbox does not match its key", async () => {
    const store = new MemoryObjectStore();
    const a = meta("box", 1);
    const b = meta("box", 2);
    // b's content under a's key: replaying it would send b's id twice and a's never.
    await store.put(`meta/box/${a.id}.json`, Buffer.from(b.text));
    const warnings: string[] = [];
    const { queue, batches } = recordingQueue();
    const report = await replayMailbox("box", store, queue, {
      onWarning: (m) => warnings.push(m),
    });
    expect(report).toMatchObject({ found: 1, replayed: 0, invalid: 1 });
    expect(batches).toEqual([]);
    expect(warnings).toEqual([
      `mailbox box: meta/box/${a.id}.json skipped: not a queue message of this mailbox`,
    ]);
  });

  it("fails with QUEUE_FAILED naming the mailbox when the queue refuses", async () => {
    const store = new MemoryObjectStore();
    const { id, text } = meta("box", 1);
    await store.put(`meta/box/${id}.json`, Buffer.from(text));
    const queue: MessageQueue = {
      maxBodyBytes: 1_048_576,
      async send() {
        throw new Error("throttled");
      },
    };
    const err = await replayMailbox("box", store, queue).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect(String((err as Error).message)).toBe("mailbox box: queueing failed: throttled");
  });
});
