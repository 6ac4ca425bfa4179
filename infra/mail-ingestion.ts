/**
 * The `MailIngestion` construct: a scheduled, per-mailbox fan-out that runs the mail-ingest
 * pipeline in Lambda.
 *
 *   Scheduler --(every N min)--> dispatcher --(one FIFO job per mailbox)--> jobs queue
 *     --(batch 1, capped concurrency)--> poller --> S3 bucket + output queue (+ EventBridge)
 *
 * The jobs queue is FIFO with `MessageGroupId = mailbox id`, so at most one POP3 session per
 * mailbox runs anywhere: RFC 1939 §8 lets a server lock the maildrop for the whole session, and a
 * second concurrent login would only earn `[IN-USE]` (RFC 2449 §8.1.1).
 *
 * Secure by default: SSE and enforced TLS on every bucket and queue, a versioned bucket the poller
 * cannot delete mail from, DLQs with arrival alarms, and least-privilege IAM with no wildcard
 * actions. Mailbox passwords and OAuth tokens stay in Secrets Manager or SSM Parameter Store; the
 * template and the assets only ever carry their *names*.
 *
 * The construct is a composition of helpers, one per concern: `storage.ts`, `queues.ts`,
 * `functions.ts`, `permissions.ts`, `schedule.ts`, `alarms.ts` and `dashboard.ts`; `mailboxes.ts`
 * validates the mailboxes with the runtime's parser and `nag-suppressions.ts` holds the cdk-nag
 * stance.
 */
import { Duration, type RemovalPolicy, Tags } from "aws-cdk-lib";
import type { Dashboard } from "aws-cdk-lib/aws-cloudwatch";
import type { ISecurityGroup, IVpc, SubnetSelection } from "aws-cdk-lib/aws-ec2";
import type { IEventBus } from "aws-cdk-lib/aws-events";
import type { IKey } from "aws-cdk-lib/aws-kms";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import type { IBucket } from "aws-cdk-lib/aws-s3";
import type { Schedule } from "aws-cdk-lib/aws-scheduler";
import type { ITopic } from "aws-cdk-lib/aws-sns";
import type { IQueue, Queue } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { ConfigError, type DeletePolicy, EnvDefaults } from "../lambdas/config/index.ts";
import { createAlarms, type MailIngestionAlarms } from "./alarms.ts";
import { createDashboard } from "./dashboard.ts";
import { createFunctions } from "./functions.ts";
import { configDocument, type MailboxDefinition } from "./mailboxes.ts";
import { acknowledgeNagFindings } from "./nag-suppressions.ts";
import { grantPermissions, grantSend } from "./permissions.ts";
import { createQueues } from "./queues.ts";
import { createSchedule } from "./schedule.ts";
import { createStorage } from "./storage.ts";

export type { MailIngestionAlarms } from "./alarms.ts";
export { CONFIG_FILE_NAME, HandlerEnv, Metrics } from "./contract.ts";
export type { DeployedSecretSource, MailboxDefinition } from "./mailboxes.ts";
export { EXACT_SECRET_GRANT_LIMIT } from "./permissions.ts";

