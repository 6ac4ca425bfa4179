import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { type Message, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { SQSEvent, SQSRecord } from "aws-lambda";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { ObjectStateStore } from "../../lambdas/adapters/object-state.ts";
import { S3ObjectStore } from "../../lambdas/adapters/s3-store.ts";
import { SqsQueue } from "../../lambdas/adapters/sqs-queue.ts";
import { createConfigLoader } from "../../lambdas/config/index.ts";
import { createDispatcher } from "../../lambdas/handlers/dispatcher.ts";
import { createPoller, type PollerDeps } from "../../lambdas/handlers/poller.ts";
import { runMailbox } from "../../lambdas/ingest/session.ts";
import { TokenProvider } from "../../lambdas/secrets/oauth.ts";
import { type DovecotHandle, describeDovecot, startDovecot } from "../helpers/dovecot.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { closedPort } from "../helpers/process.ts";
import { type Captured, captureOutput, lambdaContext } from "../unit/handlers/capture.ts";

const SAFETY_MARGIN_MS = 30_000;
const TICK_TIME = "2024-05-01T10:05:00Z";
const TICK = "20240501T1005Z";

/** A small RFC 5322 message, distinct per `n`. */
function mail(user: string, n: number): Buffer {
  return Buffer.from(
    `From: sender@example.com\r\nTo: ${user}@example.com\r\nSubject: handler test ${n}\r\n` +
      `Message-ID: <${user}-${n}@example.com>\r\nDate: Wed, 01 May 2024 10:00:00 +0000\r\n\r\n` +
      `body ${n}\r\n`,
  );
}

/** The SQS event Lambda would deliver for messages received from the jobs queue. */
function sqsEvent(messages: readonly Message[]): SQSEvent {
  const records = messages.map(
    (m): SQSRecord => ({
      messageId: m.MessageId ?? "",
      receiptHandle: m.ReceiptHandle ?? "",
      body: m.Body ?? "",
      attributes: {
        ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? "1",
        SentTimestamp: m.Attributes?.SentTimestamp ?? "0",
        SenderId: m.Attributes?.SenderId ?? "local",
        ApproximateFirstReceiveTimestamp: m.Attributes?.ApproximateFirstReceiveTimestamp ?? "0",
        MessageGroupId: m.Attributes?.MessageGroupId,
        MessageDeduplicationId: m.Attributes?.MessageDeduplicationId,
        SequenceNumber: m.Attributes?.SequenceNumber,
      },
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? "",
      eventSource: "aws:sqs",
      eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:jobs.fifo",
      awsRegion: "us-east-1",
    }),
  );
  return { Records: records };
}

function jobFor(messages: readonly Message[], mailboxId: string): Message {
  const found = messages.find((m) => m.Attributes?.MessageGroupId === mailboxId);
  if (!found) throw new Error(`no job for ${mailboxId}`);
  return found;
}

describeDovecot("Lambda handlers against Dovecot and fauxqs", () => {
  let dovecot: DovecotHandle;
  let fauxqs: Fauxqs;
  let jobsQueue: string;
  let outputQueue: string;
  let store: S3ObjectStore;
  let configJson: string;
  /** A Dovecot POP3S mailbox's connection fields, deleting after ingest. */
  let pop3s: Record<string, unknown>;
  let output: Captured | undefined;
  const users = [
    { user: "lam", password: "pw-lam-SECRET" },
    { user: "slow", password: "pw-slow-SECRET" },
    { user: "imapbox", password: "pw-imap-SECRET" },
    { user: "b1", password: "pw-b1-SECRET" },
    { user: "b2", password: "pw-b2-SECRET" },
    { user: "b3", password: "pw-b3-SECRET" },
    { user: "rot", password: "pw-rot-NEW" },
  ];
  /** The fake Secrets Manager (see the file comment). */
  const secrets: Record<string, string> = {
    "mail-ingest/lam": "pw-lam-SECRET",
    "mail-ingest/slow": JSON.stringify({ password: "pw-slow-SECRET" }),
    "mail-ingest/dead": "pw-dead-SECRET",
    "mail-ingest/imapbox": "pw-imap-SECRET",
    "mail-ingest/b1": "pw-b1-SECRET",
    "mail-ingest/b2": "pw-b2-SECRET",
    "mail-ingest/b3": "pw-b3-SECRET",
    "mail-ingest/rot": "pw-rot-NEW",
  };
  /**
   * What a container's secret cache still holds from before a rotation: served unless the read
   * asks to be fresh (the fake store's only cache).
   */
  const cached: Record<string, string> = { "mail-ingest/rot": "pw-rot-OLD" };

  beforeAll(async () => {
    [dovecot, fauxqs] = await Promise.all([startDovecot({ users }), startFauxqs()]);
    await dovecot.deliver(
      "lam",
      [1, 2, 3, 4, 5, 6].map((n) => mail("lam", n)),
    );
    await dovecot.deliver(
      "slow",
      [1, 2, 3, 4].map((n) => mail("slow", n)),
    );
    const bucket = await fauxqs.createBucket();
    jobsQueue = await fauxqs.createQueue("jobs", { fifo: true });
    outputQueue = await fauxqs.createQueue("output");
    store = new S3ObjectStore({ client: fauxqs.s3, bucket, prefix: "" });
    pop3s = {
      host: dovecot.host,
      port: dovecot.pop3sPort,
      tls: "implicit",
      ca: dovecot.caPem,
      servername: "localhost",
      delete: "after-ingest",
    };
    configJson = JSON.stringify({
      mailboxes: [
        { id: "lam", ...pop3s, username: "lam", password: { secretId: "mail-ingest/lam" } },
        { id: "slow", ...pop3s, username: "slow", password: { secretId: "mail-ingest/slow" } },
        {
          id: "dead",
          host: "127.0.0.1",
          port: await closedPort(),
          tls: "implicit",
          timeoutMs: 2000,
          username: "dead",
          password: { secretId: "mail-ingest/dead" },
        },
      ],
    });
  });
  afterAll(async () => {
    await dovecot?.stop();
    await fauxqs?.stop();
  });
  afterEach(() => {
    output?.restore();
    output = undefined;
  });

  const sendToJobs: PollerDeps["sendMessageBatch"] = (input) =>
    fauxqs.sqs.send(new SendMessageBatchCommand(input));

  function dispatcher(json = configJson) {
    return createDispatcher({
      loadConfig: createConfigLoader({ MAIL_INGEST_CONFIG: json }, async () => undefined),
      sendMessageBatch: sendToJobs,
      jobsQueueUrl: jobsQueue,
      logger: new Logger({ serviceName: "test" }),
    });
  }

  function poller(
    bucketStore: S3ObjectStore = store,
    periodSeconds = 1e10,
    outputMaxBytes?: number,
    json = configJson,
  ) {
    return createPoller({
      loadConfig: createConfigLoader({ MAIL_INGEST_CONFIG: json }, async () => undefined),
      // What createAdapters builds for `{type: "s3"}` + `{type: "sqs"}`, with fauxqs's clients.
      adapters: () => ({
        store: bucketStore,
        queue: new SqsQueue({
          client: fauxqs.sqs,
          queueUrl: outputQueue,
          // What OUTPUT_MAX_MESSAGE_BYTES becomes (see defaultPollerDeps).
          ...(outputMaxBytes === undefined ? {} : { maxBodyBytes: outputMaxBytes }),
        }),
        state: new ObjectStateStore({ store: bucketStore, prefix: "state/" }),
      }),
      sendMessageBatch: sendToJobs,
      jobsQueueUrl: jobsQueue,
      credentials: {
        getSecret: async (id, fresh) => {
          const value = (fresh ? undefined : cached[id]) ?? secrets[id];
          if (value === undefined) throw new Error(`ResourceNotFoundException: ${id}`);
          return value;
        },
        tokenProvider: new TokenProvider({
          persistRefreshToken: async () => {
            throw new Error("no OAuth mailbox in this test");
          },
        }),
      },
      runMailbox,
      logger: new Logger({ serviceName: "test" }),
      createMetrics: () => new Metrics({ namespace: "MailIngest", serviceName: "test" }),
      safetyMarginMs: SAFETY_MARGIN_MS,
      // The ticks here are fixed 2024 instants (their ids are asserted); only the stale-job test
      // below runs with the real period.
      schedulePeriodSeconds: periodSeconds,
    });
  }

  async function rawKeys(mailbox: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of store.list(`raw/${mailbox}/`)) keys.push(key);
    return keys;
  }

  it("feeds the dispatcher's FIFO jobs to the poller, which lands mail in S3 and the output queue", async () => {
    output = captureOutput();
    const dispatched = await dispatcher()(
      { scheduledTime: TICK_TIME },
      lambdaContext(() => 60_000),
    );
    expect(dispatched).toEqual({ tick: TICK, jobs: 3 });
    // A Scheduler retry of the same tick is deduplicated by the FIFO queue.
    await dispatcher()({ scheduledTime: TICK_TIME });
    const jobs = await fauxqs.receiveAll(jobsQueue);
    expect(jobs.map((j) => j.Attributes?.MessageGroupId).sort()).toEqual(["dead", "lam", "slow"]);
    expect(jobFor(jobs, "lam").Attributes?.MessageDeduplicationId).toBe(`lam:${TICK}`);

    const result = await poller()(
      sqsEvent([jobFor(jobs, "lam")]),
      lambdaContext(() => 300_000),
    );
    expect(result).toEqual({ batchItemFailures: [] });
    expect(await rawKeys("lam")).toHaveLength(6);
    const queued = await fauxqs.receiveAll(outputQueue);
    expect(queued).toHaveLength(6);
    expect(await dovecot.messageCount("lam")).toBe(0);
    // Drained: no continuation.
    expect(await fauxqs.receiveAll(jobsQueue)).toEqual([]);
    const emf = output.emf().find((o) => o.mailbox === "lam");
    expect(emf).toMatchObject({ MessagesIngested: 6, Backlog: 0 });
    expect(output.lines.join("\n")).not.toContain("pw-lam-SECRET");
  });

  it("runs an IMAP mailbox (two folders, moveTo) through the same dispatcher and poller, one FIFO group", async () => {
    await dovecot.deliver(
      "imapbox",
      [1, 2].map((n) => mail("imapbox", n)),
    );
    await dovecot.deliver(
      "imapbox",
      [3].map((n) => mail("imapbox", n)),
      "Junk",
    );
    const imapJson = JSON.stringify({
      mailboxes: [
        {
          id: "imapbox",
          protocol: "imap",
          host: dovecot.host,
          port: dovecot.imapsPort,
          ca: dovecot.caPem,
          servername: "localhost",
          username: "imapbox",
          password: { secretId: "mail-ingest/imapbox" },
          folders: ["INBOX", "\\Junk"],
          afterIngest: { moveTo: "Processed", create: true },
        },
      ],
    });
    expect(
      await dispatcher(imapJson)(
        { scheduledTime: TICK_TIME },
        lambdaContext(() => 60_000),
      ),
    ).toEqual({ tick: TICK, jobs: 1 });
    const jobs = await fauxqs.receiveAll(jobsQueue);
    expect(jobs.map((j) => j.Attributes?.MessageGroupId)).toEqual(["imapbox"]);
    const result = await poller(
      store,
      1e10,
      undefined,
      imapJson,
    )(
      sqsEvent([jobFor(jobs, "imapbox")]),
      lambdaContext(() => 300_000),
    );
    expect(result).toEqual({ batchItemFailures: [] });
    expect(await rawKeys("imapbox")).toHaveLength(3);
    // Moved out of INBOX (the helper counts INBOX's Maildir only).
    expect(await dovecot.messageCount("imapbox")).toBe(0);
    expect(await fauxqs.receiveAll(outputQueue)).toHaveLength(3);
  });

  it("enqueues a continuation when the deadline leaves no time, and the continuation drains the mailbox", async () => {
    output = captureOutput();
    await dispatcher()({ scheduledTime: "2024-05-01T10:10:00Z" });
    const jobs = await fauxqs.receiveAll(jobsQueue);
    // The Lambda has barely more than the safety margin left: the session must stop before RETR.
    const tight = lambdaContext(() => SAFETY_MARGIN_MS + 1);
    const first = await poller()(sqsEvent([jobFor(jobs, "slow")]), tight);
    expect(first).toEqual({ batchItemFailures: [] });
    expect(await rawKeys("slow")).toHaveLength(0);

    const continuations = await fauxqs.receiveAll(jobsQueue);
    expect(continuations).toHaveLength(1);
    const [continuation] = continuations;
    expect(continuation?.Attributes?.MessageGroupId).toBe("slow");
    expect(continuation?.Attributes?.MessageDeduplicationId).toBe("slow:20240501T1010Z:c1");
    expect(JSON.parse(continuation?.Body ?? "")).toEqual({
      mailboxId: "slow",
      tick: "20240501T1010Z",
      continuation: 1,
    });

    const second = await poller()(
      sqsEvent(continuations),
      lambdaContext(() => 300_000),
    );
    expect(second).toEqual({ batchItemFailures: [] });
    expect(await rawKeys("slow")).toHaveLength(4);
    expect(await fauxqs.receiveAll(jobsQueue)).toEqual([]);
  });

  it("lets the job of an unreachable mailbox succeed (the next tick retries) and counts it in PollFailures", async () => {
    output = captureOutput();
    await dovecot.deliver(
      "lam",
      [7].map((n) => mail("lam", n)),
    );
    await dispatcher()({ scheduledTime: "2024-05-01T10:15:00Z" });
    const jobs = await fauxqs.receiveAll(jobsQueue);
    const dead = jobFor(jobs, "dead");
    const result = await poller()(
      sqsEvent([dead, jobFor(jobs, "lam")]),
      lambdaContext(() => 300_000),
    );
    // A failed record would keep the jobs queue's 30-minute visibility timeout and hold the
    // mailbox's FIFO group; the connection failure waits for the next tick instead.
    expect(result).toEqual({ batchItemFailures: [] });
    expect(await rawKeys("lam")).toHaveLength(7);
    const failure = output
      .logs()
      .find((l) => l.mailbox === "dead" && /next scheduled tick/.test(String(l.message)));
    expect(failure).toMatchObject({ level: "WARN", code: "CONNECT_FAILED" });
    const emf = output.emf().find((o) => o.mailbox === "dead");
    expect(emf).toMatchObject({ PollFailures: 1 });
  });

  it("polls a batch of mailboxes in one invocation, and logs in again when a cached password was rotated", async () => {
    output = captureOutput();
    const ids = ["b1", "b2", "b3", "rot"];
    for (const id of ids)
      await dovecot.deliver(
        id,
        [1, 2].map((n) => mail(id, n)),
      );
    const batchJson = JSON.stringify({
      mailboxes: ids.map((id) => ({
        id,
        ...pop3s,
        username: id,
        password: { secretId: `mail-ingest/${id}` },
      })),
    });
    await dispatcher(batchJson)({ scheduledTime: "2024-05-01T10:20:00Z" });
    const jobs = await fauxqs.receiveAll(jobsQueue);
    expect(jobs).toHaveLength(4);
    const result = await poller(
      store,
      1e10,
      undefined,
      batchJson,
    )(
      sqsEvent(jobs),
      lambdaContext(() => 300_000),
    );
    expect(result).toEqual({ batchItemFailures: [] });
    for (const id of ids) {
      expect(await rawKeys(id)).toHaveLength(2);
      expect(await dovecot.messageCount(id)).toBe(0);
      const emf = output.emf().find((o) => o.mailbox === id);
      expect(emf).toMatchObject({ MessagesIngested: 2, Backlog: 0 });
      expect(output.emf().filter((o) => o.mailbox === id)).toHaveLength(1);
    }
    // Dovecot refused the cached password; the fresh read had the new one: no AuthFailures.
    expect(output.emf().find((o) => o.mailbox === "rot")?.AuthFailures).toBeUndefined();
    expect(output.lines.join("\n")).not.toMatch(/pw-(b\d|rot)-/);
  });

  it("sends the pointer form when the full body exceeds the output queue's configured maximum size", async () => {
    output = captureOutput();
    await dovecot.deliver("slow", [mail("slow", 5)]);
    await dispatcher()({ scheduledTime: "2024-05-01T10:30:00Z" });
    const job = jobFor(await fauxqs.receiveAll(jobsQueue), "slow");
    const result = await poller(
      store,
      1e10,
      2048,
    )(
      sqsEvent([job]),
      lambdaContext(() => 300_000),
    );
    expect(result).toEqual({ batchItemFailures: [] });
    // Earlier tests left their (full-form) messages in the queue; this run queued one.
    const pointers = (await fauxqs.receiveAll(outputQueue))
      .map((m) => m.Body ?? "")
      .filter((b) => JSON.parse(b).pointer === true);
    expect(pointers).toHaveLength(1);
    const body = JSON.parse(pointers[0] ?? "");
    expect(body).toMatchObject({ mailbox: "slow" });
    expect(body.meta.key).toBe(`meta/slow/${body.id}.json`);
    expect(Buffer.byteLength(pointers[0] ?? "")).toBeLessThanOrEqual(2048);
  });

  it("drops a scheduled job from the jobs queue that is older than one period, without polling", async () => {
    output = captureOutput();
    await dovecot.deliver("lam", [mail("lam", 8)]);
    await dispatcher()({ scheduledTime: "2024-05-01T10:25:00Z" });
    const job = jobFor(await fauxqs.receiveAll(jobsQueue), "lam");
    const before = await rawKeys("lam");
    const result = await poller(store, 300)(
      sqsEvent([job]),
      lambdaContext(() => 300_000),
    );
    expect(result).toEqual({ batchItemFailures: [] });
    expect(await rawKeys("lam")).toEqual(before);
    expect(output.emf().find((o) => o.mailbox === "lam")).toMatchObject({ StaleJobsDropped: 1 });
  });

  it("logs the cause chain of a failed session: a missing bucket names NoSuchBucket", async () => {
    output = captureOutput();
    await dispatcher()({ scheduledTime: "2024-05-01T10:20:00Z" });
    const job = jobFor(await fauxqs.receiveAll(jobsQueue), "lam");
    const missing = new S3ObjectStore({ client: fauxqs.s3, bucket: "no-such-bucket", prefix: "" });
    const result = await poller(missing)(
      sqsEvent([job]),
      lambdaContext(() => 300_000),
    );
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: job.MessageId }] });
    const errors = output.logs().filter((l) => l.mailbox === "lam" && l.level === "ERROR");
    expect(errors.map((l) => l.message)).toEqual([
      "mailbox session failed",
      "poll job failed; SQS will redeliver it",
    ]);
    for (const line of errors) {
      expect(line.error).toContain(
        "S3 failed to get state/lam/snapshot.json: NoSuchBucket: The specified bucket does not exist",
      );
    }
    expect(output.lines.join("\n")).not.toContain("pw-lam-SECRET");
  });
});
