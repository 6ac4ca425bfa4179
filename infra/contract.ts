/**
 * The names infra and the handlers agree on: environment variables, the deployed config file and
 * the CloudWatch metrics the alarms watch.
 */

/** Environment variable names the handlers read; the contract between infra and lambdas. */
export const HandlerEnv = {
  /** The config file deployed inside each function's code package (see `MailIngestion`). */
  configFile: "MAIL_INGEST_CONFIG_FILE",
  bucket: "BUCKET_NAME",
  bucketPrefix: "BUCKET_PREFIX",
  outputQueueUrl: "OUTPUT_QUEUE_URL",
  jobsQueueUrl: "JOBS_QUEUE_URL",
  eventBusName: "EVENT_BUS_NAME",
} as const;

/** CloudWatch names the poller emits (Powertools EMF) and the alarms watch. */
export const Metrics = {
  namespace: "MailIngest",
  serviceName: "mail-ingest",
  authFailures: "AuthFailures",
  backlog: "Backlog",
} as const;

/** The config document's name in each code package, next to `index.mjs`. */
export const CONFIG_FILE_NAME = "config.json";
