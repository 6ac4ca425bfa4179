import { Logger } from "@aws-lambda-powertools/logger";
import type { SendMessageBatchCommandInput } from "@aws-sdk/client-sqs";
import { afterEach, describe, expect, it } from "vitest";
import { createConfigLoader } from "../../../lambdas/config/index.ts";
import { ErrorCode, MailIngestError } from "../../../lambdas/errors.ts";
import { createDispatcher, defaultDispatcherDeps } from "../../../lambdas/handlers/dispatcher.ts";
import { type SendMessageBatch, sendJobs } from "../../../lambdas/handlers/jobs.ts";
import { type Captured, captureOutput, lambdaContext } from "./capture.ts";

const QUEUE = "https://sqs.us-east-1.amazonaws.com/000000000000/jobs.fifo";

function configJson(count: number) {
  return JSON.stringify({
    mailboxes: Array.from({ length: count }, (_, i) => ({
      id: `mbx-${i}`,
      host: "pop.example.com",
      username: `user${i}`,
      password: { secretId: `mail-ingest/mbx-${i}` },
    })),
  });
}

function recordingSender(): { calls: SendMessageBatchCommandInput[]; send: SendMessageBatch } {
  const calls: SendMessageBatchCommandInput[] = [];
  return {
    calls,
    send: async (input) => {
      calls.push(input);
      return { Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id })) };
    },
  };
}

let output: Captured | undefined;
afterEach(() => {
  output?.restore();
  output = undefined;
});

function dispatcher(count: number, send: SendMessageBatch, now = new Date("2024-05-01T10:07:42Z")) {
  output = captureOutput();
  return createDispatcher({
    loadConfig: createConfigLoader(
      { MAIL_INGEST_CONFIG: configJson(count) },
      async () => undefined,
    ),
    sendMessageBatch: send,
    jobsQueueUrl: QUEUE,
    logger: new Logger({ serviceName: "test" }),
    now: () => now,
  });
}

