/**
 * Poll jobs on the SQS FIFO jobs queue: their shape, their FIFO group and deduplication ids, and
 * sending them in SendMessageBatch-sized chunks. Shared by the dispatcher (one job per mailbox per
 * schedule tick) and the poller (continuations).
 */

import {
  type SendBatchesOptions,
  type SendMessageBatch,
  sendBatches,
} from "../adapters/sqs-batch.ts";
import { isValidMailboxId } from "../config/index.ts";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { isRecord } from "../util/is-record.ts";

/** The body of one jobs-queue message. */
export interface PollJob {
  readonly mailboxId: string;
  /** The schedule tick this job (or the chain it continues) belongs to, `YYYYMMDDTHHmmZ`. */
  readonly tick: string;
  /**
   * The scheduled instant of the tick, ISO-8601 with seconds (the tick itself is floored to the
   * minute). The poller drops a scheduled job older than one period by it; jobs from a dispatcher
   * that predates this field are judged by the tick.
   */
  readonly scheduledAt?: string;
  /** 1, 2, … for jobs a poller enqueued because a run stopped with mail left over. */
  readonly continuation?: number;
  /**
   * Ids of messages the previous run of this chain could not download before its deadline; one
   * that stalls again is reported (see the poller).
   */
  readonly stalled?: readonly string[];
}

/** Stalled ids carried per job: enough to recognise a repeat, never a large job body. */
export const MAX_STALLED_IDS = 20;
const MESSAGE_ID = /^[0-9a-f]{32}$/;

const TICK_PATTERN = /^\d{8}T\d{4}Z$/;
/** What `Date.prototype.toISOString` writes; nothing else is accepted from a job body. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** `2024-05-01T10:05:59.123Z` -> `20240501T1005Z`: one id per minute. */
export function formatTick(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace(/[-:]/g, "")}Z`;
}

/**
 * The schedule tick an invocation belongs to. EventBridge Scheduler passes
 * `<aws.scheduler.scheduled-time>` (the infra maps it to `scheduledTime`); an EventBridge rule
 * event carries `time`. Both are the *scheduled* instant, identical across the Scheduler's
 * at-least-once retries, which is what makes the per-tick deduplication id work. Without either
 * (a manual invoke) the invocation time, floored to the minute, stands in.
 */
export function scheduleTick(event: unknown, now: Date): string {
  return formatTick(scheduledInstant(event, now));
}

/** The scheduled instant behind {@link scheduleTick}, to the millisecond. */
export function scheduledInstant(event: unknown, now: Date): Date {
  if (isRecord(event)) {
    for (const key of ["scheduledTime", "time"]) {
      const value = event[key];
      if (typeof value === "string") {
        const ms = Date.parse(value);
        if (Number.isFinite(ms)) return new Date(ms);
      }
    }
  }
  return now;
}

/**
 * When a job was scheduled, epoch ms: its `scheduledAt`, else the start of its tick's minute
 * (which can only make an old job look older, by under a minute).
 */
export function jobScheduledAt(job: PollJob): number {
  if (job.scheduledAt !== undefined) return Date.parse(job.scheduledAt);
  const t = job.tick;
  return Date.UTC(
    Number(t.slice(0, 4)),
    Number(t.slice(4, 6)) - 1,
    Number(t.slice(6, 8)),
    Number(t.slice(9, 11)),
    Number(t.slice(11, 13)),
  );
}

/**
 * FIFO deduplication id (≤128 chars; mailbox ids are ≤64). SQS drops a second message with the same
 * id within 5 minutes, so a retried dispatcher or poller never doubles a job.
 */
export function jobDeduplicationId(job: PollJob): string {
  return job.continuation
    ? `${job.mailboxId}:${job.tick}:c${job.continuation}`
    : `${job.mailboxId}:${job.tick}`;
}

/** Validates a jobs-queue message body; a malformed one is a poison message. */
export function parseJob(body: string): PollJob {
  const fail = (problem: string) =>
    new MailIngestError(ErrorCode.JOB_INVALID, `poll job: ${problem}`);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw fail("body is not JSON");
  }
  if (!isRecord(json)) throw fail("body must be a JSON object");
  const { mailboxId, tick, scheduledAt, continuation, stalled } = json;
  if (typeof mailboxId !== "string" || !isValidMailboxId(mailboxId)) {
    throw fail("mailboxId is missing or invalid");
  }
  if (typeof tick !== "string" || !TICK_PATTERN.test(tick))
    throw fail("tick is missing or invalid");
  if (
    scheduledAt !== undefined &&
    (typeof scheduledAt !== "string" ||
      !ISO_INSTANT.test(scheduledAt) ||
      !Number.isFinite(Date.parse(scheduledAt)))
  ) {
    throw fail("scheduledAt must be an ISO-8601 instant");
  }
  const base = scheduledAt === undefined ? { mailboxId, tick } : { mailboxId, tick, scheduledAt };
  if (continuation === undefined) return base;
  if (typeof continuation !== "number" || !Number.isInteger(continuation) || continuation < 1) {
    throw fail("continuation must be a positive integer");
  }
  if (stalled === undefined) return { ...base, continuation };
  if (
    !Array.isArray(stalled) ||
    stalled.length > MAX_STALLED_IDS ||
    !stalled.every((id) => typeof id === "string" && MESSAGE_ID.test(id))
  ) {
    throw fail(`stalled must be at most ${MAX_STALLED_IDS} message ids`);
  }
  return { ...base, continuation, stalled };
}

export type { SendMessageBatch } from "../adapters/sqs-batch.ts";

/**
 * Sends jobs to the FIFO jobs queue through the shared batch sender (its retry rule is in
 * `sqs-batch.ts`). Retries are safe: the deduplication id makes a resend a no-op.
 */
export async function sendJobs(
  send: SendMessageBatch,
  queueUrl: string,
  jobs: readonly PollJob[],
  options: Omit<SendBatchesOptions, "label"> = {},
): Promise<void> {
  await sendBatches(
    send,
    queueUrl,
    jobs.map((job) => ({
      key: jobDeduplicationId(job),
      entry: {
        MessageBody: JSON.stringify(job),
        // One group per mailbox: FIFO delivers a group's next message only after the previous one
        // is deleted, so no two pollers ever hold the same maildrop (POP3 locks it, RFC 1939 §8).
        MessageGroupId: job.mailboxId,
        MessageDeduplicationId: jobDeduplicationId(job),
      },
    })),
    { ...options, label: "jobs queue" },
  );
}