export interface MailIngestionProps {
  /** The mailboxes to poll. Each secret named here is the only one the poller may read. */
  readonly mailboxes: readonly MailboxDefinition[];
  /** How often every mailbox is polled. @default Duration.minutes(5) */
  readonly schedule?: Duration;
  /** Delete policy for mailboxes that do not set one (RFC 1939 §6 DELE). @default "never" */
  readonly defaultDeletePolicy?: DeletePolicy;
  /**
   * Poller memory, MiB. Lambda bills GB-seconds, and most polls find nothing new and wait on the
   * network, so this is the largest lever on cost (README "Cost"). 512 MiB holds the measured
   * peaks (a 340 MB message streamed in 234 MiB) with room; more memory also buys CPU for MIME
   * parsing of large backlogs.
   * @default 512
   */
  readonly pollerMemorySize?: number;
  /**
   * Poller timeout: every session of an invocation's batch ends within it (each stops fetching
   * 30 s before it, and a continuation job carries on). @default Duration.minutes(5)
   */
  readonly pollerTimeout?: Duration;
  /**
   * Mailboxes one poller invocation polls at once (the jobs event source's batch size, 1–10, the
   * FIFO limit). An idle poll mostly waits on the network, so a batch of 10 costs about one
   * poll's GB-seconds, Lambda request, log lines and SQS receive/delete: the largest item of an
   * idle fleet's bill (README "Cost"). Each mailbox still has one session at a time (one FIFO
   * group each), and the sessions share one memory bound (at most two messages of 32 MiB or
   * more are fetched at once). SQS deletes a batch's jobs when the invocation ends, so a mailbox
   * draining a long backlog holds its batch-mates' next polls back until then (at most
   * `pollerTimeout`). 1 gives each mailbox an invocation of its own.
   * @default 10
   */
  readonly mailboxesPerInvocation?: number;
  /**
   * At most this many mail sessions at once (SQS event source `maxConcurrency`, 2–1000); the
   * poller reserves exactly this much concurrency, so it neither starves the account nor is
   * starved by it. Synth fails when it is below
   * `mailboxes × estimatedPollSeconds ÷ schedule seconds × 1.5`: the jobs queue would then grow
   * every tick.
   * @default that minimum, and at least 10
   */
  readonly maxConcurrency?: number;
  /**
   * Seconds one poll of one mailbox takes on average, for the capacity check on `maxConcurrency`.
   * A poll that finds nothing new takes well under a second; measure yours (the poller's
   * `SessionDuration` metric, or the dashboard's duration widget) and set it here.
   * @default 1
   */
  readonly estimatedPollSeconds?: number;
  /** Dispatcher memory, MiB. @default 256 */
  readonly dispatcherMemorySize?: number;
  /** Dispatcher timeout. @default Duration.minutes(1) */
  readonly dispatcherTimeout?: Duration;
  /** Lambda log retention. @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** Use this bucket instead of creating one; it keeps whatever settings it already has. @default a new bucket */
  readonly bucket?: IBucket;
  /** Key prefix for everything written to the bucket. @default no prefix */
  readonly bucketPrefix?: string;
  /** Expire stored messages after this long (new bucket only). @default never */
  readonly objectExpiration?: Duration;
  /** Move stored messages to Infrequent Access after this long, at least 30 days (new bucket only). @default never */
  readonly infrequentAccessAfter?: Duration;
  /** Server access logs target for a new bucket. @default a new logs bucket */
  readonly accessLogsBucket?: IBucket;
  /** How long server access logs are kept when the construct creates the logs bucket. @default Duration.days(90) */
  readonly accessLogsExpiration?: Duration;
  /** Removal policy of the buckets the construct creates. @default RemovalPolicy.RETAIN */
  readonly bucketRemovalPolicy?: RemovalPolicy;
  /**
   * The new bucket is versioned; overwritten and deleted versions are kept this long (new bucket
   * only: with `bucket`, versioning is its owner's setting).
   * @default Duration.days(30)
   */
  readonly noncurrentVersionExpiration?: Duration;
  /**
   * Create the bucket with S3 Object Lock in governance mode and this default retention: no
   * version of stored mail can be deleted or overwritten before it, except by a principal with
   * `s3:BypassGovernanceRetention`. Object Lock is bucket-wide (S3 has no per-prefix default), so
   * it also holds the `state/` versions, which the noncurrent-version expiry then removes only
   * after the retention. New bucket only: S3 enables Object Lock at creation (or on an existing
   * versioned bucket through its owner's `PutObjectLockConfiguration`), so for a passed-in
   * `bucket` configure it there.
   * @default no Object Lock
   */
  readonly objectLockRetention?: Duration;
  /** Use this queue for message metadata instead of creating one (and its DLQ). @default a new queue */
  readonly outputQueue?: IQueue;
  /** Retention of the output queue and of every DLQ. @default Duration.days(14) */
  readonly queueRetention?: Duration;
  /**
   * Largest message the output queue accepts, bytes (1,024–1,048,576). Sets a new queue's limit;
   * for a passed-in `outputQueue`, give its limit here. Above it the poller sends the pointer form.
   * @default 1048576 (SQS's maximum)
   */
  readonly outputMaxMessageBytes?: number;
  /**
   * Alarm when the output queue's oldest message is older than this: its consumer stopped, and
   * SQS drops messages at the end of their retention without any DLQ. Also for a passed-in queue.
   * @default Duration.hours(24)
   */
  readonly outputQueueAgeAlarmAfter?: Duration;
  /** Also publish every message's metadata to this bus. @default no EventBridge publishing */
  readonly eventBus?: IEventBus;
  /**
   * Name prefix shared by every mailbox secret. While the exact secret ARNs fit in the poller's
   * role policy (at most {@link EXACT_SECRET_GRANT_LIMIT} secrets) the poller may read only those
   * secrets; beyond that IAM's 10,240-character role policy limit forces one grant on
   * `secret:<prefix>*` instead, and synth then requires every `secretId` to be a name under this
   * prefix. End it with a delimiter ("/") so it cannot match a sibling prefix.
   * @default "mail-ingest/"
   */
  readonly secretNamePrefix?: string;
  /** KMS key of the named secrets, when not the AWS managed `aws/secretsmanager` key. @default the AWS managed key */
  readonly secretsKey?: IKey;
  /**
   * KMS key of the `{"ssmParameter": NAME}` SecureStrings, when not the AWS managed `aws/ssm` key
   * (whose key policy already lets the account's principals use it through SSM).
   * @default the AWS managed key
   */
  readonly ssmParametersKey?: IKey;
  /**
   * A rotated OAuth2 refresh token is written back only once the stored one is this old (or was
   * revoked): Secrets Manager throttles more than about one new version per 10 minutes.
   * @default Duration.hours(24)
   */
  readonly tokenWriteBackAfter?: Duration;
  /**
   * How long a poller container reuses a mailbox's secret (SSM parameter or Secrets Manager
   * secret). Every SSM SecureString read is a KMS decrypt ($0.03 per 10k), about a third of an
   * idle fleet's bill with a one-period cache. A password change is not delayed by it: a login
   * the server refuses re-reads the secret past the cache and logs in again if it changed.
   * @default Duration.hours(6)
   */
  readonly secretCacheTtl?: Duration;
  /**
   * Also emit every poller metric with a `mailbox` dimension. Each such metric costs $0.30 a
   * month per mailbox (5,000 mailboxes: ~$15,000 a month for 10 metrics); the alarms and the
   * dashboard never need them, and each log line already names its mailbox.
   * @default false
   */
  readonly perMailboxMetrics?: boolean;
  /** Create the CloudWatch dashboard ($3 a month). @default true */
  readonly dashboard?: boolean;
  /** Every alarm notifies this topic. @default alarms without actions */
  readonly alarmTopic?: ITopic;
  /** The backlog alarm fires when some mailbox still has mail after this long. @default Duration.hours(2) */
  readonly backlogAlarmAfter?: Duration;
  /**
   * Run the poller in this VPC, so POP3 servers that allowlist a fixed address (a NAT gateway's
   * Elastic IP) can be reached. The subnets need a route to the internet or to the POP3 servers,
   * and to SQS, S3 and Secrets Manager (NAT or VPC endpoints). The dispatcher only calls SQS and
   * never runs in the VPC.
   * @default the poller runs outside any VPC
   */
  readonly vpc?: IVpc;
  /** The poller's subnets in `vpc`. @default the VPC's private subnets with egress */
  readonly vpcSubnets?: SubnetSelection;
  /**
   * The poller's security groups in `vpc`; they must allow outbound POP3 (995/110) or IMAP (993/143) and HTTPS.
   * @default one new group that allows all outbound traffic and no inbound
   */
  readonly securityGroups?: ISecurityGroup[];
  /**
   * Customer-managed KMS key for everything the construct creates and stores: the bucket
   * (SSE-KMS with S3 Bucket Keys), every queue (SSE-KMS) and both log groups. The functions are
   * granted the key actions they need; readers of the bucket and consumers of the output queue
   * need `kms:Decrypt` on it too. A `Key` in the app also gets the key-policy statement CloudWatch
   * Logs needs; for an imported key, add it yourself.
   * @default AWS-owned encryption: SSE-S3, SSE-SQS and CloudWatch Logs' own
   */
  readonly encryptionKey?: IKey;
  /**
   * The bucket's key, when different from `encryptionKey`. With an existing `bucket`, name its
   * SSE-KMS key here so the poller is granted it.
   * @default `encryptionKey`
   */
  readonly bucketEncryptionKey?: IKey;
  /** The queues' key, when different from `encryptionKey`. @default `encryptionKey` */
  readonly queueEncryptionKey?: IKey;
  /** The log groups' key, when different from `encryptionKey`. @default `encryptionKey` */
  readonly logEncryptionKey?: IKey;
  /** Tags applied to every taggable resource the construct creates. @default no tags */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * Polls POP3 mailboxes on a schedule into S3 and SQS. See the module comment for the data flow.
 *
 * The config document (the runtime config schema of `lambdas/config.ts`: the mailboxes with secret
 * *names*, never values) is deployed as `config.json` inside both functions' code packages, named
 * by `MAIL_INGEST_CONFIG_FILE`. A file has no size limit, so one construct serves thousands of
 * mailboxes, and a config change deploys new code, so every container runs exactly one config.
 * The bucket and the queues are deploy-time values, so they reach the poller as environment
 * variables instead.
 */
/**
 * CDK feature flags the construct is written for, set on the construct itself so its resources do
 * not depend on the consumer's `cdk.json` (a new `App()` has none of them):
 * - without `serverAccessLogsUseBucketPolicy` the access logs bucket fails synthesis (it would need
 *   an ACL, and the bucket enforces object ownership);
 * - `createDefaultLoggingPolicy` writes the bucket policy S3 log delivery needs.
 */
const CONSTRUCT_FEATURE_FLAGS = {
  "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": true,
  "@aws-cdk/aws-s3:createDefaultLoggingPolicy": true,
} as const;

export class MailIngestion extends Construct {
  /** The ingestion bucket: raw messages, parts, metadata and per-mailbox state. */
  readonly bucket: IBucket;
  /** Created only when the construct creates the bucket and no `accessLogsBucket` is given. */
  readonly accessLogsBucket?: IBucket;
  /** Receives one schema v2 message per ingested message. */
  readonly outputQueue: IQueue;
  /** Ticks the scheduler could not deliver and dispatcher invocations that failed twice. */
  readonly dispatchDlq: Queue;
  /** Undefined when an existing `outputQueue` was given: its owner manages its DLQ. */
  readonly outputDlq?: IQueue;
  /** FIFO, one message group per mailbox. */
  readonly jobsQueue: Queue;
  readonly jobsDlq: Queue;
  /** The JSON deployed as `config.json` in both functions. */
  readonly configJson: string;
  readonly dispatcher: NodejsFunction;
  readonly poller: NodejsFunction;
  readonly schedule: Schedule;
  readonly alarms: MailIngestionAlarms;
  readonly dashboard?: Dashboard;
  /** The poller concurrency: the event source's `maxConcurrency` and the reserved concurrency. */
  readonly maxConcurrency: number;

