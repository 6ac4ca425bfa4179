/**
 * Lambda fakes for the handler tests and the fleet bench (`bench/fleet.ts`): a context, the SQS
 * records the jobs queue's event source delivers, and a poller wired to real adapters with
 * passwords from the environment. No vitest here, so the bench can import it.
 */
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSRecord } from "aws-lambda";
import type { Adapters } from "../../lambdas/adapters/index.ts";
import { createConfigLoader } from "../../lambdas/config/index.ts";
import { createPoller } from "../../lambdas/handlers/poller.ts";
import { runMailbox } from "../../lambdas/ingest/session.ts";
import { TokenProvider } from "../../lambdas/secrets/oauth.ts";

/**
 * A Lambda context whose remaining time the caller controls. The function name goes into every
 * log line the handler writes (the fleet bench counts their bytes).
 */
export function lambdaContext(
  remainingMs: () => number,
  functionName = "mail-ingest-test",
): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: "512",
    awsRequestId: "req-1",
    logGroupName: "/aws/lambda/mail-ingest-test",
    logStreamName: "stream",
    getRemainingTimeInMillis: remainingMs,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** One record of the FIFO jobs queue, as the event source hands it to the poller. */
export function jobRecord(
  body: string,
  group: string,
  messageId: string,
  receiptHandle = "rh",
): SQSRecord {
  return {
    messageId,
    receiptHandle,
    body,
    attributes: {
      ApproximateReceiveCount: "1",
      SentTimestamp: "0",
      SenderId: "local",
      ApproximateFirstReceiveTimestamp: "0",
      MessageGroupId: group,
      MessageDeduplicationId: "d",
      SequenceNumber: "1",
    },
    messageAttributes: {},
    md5OfBody: "",
    eventSource: "aws:sqs",
    eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:jobs.fifo",
    awsRegion: "us-east-1",
  };
}

export interface EnvPasswordPollerOptions {
  /** MAIL_INGEST_CONFIG: its mailboxes take their passwords from `env`. */
  readonly config: string;
  readonly adapters: Adapters;
  /** Where continuations go (`jobsQueueUrl`). */
  readonly sqs: SQSClient;
  readonly jobsQueueUrl: string;
  readonly env: Readonly<Record<string, string>>;
  readonly serviceName: string;
}

/**
 * The poller handler with real adapters and env passwords: a secret or an OAuth token lookup
 * throws, since no mailbox here should need one. Ticks are never stale (an endless period).
 */
export function envPasswordPoller(options: EnvPasswordPollerOptions) {
  return createPoller({
    loadConfig: createConfigLoader({ MAIL_INGEST_CONFIG: options.config }, async () => undefined),
    adapters: () => options.adapters,
    sendMessageBatch: (input) => options.sqs.send(new SendMessageBatchCommand(input)),
    jobsQueueUrl: options.jobsQueueUrl,
    credentials: {
      env: options.env,
      getSecret: async () => {
        throw new Error("no secret here: the mailboxes' passwords come from the environment");
      },
      tokenProvider: new TokenProvider({
        persistRefreshToken: async () => {
          throw new Error("no OAuth mailbox here");
        },
      }),
    },
    runMailbox,
    logger: new Logger({ serviceName: options.serviceName }),
    createMetrics: () => new Metrics({ namespace: "MailIngest", serviceName: options.serviceName }),
    safetyMarginMs: 30_000,
    schedulePeriodSeconds: 1e10,
  });
}
