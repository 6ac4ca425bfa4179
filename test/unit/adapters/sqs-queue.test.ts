import { describe, expect, it } from "vitest";
import { SqsQueue } from "../../../lambdas/adapters/sqs-queue.ts";
import { ErrorCode, isMailIngestError } from "../../../lambdas/errors.ts";
import type { QueueEntry } from "../../../lambdas/ports.ts";
import { type Call, mockSqs } from "./mock-aws.ts";

const URL = "http://127.0.0.1:9/000000000000/q";

function entries(n: number): QueueEntry[] {
  return Array.from({ length: n }, (_, i) => ({ id: `id.${i}`, body: `{"n":${i}}` }));
}

interface BatchEntry {
  Id: string;
  MessageBody: string;
  MessageGroupId?: string;
  MessageDeduplicationId?: string;
}

function entriesOf(call: Call | undefined): BatchEntry[] {
  const list = call?.input.Entries;
  if (!Array.isArray(list)) throw new Error("no Entries in call");
  return list;
}

/** Answers SendMessageBatch, failing the entries whose body `fail` selects. */
function answer(fail: (body: string, call: number) => { code: string; sender: boolean } | null) {
  let n = 0;
  return (call: Call) => {
    n += 1;
    const Successful: { Id: string }[] = [];
    const Failed: { Id: string; Code: string; SenderFault: boolean }[] = [];
    for (const e of entriesOf(call)) {
      const f = fail(e.MessageBody, n);
      if (f) Failed.push({ Id: e.Id, Code: f.code, SenderFault: f.sender });
      else Successful.push({ Id: e.Id });
    }
    return { Successful, Failed };
  };
}

describe("SqsQueue against scripted SQS responses", () => {
  it("retries only the entries a partial batch failure reported, then succeeds", async () => {
    const { client, calls } = mockSqs(
      answer((body, n) =>
        body === '{"n":3}' && n === 1 ? { code: "InternalError", sender: false } : null,
      ),
    );
    const queue = new SqsQueue({ client, queueUrl: URL, baseDelayMs: 1 });
    await queue.send(entries(5));
    expect(calls).toHaveLength(2);
    expect(entriesOf(calls[1]).map((e) => e.MessageBody)).toEqual(['{"n":3}']);
  });

  it("throws QUEUE_FAILED naming the ids after bounded retries of a persistent failure", async () => {
    const { client, calls } = mockSqs(
      answer((body) => (body === '{"n":1}' ? { code: "ServiceUnavailable", sender: false } : null)),
    );
    const queue = new SqsQueue({ client, queueUrl: URL, maxAttempts: 3, baseDelayMs: 1 });
    const err = await queue.send(entries(2)).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect(String(err)).toContain("id.1");
    expect(String(err)).not.toContain("id.0");
    expect(calls).toHaveLength(3);
  });

  it("fails at once on a sender fault, without retrying", async () => {
    const { client, calls } = mockSqs(
      answer(() => ({ code: "InvalidMessageContents", sender: true })),
    );
    const queue = new SqsQueue({ client, queueUrl: URL, baseDelayMs: 1 });
    const err = await queue.send(entries(1)).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect(String(err)).toContain("id.0");
    expect(calls).toHaveLength(1);
  });

  it("wraps a failed request in QUEUE_FAILED naming the batch's ids", async () => {
    const { client } = mockSqs(() => {
      throw new Error("socket hang up");
    });
    const queue = new SqsQueue({ client, queueUrl: URL });
    const err = await queue.send(entries(2)).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect(String(err)).toContain("id.0, id.1");
  });

  it("takes a queue's smaller MaximumMessageSize as its body limit, and never more than SQS's 1 MiB", async () => {
    const { client, calls } = mockSqs(answer(() => null));
    const small = new SqsQueue({ client, queueUrl: URL, maxBodyBytes: 2048 });
    expect(small.maxBodyBytes).toBe(2048);
    const err = await small.send([{ id: "big", body: "x".repeat(2049) }]).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect(calls).toHaveLength(0);
    expect(new SqsQueue({ client, queueUrl: URL, maxBodyBytes: 4_000_000 }).maxBodyBytes).toBe(
      1_048_576,
    );
  });

  it("uses positional batch entry Ids, since SQS forbids dots in them", async () => {
    const { client, calls } = mockSqs(answer(() => null));
    await new SqsQueue({ client, queueUrl: URL }).send(entries(3));
    expect(entriesOf(calls[0]).map((e) => e.Id)).toEqual(["0", "1", "2"]);
  });

  it("sets MessageGroupId and MessageDeduplicationId from the entry id on FIFO queues", async () => {
    const { client, calls } = mockSqs(answer(() => null));
    await new SqsQueue({ client, queueUrl: `${URL}.fifo` }).send(entries(1));
    expect(entriesOf(calls[0])[0]).toMatchObject({
      MessageGroupId: "id.0",
      MessageDeduplicationId: "id.0",
    });
    await new SqsQueue({ client, queueUrl: `${URL}.fifo`, groupId: () => "mailbox-1" }).send(
      entries(1),
    );
    expect(entriesOf(calls[1])[0]?.MessageGroupId).toBe("mailbox-1");
  });

  it("leaves FIFO attributes off standard queues", async () => {
    const { client, calls } = mockSqs(answer(() => null));
    await new SqsQueue({ client, queueUrl: URL }).send(entries(1));
    expect(entriesOf(calls[0])[0]).not.toHaveProperty("MessageGroupId");
    expect(entriesOf(calls[0])[0]).not.toHaveProperty("MessageDeduplicationId");
  });
});
