import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { s3Adapters } from "../../lambdas/adapters/index.ts";
import { S3MailboxLease } from "../../lambdas/adapters/object-lease.ts";
import { S3ObjectStore } from "../../lambdas/adapters/s3-store.ts";
import { SqsQueue } from "../../lambdas/adapters/sqs-queue.ts";
import { type DovecotHandle, describeDovecot, startDovecot } from "../helpers/dovecot.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { envPasswordPoller, jobRecord } from "../helpers/lambda.ts";
import { type Captured, captureOutput, lambdaContext } from "../unit/handlers/capture.ts";

type Counts = Record<string, number>;

/** Counts each command sent through `client` (once per command, before retries) into `counts`. */
function countRequests(client: S3Client | SQSClient, counts: Counts): void {
  const stack = client.middlewareStack as {
    add(
      middleware: (
        next: (args: unknown) => Promise<unknown>,
        context: { commandName?: string },
      ) => (args: unknown) => Promise<unknown>,
      options: { step: "initialize"; name: string },
    ): void;
  };
  stack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? "unknown";
      counts[name] = (counts[name] ?? 0) + 1;
      return next(args);
    },
    { step: "initialize", name: "countRequests" },
  );
}

function mail(n: number): Buffer {
  return Buffer.from(
    `From: a@example.com\r\nTo: idle@example.com\r\nSubject: idle ${n}\r\n` +
      `Message-ID: <idle-${n}@example.com>\r\nDate: Wed, 01 May 2024 10:00:00 +0000\r\n\r\nbody ${n}\r\n`,
  );
}

describeDovecot("requests of an idle poll (poller, S3 lease and state, fauxqs)", () => {
  let dovecot: DovecotHandle;
  let fauxqs: Fauxqs;
  let output: Captured | undefined;
  const s3Counts: Counts = {};
  const sqsCounts: Counts = {};
  let poll: (tick: number) => Promise<unknown>;

  beforeAll(async () => {
    [dovecot, fauxqs] = await Promise.all([
      startDovecot({ users: [{ user: "idle", password: "pw-idle" }] }),
      // The lease relies on conditional PUTs; fauxqs ignores them unless told.
      startFauxqs({ conditionalPuts: true }),
    ]);
    const bucket = await fauxqs.createBucket();
    const jobsQueue = await fauxqs.createQueue("jobs", { fifo: true });
    const outputQueue = await fauxqs.createQueue("output");
    const s3 = new S3Client(fauxqs.clientConfig);
    const sqs = new SQSClient(fauxqs.clientConfig);
    countRequests(s3, s3Counts);
    countRequests(sqs, sqsCounts);
    // What createAdapters builds for `{type: "s3"}` + `{type: "sqs"}`, on the counting clients.
    const adapters = {
      ...s3Adapters(s3, bucket, "", { S3ObjectStore, S3MailboxLease }),
      queue: new SqsQueue({ client: sqs, queueUrl: outputQueue }),
    };
    const config = JSON.stringify({
      mailboxes: [
        {
          id: "idle",
          host: dovecot.host,
          port: dovecot.pop3sPort,
          tls: "implicit",
          ca: dovecot.caPem,
          servername: "localhost",
          username: "idle",
          password: { env: "IDLE_PASSWORD" },
          // Kept on the server, so every later poll sees known messages and nothing new.
          delete: "never",
        },
      ],
    });
    const handler = envPasswordPoller({
      config,
      adapters,
      sqs,
      jobsQueueUrl: jobsQueue,
      env: { IDLE_PASSWORD: "pw-idle" },
      serviceName: "test",
    });
    poll = (tick) => {
      const job = JSON.stringify({ mailboxId: "idle", tick: `20240501T10${tick}0Z` });
      const event: SQSEvent = { Records: [jobRecord(job, "idle", `m${tick}`, `r${tick}`)] };
      return handler(
        event,
        lambdaContext(() => 60_000),
      );
    };
    await dovecot.deliver("idle", [1, 2, 3].map(mail));
  });
  afterAll(async () => {
    await dovecot?.stop();
    await fauxqs?.stop();
  });
  afterEach(() => {
    output?.restore();
    output = undefined;
  });

  function reset(): void {
    for (const counts of [s3Counts, sqsCounts])
      for (const k of Object.keys(counts)) delete counts[k];
  }

  it("ingests, then polls idle with a fixed, small number of requests", async () => {
    output = captureOutput();
    expect(await poll(1)).toEqual({ batchItemFailures: [] });
    expect(output.emf()[0]).toMatchObject({ MessagesIngested: 3 });

    // The first idle poll after mail arrived may tidy up what the busy one left.
    reset();
    expect(await poll(2)).toEqual({ batchItemFailures: [] });
    const afterBusy = { s3: { ...s3Counts }, sqs: { ...sqsCounts } };

    // Steady state: the poll the fleet repeats every period.
    for (const tick of [3, 4]) {
      reset();
      expect(await poll(tick)).toEqual({ batchItemFailures: [] });
      // The shared lease (GET, reused without a write), the state snapshot (GET) and its dirty
      // marker (HEAD, absent). No PUT, no LIST: S3 bills those 12.5 times a GET. No SQS request:
      // nothing is queued, and the job's receive and delete are the event source's.
      expect({ s3: { ...s3Counts }, sqs: { ...sqsCounts } }).toEqual({
        s3: { GetObjectCommand: 2, HeadObjectCommand: 1 },
        sqs: {},
      });
    }
    // Once after mail arrived: the delta is folded into the snapshot (LIST, GET, PUT) and the
    // delta and the dirty marker deleted (free), so the polls after it take the idle path.
    expect(afterBusy).toEqual({
      s3: {
        GetObjectCommand: 3,
        HeadObjectCommand: 1,
        ListObjectsV2Command: 1,
        PutObjectCommand: 1,
        DeleteObjectCommand: 2,
      },
      sqs: {},
    });
    expect(
      output
        .emf()
        .slice(1)
        .map((b) => b.MessagesIngested),
    ).toEqual([0, 0, 0]);
  });
});
