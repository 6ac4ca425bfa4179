/**
 * The queues. Every queue is built by {@link secureQueue}: encrypted, TLS-only, with a retention,
 * and (unless it is a DLQ) redriving to its DLQ.
 */
import { Duration } from "aws-cdk-lib";
import type { IKey } from "aws-cdk-lib/aws-kms";
import {
  DeduplicationScope,
  FifoThroughputLimit,
  type IQueue,
  Queue,
  QueueEncryption,
  type QueueProps,
} from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";

/** AWS guidance for SQS event sources: visibility timeout at least 6x the function timeout. */
const VISIBILITY_TIMEOUT_FACTOR = 6;
/**
 * Receives before a job is dead-lettered. At least 5 (AWS guidance for Lambda event sources): a
 * receive that Lambda throttles, or that meets a transient fault, counts like a real failure.
 */
export const JOBS_MAX_RECEIVE_COUNT = 5;

export interface SecureQueueOptions {
  /** SSE-KMS with this key; else SSE-SQS. */
  readonly encryptionKey?: IKey;
  readonly retentionPeriod: Duration;
  readonly deadLetterQueue?: { readonly queue: IQueue; readonly maxReceiveCount: number };
  /** FIFO and the other settings that differ per queue; never the security ones. */
  readonly extra?: Omit<
    QueueProps,
    "encryption" | "encryptionMasterKey" | "enforceSSL" | "retentionPeriod" | "deadLetterQueue"
  >;
}

/** The one queue builder: encryption, enforced TLS, retention and DLQ in one place. */
export function secureQueue(scope: Construct, id: string, options: SecureQueueOptions): Queue {
  return new Queue(scope, id, {
    ...options.extra,
    ...(options.encryptionKey
      ? { encryption: QueueEncryption.KMS, encryptionMasterKey: options.encryptionKey }
      : { encryption: QueueEncryption.SQS_MANAGED }),
    enforceSSL: true,
    retentionPeriod: options.retentionPeriod,
    deadLetterQueue: options.deadLetterQueue,
  });
}

export interface QueuesOptions {
  /** Use this output queue instead of creating one and its DLQ. */
  readonly outputQueue?: IQueue;
  readonly encryptionKey?: IKey;
  /** Retention of the output queue and of every DLQ. */
  readonly retention: Duration;
  /** The poller's timeout, from which the jobs visibility timeout follows. */
  readonly pollerTimeout: Duration;
  /** The output queue's maximum message size, bytes (only set on a queue created here). */
  readonly outputMaxMessageBytes: number;
}

export interface Queues {
  readonly outputQueue: IQueue;
  readonly outputDlq?: Queue;
  readonly jobsQueue: Queue;
  readonly jobsDlq: Queue;
  /**
   * Ticks that never ran: the scheduler's failed deliveries and the dispatcher's failed
   * asynchronous invocations. Standard, since neither sender can write to a FIFO queue.
   */
  readonly dispatchDlq: Queue;
}

export function createQueues(scope: Construct, options: QueuesOptions): Queues {
  const { encryptionKey, retention } = options;
  let outputQueue = options.outputQueue;
  let outputDlq: Queue | undefined;
  if (!outputQueue) {
    outputDlq = secureQueue(scope, "OutputDlq", { encryptionKey, retentionPeriod: retention });
    outputQueue = secureQueue(scope, "OutputQueue", {
      encryptionKey,
      retentionPeriod: retention,
      deadLetterQueue: { queue: outputDlq, maxReceiveCount: 5 },
      extra: { maxMessageSizeBytes: options.outputMaxMessageBytes },
    });
  }
  const jobsDlq = secureQueue(scope, "JobsDlq", {
    encryptionKey,
    retentionPeriod: retention,
    extra: { fifo: true },
  });
  const jobsQueue = secureQueue(scope, "JobsQueue", {
    encryptionKey,
    // The poller drops a scheduled job older than one period (a newer tick has enqueued its
    // successor); the day of retention only bounds what a stopped poller leaves behind.
    retentionPeriod: Duration.days(1),
    deadLetterQueue: { queue: jobsDlq, maxReceiveCount: JOBS_MAX_RECEIVE_COUNT },
    extra: {
      fifo: true,
      // The dispatcher sets an explicit dedup id per mailbox and tick.
      contentBasedDeduplication: false,
      // High-throughput FIFO: limits apply per mailbox, not per queue, so thousands can fan out.
      deduplicationScope: DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      visibilityTimeout: Duration.seconds(
        options.pollerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR,
      ),
    },
  });
  const dispatchDlq = secureQueue(scope, "DispatchDlq", {
    encryptionKey,
    retentionPeriod: retention,
  });
  return { outputQueue, outputDlq, jobsQueue, jobsDlq, dispatchDlq };
}