describe("dispatcher", () => {
  it("sends one job per mailbox, grouped by mailbox id and deduplicated per tick, 10 per batch", async () => {
    const { calls, send } = recordingSender();
    const result = await dispatcher(23, send)(
      { scheduledTime: "2024-05-01T10:05:00Z" },
      lambdaContext(() => 60_000),
    );
    expect(result).toEqual({ tick: "20240501T1005Z", jobs: 23 });
    expect(calls.map((c) => c.Entries?.length)).toEqual([10, 10, 3]);
    expect(calls.every((c) => c.QueueUrl === QUEUE)).toBe(true);
    const entries = calls.flatMap((c) => c.Entries ?? []);
    expect(entries.map((e) => e.MessageGroupId)).toEqual(
      Array.from({ length: 23 }, (_, i) => `mbx-${i}`),
    );
    expect(entries[4]?.MessageDeduplicationId).toBe("mbx-4:20240501T1005Z");
    expect(JSON.parse(entries[4]?.MessageBody ?? "")).toEqual({
      mailboxId: "mbx-4",
      tick: "20240501T1005Z",
      // The instant, to the second: the poller judges a job's age by it (the tick is floored).
      scheduledAt: "2024-05-01T10:05:00.000Z",
    });
    // Batch entry ids must be unique within each request.
    for (const call of calls) {
      const ids = call.Entries?.map((e) => e.Id);
      expect(new Set(ids).size).toBe(ids?.length);
    }
  });

  it("gives a Scheduler retry of the same tick the same deduplication ids", async () => {
    const first = recordingSender();
    const retry = recordingSender();
    const event = { scheduledTime: "2024-05-01T10:05:00Z" };
    await dispatcher(3, first.send, new Date("2024-05-01T10:05:01Z"))(event);
    await dispatcher(3, retry.send, new Date("2024-05-01T10:09:30Z"))(event);
    const ids = (calls: SendMessageBatchCommandInput[]) =>
      calls.flatMap((c) => c.Entries ?? []).map((e) => e.MessageDeduplicationId);
    expect(ids(retry.calls)).toEqual(ids(first.calls));
  });

  it("gives different ticks different deduplication ids", async () => {
    const a = recordingSender();
    const b = recordingSender();
    await dispatcher(1, a.send)({ scheduledTime: "2024-05-01T10:05:00Z" });
    await dispatcher(1, b.send)({ scheduledTime: "2024-05-01T10:10:00Z" });
    expect(a.calls[0]?.Entries?.[0]?.MessageDeduplicationId).toBe("mbx-0:20240501T1005Z");
    expect(b.calls[0]?.Entries?.[0]?.MessageDeduplicationId).toBe("mbx-0:20240501T1010Z");
  });

  it("takes the tick from an EventBridge rule event's time", async () => {
    const { calls, send } = recordingSender();
    await dispatcher(1, send)({ "detail-type": "Scheduled Event", time: "2024-05-01T11:00:00Z" });
    expect(calls[0]?.Entries?.[0]?.MessageDeduplicationId).toBe("mbx-0:20240501T1100Z");
  });

  it("uses the invocation time floored to the minute for a manual invoke", async () => {
    const { calls, send } = recordingSender();
    await dispatcher(1, send, new Date("2024-05-01T10:07:42.900Z"))({});
    expect(calls[0]?.Entries?.[0]?.MessageDeduplicationId).toBe("mbx-0:20240501T1007Z");
  });

  it("fails with CONFIG_INVALID naming the field when the mailbox config is invalid", async () => {
    output = captureOutput();
    const handler = createDispatcher({
      loadConfig: createConfigLoader(
        { MAIL_INGEST_CONFIG: JSON.stringify({ mailboxes: [{ id: "bad id!", host: "h" }] }) },
        async () => undefined,
      ),
      sendMessageBatch: recordingSender().send,
      jobsQueueUrl: QUEUE,
      logger: new Logger({ serviceName: "test" }),
    });
    await expect(handler({})).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: expect.stringContaining("mailboxes[0].id"),
    });
  });

  it("reads the config from the SSM parameter named by MAIL_INGEST_CONFIG_PARAMETER, with the cache age", async () => {
    const asked: Array<[string, number]> = [];
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG_PARAMETER: "/mail-ingest/config", CONFIG_CACHE_SECONDS: "120" },
      async (name, maxAge) => {
        asked.push([name, maxAge]);
        return configJson(2);
      },
    );
    const config = await load();
    expect(config.mailboxes.map((m) => m.id)).toEqual(["mbx-0", "mbx-1"]);
    expect(asked).toEqual([["/mail-ingest/config", 120]]);
  });

  it("reads no environment until the first invocation", () => {
    const reads: PropertyKey[] = [];
    const env = new Proxy<NodeJS.ProcessEnv>(
      {},
      {
        get(_target, key) {
          reads.push(key);
          return undefined;
        },
      },
    );
    const handler = createDispatcher(defaultDispatcherDeps(env));
    expect(typeof handler).toBe("function");
    expect(reads).toEqual([]);
  });
});

describe("sendJobs", () => {
  it("resends only the entries a batch reports as failed", async () => {
    const calls: SendMessageBatchCommandInput[] = [];
    const send: SendMessageBatch = async (input) => {
      calls.push(input);
      return calls.length === 1
        ? {
            Successful: [{ Id: "0" }],
            Failed: [{ Id: "1", Code: "InternalError", SenderFault: false }],
          }
        : { Successful: [{ Id: "0" }] };
    };
    await sendJobs(send, QUEUE, [
      { mailboxId: "a", tick: "20240501T1005Z" },
      { mailboxId: "b", tick: "20240501T1005Z" },
    ]);
    expect(calls.map((c) => c.Entries?.map((e) => e.MessageGroupId))).toEqual([["a", "b"], ["b"]]);
  });

  it("fails with QUEUE_FAILED when SQS rejects an entry as the sender's fault", async () => {
    const send: SendMessageBatch = async () => ({
      Failed: [{ Id: "0", Code: "InvalidParameterValue", SenderFault: true, Message: "bad" }],
    });
    const err = await sendJobs(send, QUEUE, [{ mailboxId: "a", tick: "20240501T1005Z" }]).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MailIngestError);
    expect((err as MailIngestError).code).toBe(ErrorCode.QUEUE_FAILED);
  });
});