  constructor(scope: Construct, id: string, props: MailIngestionProps) {
    super(scope, id);
    // Before any child exists: context can only be set on a construct without children.
    for (const [flag, value] of Object.entries(CONSTRUCT_FEATURE_FLAGS)) {
      this.node.setContext(flag, value);
    }
    this.configJson = configDocument(props.mailboxes, props.defaultDeletePolicy ?? "never");
    const pollerTimeout = props.pollerTimeout ?? Duration.minutes(5);
    const schedulePeriod = props.schedule ?? Duration.minutes(5);
    if (pollerTimeout.toSeconds() > 900) {
      throw new ConfigError("pollerTimeout", "must be at most 15 minutes (the Lambda limit)");
    }
    const maxConcurrency = checkCapacity(props, schedulePeriod);
    this.maxConcurrency = maxConcurrency;
    const outputMaxMessageBytes = props.outputMaxMessageBytes ?? EnvDefaults.outputMaxMessageBytes;
    if (
      !Number.isInteger(outputMaxMessageBytes) ||
      outputMaxMessageBytes < 1024 ||
      outputMaxMessageBytes > 1024 * 1024
    ) {
      throw new ConfigError("outputMaxMessageBytes", "must be an integer between 1024 and 1048576");
    }
    if (props.bucket && props.objectLockRetention) {
      throw new ConfigError(
        "objectLockRetention",
        "applies to a bucket the construct creates; enable Object Lock on the passed-in `bucket` itself",
      );
    }
    if (props.bucket && props.noncurrentVersionExpiration) {
      throw new ConfigError(
        "noncurrentVersionExpiration",
        "applies to a bucket the construct creates; set versioning rules on the passed-in `bucket` itself",
      );
    }
    if (!props.vpc && (props.vpcSubnets || props.securityGroups)) {
      throw new ConfigError("vpcSubnets/securityGroups", "need `vpc`");
    }
    const bucketKey = props.bucketEncryptionKey ?? props.encryptionKey;
    const queueKey = props.queueEncryptionKey ?? props.encryptionKey;
    const logKey = props.logEncryptionKey ?? props.encryptionKey;

    const storage = createStorage(this, {
      bucket: props.bucket,
      encryptionKey: bucketKey,
      objectExpiration: props.objectExpiration,
      infrequentAccessAfter: props.infrequentAccessAfter,
      accessLogsBucket: props.accessLogsBucket,
      accessLogsExpiration: props.accessLogsExpiration,
      removalPolicy: props.bucketRemovalPolicy,
      noncurrentVersionExpiration: props.noncurrentVersionExpiration ?? Duration.days(30),
      objectLockRetention: props.objectLockRetention,
    });
    this.bucket = storage.bucket;
    this.accessLogsBucket = storage.accessLogsBucket;

    const queues = createQueues(this, {
      outputQueue: props.outputQueue,
      encryptionKey: queueKey,
      retention: props.queueRetention ?? Duration.days(14),
      pollerTimeout,
      outputMaxMessageBytes,
    });
    ({
      outputQueue: this.outputQueue,
      outputDlq: this.outputDlq,
      jobsQueue: this.jobsQueue,
      jobsDlq: this.jobsDlq,
      dispatchDlq: this.dispatchDlq,
    } = queues);

    ({ dispatcher: this.dispatcher, poller: this.poller } = createFunctions(this, {
      configJson: this.configJson,
      jobsQueueUrl: this.jobsQueue.queueUrl,
      bucketName: this.bucket.bucketName,
      bucketPrefix: props.bucketPrefix,
      outputQueueUrl: this.outputQueue.queueUrl,
      eventBusName: props.eventBus?.eventBusName,
      dispatcherMemorySize: props.dispatcherMemorySize ?? 256,
      dispatcherTimeout: props.dispatcherTimeout ?? Duration.minutes(1),
      pollerMemorySize: props.pollerMemorySize ?? 512,
      pollerTimeout,
      logRetention: props.logRetention ?? RetentionDays.ONE_MONTH,
      logEncryptionKey: logKey,
      pollerNetwork: props.vpc
        ? { vpc: props.vpc, vpcSubnets: props.vpcSubnets, securityGroups: props.securityGroups }
        : undefined,
      pollerReservedConcurrency: maxConcurrency,
      schedulePeriod,
      dispatchDlq: this.dispatchDlq,
      outputMaxMessageBytes,
      perMailboxMetrics: props.perMailboxMetrics ?? false,
      tokenWriteBackAfter:
        props.tokenWriteBackAfter ?? Duration.seconds(EnvDefaults.tokenWriteBackAfterSeconds),
      secretCacheTtl: props.secretCacheTtl ?? Duration.seconds(EnvDefaults.secretCacheSeconds),
    }));
    this.poller.addEventSource(
      new SqsEventSource(this.jobsQueue, {
        batchSize: mailboxesPerInvocation(props),
        maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    const grants = grantPermissions({
      dispatcher: this.dispatcher,
      poller: this.poller,
      jobsQueue: this.jobsQueue,
      outputQueue: this.outputQueue,
      bucket: this.bucket,
      bucketKey: this.bucket.encryptionKey ?? props.bucketEncryptionKey,
      bucketPrefix: props.bucketPrefix,
      eventBus: props.eventBus,
      mailboxes: props.mailboxes,
      secretNamePrefix: props.secretNamePrefix,
      secretsKey: props.secretsKey,
      ssmParametersKey: props.ssmParametersKey,
      pollerInVpc: props.vpc !== undefined,
    });

    const schedule = createSchedule(this, this.dispatcher, schedulePeriod, this.dispatchDlq);
    grantSend(this.dispatchDlq, schedule.role);
    this.schedule = schedule.schedule;
    const monitored = {
      jobsQueue: this.jobsQueue,
      jobsDlq: this.jobsDlq,
      outputQueue: this.outputQueue,
      outputDlq: this.outputDlq,
      dispatchDlq: this.dispatchDlq,
      poller: this.poller,
      dispatcher: this.dispatcher,
    };
    this.alarms = createAlarms(this, {
      ...monitored,
      alarmTopic: props.alarmTopic,
      backlogAlarmAfter: props.backlogAlarmAfter,
      outputQueueAgeAlarmAfter: props.outputQueueAgeAlarmAfter ?? Duration.hours(24),
      schedulePeriod,
    });
    if (props.dashboard ?? true) {
      this.dashboard = createDashboard(this, {
        ...monitored,
        pollerLogGroup: this.poller.logGroup,
      });
    }

    for (const [key, value] of Object.entries(props.tags ?? {})) Tags.of(this).add(key, value);
    const roles = [this.dispatcher.role, this.poller.role, schedule.role].filter(
      (role) => role !== undefined,
    );
    acknowledgeNagFindings({
      bucket: props.bucket ? undefined : this.bucket,
      bucketKmsEncrypted: bucketKey !== undefined,
      accessLogsBucket: this.accessLogsBucket,
      logGroups: [this.dispatcher.logGroup, this.poller.logGroup],
      logsKmsEncrypted: logKey !== undefined,
      roles,
      dispatcher: this.dispatcher,
      poller: this.poller,
      dispatchDlq: this.dispatchDlq,
      pollerRole: this.poller.role ?? this.poller,
      pollerInVpc: props.vpc !== undefined,
      alarms: Object.values(this.alarms).filter((alarm) => alarm !== undefined),
      alarmsHaveAction: props.alarmTopic !== undefined,
      grants,
    });
  }
}

function mailboxesPerInvocation(props: MailIngestionProps): number {
  const n = props.mailboxesPerInvocation ?? 10;
  if (!Number.isInteger(n) || n < 1 || n > 10) {
    throw new ConfigError(
      "mailboxesPerInvocation",
      `is ${n}; it must be an integer from 1 to 10 (the batch size limit of an SQS FIFO event source)`,
    );
  }
  return n;
}

/** Headroom over the average load: ticks arrive all at once and some polls find mail. */
const CAPACITY_HEADROOM = 1.5;

/**
 * The poller concurrency the fleet needs: `mailboxes × estimatedPollSeconds ÷ period × 1.5`.
 * Below it the pollers finish fewer jobs per period than the dispatcher enqueues, and the jobs
 * queue grows without bound. Conservative on purpose: it counts each poll as if it had an
 * invocation of its own, although a batch's polls run side by side (`mailboxesPerInvocation`). Returns `maxConcurrency`, or the minimum (at least 10) when unset.
 */
function checkCapacity(props: MailIngestionProps, period: Duration): number {
  const estimate = props.estimatedPollSeconds ?? 1;
  if (!Number.isFinite(estimate) || estimate <= 0) {
    throw new ConfigError("estimatedPollSeconds", "must be a positive number of seconds");
  }
  const periodSeconds = period.toSeconds();
  const mailboxes = props.mailboxes.length;
  const needed = Math.ceil(((mailboxes * estimate) / periodSeconds) * CAPACITY_HEADROOM);
  const sizing = `${mailboxes} mailboxes × ${estimate} s per poll (estimatedPollSeconds) ÷ ${periodSeconds} s per tick × ${CAPACITY_HEADROOM} = ${needed}`;
  if (needed > 1000) {
    throw new ConfigError(
      "maxConcurrency",
      `would need ${needed}, above the SQS event source's limit of 1000 (${sizing}); poll less often, split the mailboxes across constructs, or measure a lower estimatedPollSeconds`,
    );
  }
  const maxConcurrency = props.maxConcurrency ?? Math.max(10, needed);
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 2 || maxConcurrency > 1000) {
    throw new ConfigError("maxConcurrency", "must be an integer between 2 and 1000");
  }
  if (maxConcurrency < needed) {
    throw new ConfigError(
      "maxConcurrency",
      `is ${maxConcurrency}, below the ${needed} the fleet needs (${sizing}); the jobs queue would grow every tick. Raise maxConcurrency to at least ${needed}`,
    );
  }
  return maxConcurrency;
}
