/**
 * The names infra and the handlers agree on: environment variables, the deployed config file and
 * the CloudWatch metrics the alarms watch.
 */

import { EnvDefaults, LambdaEnv, PollerMetric } from "../lambdas/config/index.ts";

/**
 * Environment variable names the construct sets: the handlers' own contract
 * (`lambdas/config/env.ts`), so a rename cannot leave one side behind.
 */
export const HandlerEnv = {
  /** The config file deployed inside each function's code package (see `MailIngestion`). */
  configFile: LambdaEnv.configFile,
  bucket: LambdaEnv.bucketName,
  bucketPrefix: LambdaEnv.bucketPrefix,
  outputQueueUrl: LambdaEnv.outputQueueUrl,
  jobsQueueUrl: LambdaEnv.jobsQueueUrl,
  eventBusName: LambdaEnv.eventBusName,
  outputMaxMessageBytes: LambdaEnv.outputMaxMessageBytes,
  perMailboxMetrics: LambdaEnv.perMailboxMetrics,
  schedulePeriodSeconds: LambdaEnv.schedulePeriodSeconds,
  tokenWriteBackAfterSeconds: LambdaEnv.tokenWriteBackAfterSeconds,
  secretCacheSeconds: LambdaEnv.secretCacheSeconds,
} as const;

/**
 * CloudWatch names the poller emits (Powertools EMF) and the alarms and the dashboard read. Both
 * read the service-level series, whose only dimension is {@link serviceDimension} (Powertools'
 * default dimension): they never depend on the opt-in per-mailbox series.
 */
export const Metrics = {
  namespace: EnvDefaults.metricsNamespace,
  serviceName: EnvDefaults.serviceName,
  serviceDimension: "service",
  messagesIngested: PollerMetric.MessagesIngested,
  bytesIngested: PollerMetric.BytesIngested,
  pollFailures: PollerMetric.PollFailures,
  authFailures: PollerMetric.AuthFailures,
  backOffs: PollerMetric.BackOffs,
  backlog: PollerMetric.Backlog,
} as const;

/** The config document's name in each code package, next to `index.mjs`. */
export const CONFIG_FILE_NAME = "config.json";
