/**
 * The Lambda environment contract: every environment variable the handlers read and every metric
 * the poller emits, named once. The handlers read through these names, and the CDK construct can
 * import the same objects to set them, so a rename cannot leave one side behind. Reading happens
 * on first invocation, never at import (Powertools style).
 */
import { ErrorCode, MailIngestError } from "../errors.ts";
import {
  ConfigError,
  MAX_QUEUE_MESSAGE_BYTES,
  MIN_QUEUE_MESSAGE_BYTES,
  parseStorage,
  type S3StorageConfig,
} from "./schema.ts";

/** Environment variables the handlers read. */
export const LambdaEnv = {
  /** Bucket for raw messages, state and leases (poller). */
  bucketName: "BUCKET_NAME",
  /** Optional key prefix in that bucket; the `storage.prefix` rules apply. */
  bucketPrefix: "BUCKET_PREFIX",
  /** The output queue (poller). */
  outputQueueUrl: "OUTPUT_QUEUE_URL",
  /** The FIFO jobs queue: the dispatcher sends to it, the poller sends continuations to it. */
  jobsQueueUrl: "JOBS_QUEUE_URL",
  /** Optional EventBridge bus every queue message is also published to (poller). */
  eventBusName: "EVENT_BUS_NAME",
  /** The config source; exactly one of the three is set (see {@link ConfigSourceEnv}). */
  configFile: "MAIL_INGEST_CONFIG_FILE",
  configParameter: "MAIL_INGEST_CONFIG_PARAMETER",
  configInline: "MAIL_INGEST_CONFIG",
  /** Seconds an SSM config parameter is reused. */
  configCacheSeconds: "CONFIG_CACHE_SECONDS",
  /** Time kept back from the Lambda timeout for QUIT, the queue flush and metrics, ms. */
  safetyMarginMs: "SAFETY_MARGIN_MS",
  /** Seconds a Secrets Manager value is reused. */
  secretCacheSeconds: "SECRET_CACHE_SECONDS",
  /**
   * Largest body the output queue accepts, bytes (a passed-in queue may cap below SQS's 1 MiB);
   * above it the poller sends the pointer form.
   */
  outputMaxMessageBytes: "OUTPUT_MAX_MESSAGE_BYTES",
  /** "true" adds a `mailbox` dimension to the poller's metrics (opt-in: each costs per mailbox). */
  perMailboxMetrics: "PER_MAILBOX_METRICS",
  /** The dispatch schedule's period, s: a scheduled job older than one period is dropped. */
  schedulePeriodSeconds: "SCHEDULE_PERIOD_SECONDS",
  /** A rotated OAuth2 refresh token is written back only once the stored one is this old, s. */
  tokenWriteBackAfterSeconds: "OAUTH_WRITE_BACK_AFTER_SECONDS",
  powertoolsServiceName: "POWERTOOLS_SERVICE_NAME",
  powertoolsMetricsNamespace: "POWERTOOLS_METRICS_NAMESPACE",
  /** Set by the Lambda runtime, not by us: where the code package is unpacked (/var/task). */
  taskRoot: "LAMBDA_TASK_ROOT",
} as const;

export type LambdaEnvName = (typeof LambdaEnv)[keyof typeof LambdaEnv];

/** The environment variables that name a config source; exactly one must be set. */
export const ConfigSourceEnv = {
  /** A JSON file deployed with the function code; relative paths resolve against the task root. */
  file: LambdaEnv.configFile,
  /** An SSM parameter holding the JSON, re-read every `CONFIG_CACHE_SECONDS`. */
  parameter: LambdaEnv.configParameter,
  /** The JSON itself. */
  inline: LambdaEnv.configInline,
} as const;

/** Values used when an optional variable is unset. */
export const EnvDefaults = {
  serviceName: "mail-ingest",
  metricsNamespace: "MailIngest",
  /** ms */
  safetyMarginMs: 30_000,
  /**
   * s. Long, because a login the server refuses re-reads the secret past the cache
   * (ingest/poll-mailbox.ts), so a changed password is used at once anyway; each read of an SSM
   * SecureString is a KMS decrypt (issue 9). A rotated OAuth token is tracked in memory meanwhile.
   */
  secretCacheSeconds: 6 * 60 * 60,
  /** s; the parse of the parameter is reused as long as its text is unchanged. */
  configCacheSeconds: 300,
  /** bytes: SQS's limit. */
  outputMaxMessageBytes: 1024 * 1024,
  /** s */
  schedulePeriodSeconds: 300,
  /** s: Secrets Manager throttles more than about one version per 10 minutes (24 h kept). */
  tokenWriteBackAfterSeconds: 24 * 60 * 60,
} as const;

