import { mkdtemp, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { EventBridgeFanout } from "../../lambdas/adapters/eventbridge-fanout.ts";
import { FsQueue } from "../../lambdas/adapters/fs-queue.ts";
import { SqsQueue } from "../../lambdas/adapters/sqs-queue.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { mockEventBridge } from "../unit/adapters/mock-aws.ts";
import { queueContract } from "./queue.contract.ts";

queueContract("FsQueue", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mail-ingest-queue-"));
  const queue = new FsQueue({ dir });
  return {
    queue,
    async receiveAll() {
      const bodies: string[] = [];
      for await (const entry of queue.entries()) {
        bodies.push(entry.body);
        await unlink(join(dir, `${entry.id}.json`));
      }
      return bodies;
    },
    dedupesById: true,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

let fauxqs: Fauxqs;
/** SendMessageBatch requests since the current test began. */
let batchCalls = 0;

beforeAll(async () => {
  fauxqs = await startFauxqs();
  fauxqs.sqs.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "SendMessageBatchCommand") batchCalls += 1;
      return next(args);
    },
    { step: "initialize", name: "countSendMessageBatch" },
  );
});

afterAll(async () => {
  await fauxqs?.stop();
});

for (const fifo of [false, true]) {
  queueContract(`SqsQueue on fauxqs (${fifo ? "FIFO" : "standard"})`, async () => {
    const queueUrl = await fauxqs.createQueue(undefined, { fifo });
    batchCalls = 0;
    const queue = new SqsQueue({ client: fauxqs.sqs, queueUrl });
    return {
      queue,
      receiveAll: async () => (await fauxqs.receiveAll(queueUrl)).map((m) => m.Body ?? ""),
      batchCalls: () => batchCalls,
      dedupesById: fifo,
      cleanup: async () => undefined,
    };
  });
}

// fauxqs has no EventBridge, so the bus is the real SDK client with a scripted PutEvents that
// records each event's Detail and, like EventBridge, refuses more than 10 entries per call. The
// wrapped queue is real SQS on fauxqs (standard: at-least-once, as EventBridge itself is).
queueContract("EventBridgeFanout over SqsQueue on fauxqs", async () => {
  const queueUrl = await fauxqs.createQueue();
  batchCalls = 0;
  let published: string[] = [];
  const { client } = mockEventBridge(({ command, input }) => {
    if (command !== "PutEventsCommand") throw new Error(`unexpected ${command}`);
    const entries = input.Entries as Array<{ Detail?: string }>;
    if (entries.length > 10) throw new Error("ValidationException: at most 10 entries");
    published.push(...entries.map((e) => e.Detail ?? ""));
    return { FailedEntryCount: 0, Entries: entries.map((_, i) => ({ EventId: `event-${i}` })) };
  });
  const queue = new EventBridgeFanout({
    queue: new SqsQueue({ client: fauxqs.sqs, queueUrl }),
    client,
    eventBusName: "mail-ingest-contract",
  });
  return {
    queue,
    receiveAll: async () => (await fauxqs.receiveAll(queueUrl)).map((m) => m.Body ?? ""),
    takePublished: () => {
      const taken = published;
      published = [];
      return taken;
    },
    batchCalls: () => batchCalls,
    dedupesById: false,
    cleanup: async () => undefined,
  };
});
