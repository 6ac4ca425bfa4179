import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import {
  type BatchMessage,
  batches,
  type SendMessageBatch,
  sendBatches,
} from "../../../lambdas/adapters/sqs-batch.ts";
import { ErrorCode, isMailIngestError } from "../../../lambdas/errors.ts";
import { sendJobs } from "../../../lambdas/handlers/jobs.ts";
import { type Call, mockSqs } from "./mock-aws.ts";

const URL = "http://127.0.0.1:9/000000000000/q.fifo";

function messages(n: number): BatchMessage[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `k.${i}`,
    entry: { MessageBody: `{"n":${i}}`, MessageGroupId: "g", MessageDeduplicationId: `k.${i}` },
  }));
}

interface Entry {
  Id: string;
  MessageBody: string;
}

function entriesOf(call: Call | undefined): Entry[] {
  const list = call?.input.Entries;
  if (!Array.isArray(list)) throw new Error("no Entries in call");
  return list;
}

/** The real SQS client, answered in-process by `respond` (see mock-aws.ts). */
function sqs(respond: (entries: Entry[], call: number) => unknown) {
  let n = 0;
  const { client, calls } = mockSqs((call) => respond(entriesOf(call), ++n));
  const send: SendMessageBatch = (input) => client.send(new SendMessageBatchCommand(input));
  return { send, calls };
}

const allOk = (entries: Entry[]) => ({ Successful: entries.map((e) => ({ Id: e.Id })) });

describe("sendBatches against the SQS SDK", () => {
  it("resends an entry SQS listed neither as successful nor as failed", async () => {
    // Regression: sendJobs used to count such an entry as sent, which could lose a job.
    const { send, calls } = sqs((entries, n) =>
      n === 1 ? { Successful: [{ Id: "0" }], Failed: [] } : allOk(entries),
    );
    await sendBatches(send, URL, messages(2), { baseDelayMs: 1 });
    expect(calls.map((c) => entriesOf(c).map((e) => e.MessageBody))).toEqual([
      ['{"n":0}', '{"n":1}'],
      ['{"n":1}'],
    ]);
  });

  it("retries a transient failure up to maxAttempts, then names only the unsent keys", async () => {
    const { send, calls } = sqs((entries) => ({
      Successful: entries.filter((e) => e.MessageBody !== '{"n":1}').map((e) => ({ Id: e.Id })),
      Failed: entries
        .filter((e) => e.MessageBody === '{"n":1}')
        .map((e) => ({ Id: e.Id, Code: "ThrottlingException", SenderFault: false })),
    }));
    const err = await sendBatches(send, URL, messages(3), {
      maxAttempts: 4,
      baseDelayMs: 1,
      label: "jobs queue",
    }).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect(String(err)).toContain("jobs queue: SQS did not accept k.1 after 4 attempts");
    expect(String(err)).toContain("ThrottlingException");
    expect(String(err)).not.toContain("k.0");
    expect(calls).toHaveLength(4);
  });

  it("fails at once on a sender fault, naming the rejected key and SQS's code", async () => {
    const { send, calls } = sqs((entries) => ({
      Successful: [{ Id: "0" }],
      Failed: entries
        .slice(1)
        .map((e) => ({ Id: e.Id, Code: "InvalidParameterValue", SenderFault: true })),
    }));
    const err = await sendBatches(send, URL, messages(2), { baseDelayMs: 1 }).catch(
      (e: unknown) => e,
    );
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect(String(err)).toContain("SQS rejected k.1: InvalidParameterValue");
    expect(calls).toHaveLength(1);
  });

  it("does not retry a whole-request error (the SDK already did) and keeps it as the cause", async () => {
    const { send, calls } = sqs(() => {
      throw new Error("socket hang up");
    });
    const err = await sendBatches(send, URL, messages(2)).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect(String(err)).toContain("SendMessageBatch failed for k.0, k.1");
    expect((err as Error).cause).toMatchObject({ message: "socket hang up" });
    expect(calls).toHaveLength(1);
  });

  it("sends positional Ids and never more than 10 entries per request", async () => {
    const { send, calls } = sqs(allOk);
    await sendBatches(send, URL, messages(23));
    expect(calls.map((c) => entriesOf(c).length)).toEqual([10, 10, 3]);
    expect(entriesOf(calls[2]).map((e) => e.Id)).toEqual(["0", "1", "2"]);
  });
});

describe("sendJobs uses the same sender", () => {
  it("retries a job missing from both result lists instead of counting it as sent", async () => {
    const { send, calls } = sqs((entries, n) => (n === 1 ? {} : allOk(entries)));
    await sendJobs(send, URL, [{ mailboxId: "a", tick: "20240501T1005Z" }], { baseDelayMs: 1 });
    expect(calls).toHaveLength(2);
  });
});

describe("batches", () => {
  const body = (item: { body: string }) => item.body;

  it("groups 25 entries as 10, 10, 5", () => {
    const items = Array.from({ length: 25 }, () => ({ body: "x" }));
    expect(batches(items, body).map((b) => b.length)).toEqual([10, 10, 5]);
  });

  it("starts a new batch before the bodies would exceed 1 MiB", () => {
    const big = (id: string, bytes: number) => ({ id, body: "x".repeat(bytes) });
    const sizes = batches(
      [big("a", 600_000), big("b", 448_576), big("c", 1), big("d", 1_048_576)],
      body,
    );
    expect(sizes.map((b) => b.map((e) => e.id))).toEqual([["a", "b"], ["c"], ["d"]]);
  });
});
