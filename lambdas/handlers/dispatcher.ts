/**
 * The dispatcher Lambda: invoked by the EventBridge Scheduler schedule, it enqueues one poll job
 * per configured mailbox onto the SQS FIFO jobs queue. The group id (mailbox) serialises sessions
 * per maildrop; the deduplication id (mailbox + tick) makes Scheduler retries harmless.
 */
import { Logger } from "@aws-lambda-powertools/logger";
import { getParameter } from "@aws-lambda-powertools/parameters/ssm";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { Context } from "aws-lambda";
import {
  type AppConfig,
  createConfigLoader,
  EnvDefaults,
  LambdaEnv,
  requireEnv,
} from "../config/index.ts";
import {
  formatTick,
  type PollJob,
  type SendMessageBatch,
  scheduledInstant,
  sendJobs,
} from "./jobs.ts";
import { lazy } from "./runtime.ts";

export interface DispatcherDeps {
  readonly loadConfig: () => Promise<AppConfig>;
  readonly sendMessageBatch: SendMessageBatch;
  readonly jobsQueueUrl: string;
  readonly logger: Logger;
  readonly now?: () => Date;
}

export interface DispatchResult {
  readonly tick: string;
  /** Jobs sent, one per mailbox. */
  readonly jobs: number;
}

export function createDispatcher(deps: DispatcherDeps) {
  return async (event: unknown, context?: Context): Promise<DispatchResult> => {
    const { logger } = deps;
    if (context) logger.addContext(context);
    const scheduled = scheduledInstant(event, (deps.now ?? (() => new Date()))());
    const tick = formatTick(scheduled);
    const scheduledAt = scheduled.toISOString();
    const config = await deps.loadConfig();
    const jobs: PollJob[] = config.mailboxes.map((mailbox) => ({
      mailboxId: mailbox.id,
      tick,
      scheduledAt,
    }));
    await sendJobs(deps.sendMessageBatch, deps.jobsQueueUrl, jobs);
    logger.info("dispatched poll jobs", { tick, jobs: jobs.length });
    return { tick, jobs: jobs.length };
  };
}

/**
 * Production wiring. Nothing here runs at import: each getter reads the environment and builds its
 * client on first use, inside the first invocation (Powertools style), then reuses it.
 */
export function defaultDispatcherDeps(env: NodeJS.ProcessEnv = process.env): DispatcherDeps {
  const sqs = lazy(() => new SQSClient({}));
  const logger = lazy(
    () =>
      new Logger({
        serviceName: env[LambdaEnv.powertoolsServiceName] ?? EnvDefaults.serviceName,
      }),
  );
  const loadConfig = lazy(() =>
    createConfigLoader(env, (name, maxAge) => getParameter(name, { maxAge })),
  );
  return {
    loadConfig: () => loadConfig()(),
    sendMessageBatch: (input) => sqs().send(new SendMessageBatchCommand(input)),
    get jobsQueueUrl() {
      return requireEnv(env, LambdaEnv.jobsQueueUrl);
    },
    get logger() {
      return logger();
    },
  };
}

export const handler = createDispatcher(defaultDispatcherDeps());
