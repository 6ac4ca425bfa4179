/**
 * The fleet case (`--fleet`): what an idle poll costs in Lambda terms, with one mailbox per
 * invocation against a batch of several polled at once (`mailboxesPerInvocation`). The poller
 * handler runs in this process, warm, as a Lambda container would run it: a private Dovecot over
 * implicit TLS (optionally behind a latency relay, as a remote server is), the S3 lease and state
 * on fauxqs with conditional PUTs (in a child process, so its CPU is not counted), nothing new on
 * the server. It reports the median invocation
 * time, the GB-seconds a poll costs at the poller's default memory, and the log bytes a poll
 * writes (what CloudWatch Logs bills), which are the README cost table's measured inputs.
 */
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSEvent, SQSRecord } from "aws-lambda";
import { s3Adapters } from "../lambdas/adapters/index.ts";
import { S3MailboxLease } from "../lambdas/adapters/object-lease.ts";
import { S3ObjectStore } from "../lambdas/adapters/s3-store.ts";
import { SqsQueue } from "../lambdas/adapters/sqs-queue.ts";
import { dovecotAvailable, startDovecot } from "../test/helpers/dovecot.ts";
import { envPasswordPoller, jobRecord, lambdaContext } from "../test/helpers/lambda.ts";
import { generateLargeMessage, generateMessage } from "../test/helpers/messages.ts";
import { startChild } from "./child-rpc.ts";
import { type LatencyProxy, startLatencyProxy } from "./latency-proxy.ts";
import { median } from "./stats.ts";

/** The poller's default memory (infra `pollerMemorySize`), GB as Lambda bills it. */
const POLLER_GB = 512 / 1024;

export interface FleetRow {
  readonly mailboxesPerInvocation: number;
  readonly invocations: number;
  readonly medianInvocationMs: number;
  /** Median invocation time ÷ mailboxes in it. */
  readonly msPerPoll: number;
  readonly gbSecondsPerPoll: number;
  /** Process CPU (user + system) per poll, ms: at 512 MiB Lambda gives ~0.29 vCPU, so this bounds the GB-s from below. */
  readonly cpuMsPerPoll: number;
  /** Bytes the handler wrote to stdout (JSON logs and EMF) per poll; Lambda adds ~0.3 KB per invocation. */
  readonly logBytesPerPoll: number;
}

/**
 * One invocation whose whole batch has mail: what the sessions side by side hold in memory,
 * against the poller's default 512 MiB.
 */
export interface BusyBatch {
  readonly mailboxes: number;
  readonly messages: number;
  readonly bytes: number;
  /** The one large message in the batch, bytes (fetched alone under the memory bound). */
  readonly largeBytes: number;
  readonly invocationMs: number;
  /** Peak RSS of this process during the invocation (sampled every 20 ms), MiB. */
  readonly peakRssMiB: number;
  /** RSS just before it, MiB. */
  readonly baseRssMiB: number;
}

export type FleetOutcome =
  | {
      readonly ok: true;
      readonly rttMs: number;
      readonly rows: readonly FleetRow[];
      readonly busy?: BusyBatch;
    }
  | { readonly ok: false; readonly reason: string };

function mail(user: string, n: number): Buffer {
  return Buffer.from(
    `From: a@example.com\r\nTo: ${user}@example.com\r\nSubject: idle ${n}\r\n` +
      `Message-ID: <${user}-${n}@example.com>\r\nDate: Wed, 01 May 2024 10:00:00 +0000\r\n\r\nbody ${n}\r\n`,
  );
}

/** The dispatcher's tick id (`YYYYMMDDTHHMMZ`) of the `n`th 5-minute tick from a fixed start. */
function tickId(n: number): string {
  const at = new Date(Date.UTC(2024, 4, 1) + n * 5 * 60_000).toISOString();
  return `${at.slice(0, 4)}${at.slice(5, 7)}${at.slice(8, 10)}T${at.slice(11, 13)}${at.slice(14, 16)}Z`;
}

/** The jobs queue's record of mailbox `mailboxId`'s `tick`th poll. */
function record(mailboxId: string, tick: number): SQSRecord {
  const job = JSON.stringify({ mailboxId, tick: tickId(tick) });
  return jobRecord(job, mailboxId, `${mailboxId}-${tick}`);
}

/**
 * Runs `fn` with stdout and stderr swallowed and counted: the handler's logs would drown the
 * report, and their size is what CloudWatch Logs bills.
 */
async function counted<T>(fn: () => Promise<T>): Promise<{ value: T; bytes: number }> {
  const streams = [process.stdout, process.stderr];
  const writes = streams.map((s) => s.write);
  let bytes = 0;
  for (const stream of streams) {
    stream.write = ((chunk: string | Uint8Array) => {
      bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.byteLength;
      return true;
    }) as typeof stream.write;
  }
  try {
    return { value: await fn(), bytes };
  } finally {
    streams.forEach((stream, i) => {
      stream.write = writes[i] as typeof stream.write;
    });
  }
}