/**
 * The poller's EMF metrics (namespace {@link EnvDefaults.metricsNamespace}). Their only dimension
 * is `service`; the mailbox is an EMF property of every blob (searchable in Logs Insights), and a
 * `mailbox` dimension only with `PER_MAILBOX_METRICS=true`, since each dimension value is a
 * separately billed custom metric.
 */
export const PollerMetric = {
  MessagesIngested: "MessagesIngested",
  BytesIngested: "BytesIngested",
  MessagesFailed: "MessagesFailed",
  /** The report's `skipped`: too large, UIDL-reset copies, permanently refused (not backlog). */
  MessagesSkipped: "MessagesSkipped",
  SessionDuration: "SessionDuration",
  /** Only after a completed session: what is left on the server. */
  Backlog: "Backlog",
  PollFailures: "PollFailures",
  AuthFailures: "AuthFailures",
  BackOffs: "BackOffs",
  DeadlineStalls: "DeadlineStalls",
  Continuations: "Continuations",
  /** Scheduled jobs dropped unrun because they were older than one schedule period. */
  StaleJobsDropped: "StaleJobsDropped",
} as const;

export type PollerMetricName = (typeof PollerMetric)[keyof typeof PollerMetric];

/** A required environment variable; missing is a deployment bug, named in the error. */
export function requireEnv(env: NodeJS.ProcessEnv, name: LambdaEnvName): string {
  const value = env[name];
  if (!value) {
    throw new MailIngestError(ErrorCode.CONFIG_INVALID, `environment variable ${name} is not set`);
  }
  return value;
}

/** An optional non-negative integer environment variable. */
export function integerEnv(env: NodeJS.ProcessEnv, name: LambdaEnvName, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new MailIngestError(
      ErrorCode.CONFIG_INVALID,
      `environment variable ${name} must be a non-negative integer`,
    );
  }
  return value;
}

/** An optional boolean environment variable: `true` or `false` (any case), unset is `fallback`. */
export function booleanEnv(
  env: NodeJS.ProcessEnv,
  name: LambdaEnvName,
  fallback: boolean,
): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = raw.trim().toLowerCase();
  if (value === "true") return true;
  if (value === "false") return false;
  throw new MailIngestError(
    ErrorCode.CONFIG_INVALID,
    `environment variable ${name} must be "true" or "false"`,
  );
}

/**
 * `OUTPUT_MAX_MESSAGE_BYTES`: the output queue's MaximumMessageSize, bytes, within SQS's range
 * (1 KiB to 1 MiB); unset means SQS's 1 MiB.
 */
export function outputMaxMessageBytesEnv(env: NodeJS.ProcessEnv): number {
  const name = LambdaEnv.outputMaxMessageBytes;
  const value = integerEnv(env, name, EnvDefaults.outputMaxMessageBytes);
  if (value < MIN_QUEUE_MESSAGE_BYTES || value > MAX_QUEUE_MESSAGE_BYTES) {
    throw new MailIngestError(
      ErrorCode.CONFIG_INVALID,
      `environment variable ${name} must be between ${MIN_QUEUE_MESSAGE_BYTES} and ${MAX_QUEUE_MESSAGE_BYTES}`,
    );
  }
  return value;
}

/**
 * The poller's storage from `BUCKET_NAME` and `BUCKET_PREFIX`, validated by the same
 * {@link parseStorage} as a config file's `storage` (a prefix with `..` or a leading `/` would
 * write outside the deployment's key space). Errors name the variable.
 */
export function storageFromEnv(env: NodeJS.ProcessEnv): S3StorageConfig {
  const bucket = requireEnv(env, LambdaEnv.bucketName);
  const prefix = env[LambdaEnv.bucketPrefix] || undefined;
  try {
    const storage = parseStorage({ type: "s3", bucket, ...(prefix ? { prefix } : {}) }, "");
    if (storage.type !== "s3") throw new Error("unreachable: storage type is s3");
    return storage;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const name = err.field === "storage.prefix" ? LambdaEnv.bucketPrefix : LambdaEnv.bucketName;
    throw new MailIngestError(
      ErrorCode.CONFIG_INVALID,
      `environment variable ${name}: ${err.problem}`,
    );
  }
}