export async function fleetFigures(options: {
  readonly mailboxes: number;
  readonly rounds: number;
  readonly rttMs: number;
  /** Also run one invocation whose every mailbox has mail, one of them a large message. */
  readonly busy?: { readonly messagesEach: number; readonly largeBytes: number };
}): Promise<FleetOutcome> {
  if (!dovecotAvailable()) return { ok: false, reason: "Dovecot is not installed" };
  const users = Array.from({ length: options.mailboxes }, (_, i) => ({
    user: `idle${i}`,
    password: `pw-idle${i}`,
  }));
  const [dovecot, fauxqs] = await Promise.all([
    startDovecot({ users }),
    startChild<{ endpoint: string; region: string }>("./fauxqs-server.ts"),
  ]);
  let proxy: LatencyProxy | undefined;
  try {
    if (options.rttMs > 0) {
      proxy = await startLatencyProxy(
        { host: dovecot.host, port: dovecot.pop3sPort },
        options.rttMs,
      );
    }
    for (const { user } of users)
      await dovecot.deliver(
        user,
        [1, 2, 3].map((n) => mail(user, n)),
      );
    const { bucket, queueUrl } = await fauxqs.call<{ bucket: string; queueUrl: string }>("create");
    const clientConfig = {
      endpoint: fauxqs.info.endpoint,
      region: fauxqs.info.region,
      credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
    };
    const s3 = new S3Client({ ...clientConfig, forcePathStyle: true });
    const sqs = new SQSClient(clientConfig);
    const adapters = {
      ...s3Adapters(s3, bucket, "", { S3ObjectStore, S3MailboxLease }),
      queue: new SqsQueue({ client: sqs, queueUrl }),
    };
    const config = JSON.stringify({
      mailboxes: users.map(({ user }) => ({
        id: user,
        host: dovecot.host,
        port: proxy?.port ?? dovecot.pop3sPort,
        tls: "implicit",
        ca: dovecot.caPem,
        servername: "localhost",
        username: user,
        password: { env: `PW_${user}` },
        delete: "never",
      })),
    });
    const handler = envPasswordPoller({
      config,
      adapters,
      sqs,
      // Only continuations go there, and an idle poll sends none.
      jobsQueueUrl: queueUrl,
      env: Object.fromEntries(users.map(({ user, password }) => [`PW_${user}`, password])),
      serviceName: "mail-ingest",
    });
    const invoke = async (ids: readonly string[], tick: number) => {
      const event: SQSEvent = { Records: ids.map((id) => record(id, tick)) };
      const result = await handler(
        event,
        lambdaContext(() => 300_000, "bench"),
      );
      if (result.batchItemFailures.length > 0) {
        throw new Error(`fleet bench: a poll failed: ${JSON.stringify(result.batchItemFailures)}`);
      }
    };
    const ids = users.map((u) => u.user);
    let tick = 0;
    // Untimed: the first poll ingests, the second folds its state delta; then every poll is idle.
    await counted(async () => {
      for (let i = 0; i < 2; i++) await invoke(ids, tick++);
    });
    const rows: FleetRow[] = [];
    for (const size of [1, options.mailboxes]) {
      const times: number[] = [];
      let bytes = 0;
      let polls = 0;
      const cpu = process.cpuUsage();
      for (let round = 0; round < options.rounds; round++) {
        for (let at = 0; at < ids.length; at += size) {
          const batch = ids.slice(at, at + size);
          const out = await counted(async () => {
            const started = performance.now();
            await invoke(batch, tick++);
            return performance.now() - started;
          });
          times.push(out.value);
          bytes += out.bytes;
          polls += batch.length;
        }
      }
      const used = process.cpuUsage(cpu);
      const invocationMs = median(times);
      rows.push({
        mailboxesPerInvocation: size,
        invocations: times.length,
        medianInvocationMs: invocationMs,
        msPerPoll: invocationMs / size,
        gbSecondsPerPoll: ((invocationMs / size) * POLLER_GB) / 1000,
        cpuMsPerPoll: (used.user + used.system) / 1000 / polls,
        logBytesPerPoll: bytes / polls,
      });
    }
    let busy: BusyBatch | undefined;
    if (options.busy) {
      const { messagesEach, largeBytes } = options.busy;
      let bytes = 0;
      for (const [u, id] of ids.entries()) {
        const batch = Array.from({ length: messagesEach }, (_, i) =>
          generateMessage(100_000 + u * messagesEach + i),
        );
        for (const m of batch) bytes += m.length;
        await dovecot.deliver(id, batch);
      }
      await dovecot.deliverStream(ids[0] as string, generateLargeMessage(largeBytes, 2));
      const baseRss = process.memoryUsage.rss();
      let peakRss = baseRss;
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage.rss());
      }, 20);
      try {
        const out = await counted(async () => {
          const started = performance.now();
          await invoke(ids, tick++);
          return performance.now() - started;
        });
        peakRss = Math.max(peakRss, process.memoryUsage.rss());
        busy = {
          mailboxes: ids.length,
          messages: ids.length * messagesEach + 1,
          bytes: bytes + largeBytes,
          largeBytes,
          invocationMs: out.value,
          peakRssMiB: peakRss / 2 ** 20,
          baseRssMiB: baseRss / 2 ** 20,
        };
      } finally {
        clearInterval(sampler);
      }
    }
    return { ok: true, rttMs: options.rttMs, rows, ...(busy ? { busy } : {}) };
  } finally {
    await proxy?.close();
    await Promise.all([dovecot.stop(), fauxqs.stop()]);
  }
}
