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
 * Secure by default: SSE and enforced TLS on every bucket and queue, DLQs with alarms, and
 * least-privilege IAM with no wildcard actions. Mailbox passwords and OAuth tokens stay in Secrets
 * Manager; the template and the assets only ever carry secret *names*.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ArnFormat, Duration, RemovalPolicy, Stack, Token, Validations } from "aws-cdk-lib";
import {
  Alarm,
  ComparisonOperator,
  type IAlarm,
  MathExpression,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import type { IEventBus } from "aws-cdk-lib/aws-events";
import {
  Effect,
  type IRole,
  PolicyDocument,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from "aws-cdk-lib/aws-iam";
import type { IKey } from "aws-cdk-lib/aws-kms";
import { Architecture, type IFunction, LoggingFormat, Runtime } from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type IBucket,
  ObjectOwnership,
  StorageClass,
} from "aws-cdk-lib/aws-s3";
import {
  type ISchedule,
  type IScheduleTarget,
  Schedule,
  ScheduleExpression,
  type ScheduleTargetConfig,
  ScheduleTargetInput,
} from "aws-cdk-lib/aws-scheduler";
import type { ITopic } from "aws-cdk-lib/aws-sns";
import {
  DeduplicationScope,
  FifoThroughputLimit,
  type IQueue,
  Queue,
  QueueEncryption,
} from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import {
  ConfigError,
  type DeletePolicy,
  MAILBOX_ID_PATTERN,
  type MailboxConfig,
} from "../lambdas/config.ts";
import { type HandlerName, handlerCode } from "./handler-code.ts";

/**
 * One mailbox as deployed. The same fields as a mailbox in the CLI config file, except that the
 * password must name a Secrets Manager secret: its value never enters the template.
 */
export interface MailboxDefinition {
  /** `[A-Za-z0-9._-]{1,64}`; the storage key prefix and the FIFO message group id. */
  readonly id: string;
  readonly host: string;
  /** @default 995 for implicit TLS, else 110 */
  readonly port?: number;
  /** @default "implicit" */
  readonly tls?: MailboxConfig["tls"];
  /** Inline PEM of a private CA (no file paths: the Lambda has no access to your disk). */
  readonly ca?: string;
  /** TLS SNI / certificate name override for IP-address hosts. */
  readonly servername?: string;
  readonly username: string;
  /**
   * Name (or full ARN) of the Secrets Manager secret holding the password, or the OAuth2 JSON
   * `{clientId, clientSecret?, refreshToken, tokenUrl, scope}`.
   */
  readonly password: { readonly secretId: string };
  /** @default "auto" */
  readonly auth?: MailboxConfig["auth"];
  /** @default false */
  readonly allowInsecureAuth?: boolean;
  /** Per-command idle timeout, ms. @default 30000 */
  readonly timeoutMs?: number;
  /** @default the construct's `defaultDeletePolicy` */
  readonly delete?: DeletePolicy;
  /** @default no cap (the Lambda deadline still bounds a run) */
  readonly maxMessagesPerRun?: number;
  /** @default no cap */
  readonly maxBytesPerRun?: number;
  /** Larger messages are skipped and reported, never deleted. @default 150 MiB */
  readonly maxMessageBytes?: number;
}

export interface MailIngestionProps {
  /** The mailboxes to poll. Each secret named here is the only one the poller may read. */
  readonly mailboxes: readonly MailboxDefinition[];
  /** How often every mailbox is polled. @default Duration.minutes(5) */
  readonly schedule?: Duration;
  /** Delete policy for mailboxes that do not set one (RFC 1939 §6 DELE). @default "never" */
  readonly defaultDeletePolicy?: DeletePolicy;
  /** Poller memory, MiB. More memory also buys CPU for MIME parsing. @default 1024 */
  readonly pollerMemorySize?: number;
  /** Poller timeout; one mailbox session per invocation. @default Duration.minutes(5) */
  readonly pollerTimeout?: Duration;
  /** At most this many POP3 sessions at once (SQS event source `maxConcurrency`, 2–1000). @default 10 */
  readonly maxConcurrency?: number;
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
  /** Use this queue for message metadata instead of creating one (and its DLQ). @default a new queue */
  readonly outputQueue?: IQueue;
  /** Retention of the output queue and of every DLQ. @default Duration.days(14) */
  readonly queueRetention?: Duration;
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
  /** Every alarm notifies this topic. @default alarms without actions */
  readonly alarmTopic?: ITopic;
  /** The backlog alarm fires when some mailbox still has mail after this long. @default Duration.hours(2) */
  readonly backlogAlarmAfter?: Duration;
}

/** The construct's alarms; each notifies `alarmTopic` when given. */
export interface MailIngestionAlarms {
  /** Jobs that failed `maxReceiveCount` times: a mailbox is not being polled. */
  readonly jobsDlqDepth: IAlarm;
  /** Metadata a consumer could not process (only when the construct created the output queue). */
  readonly outputDlqDepth?: IAlarm;
  /** The poller crashed or timed out (not per-message failures, which are reported in-batch). */
  readonly pollerErrors: IAlarm;
  /** The dispatcher failed, so no mailbox was scheduled this tick. */
  readonly dispatcherErrors: IAlarm;
  /** A POP3 server rejected credentials: fix the secret. */
  readonly authFailures: IAlarm;
  /** Some mailbox kept mail on the server for `backlogAlarmAfter`: ingestion is not keeping up. */
  readonly backlog: IAlarm;
}

/** Environment variable names the handlers read; the contract between infra and lambdas. */
export const HandlerEnv = {
  /** The config file deployed inside each function's code package (see {@link MailIngestion}). */
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
/**
 * Up to this many secrets are granted by exact ARN. IAM allows 10,240 characters across a role's
 * inline policies; the poller's other statements take about 2,000.
 */
export const EXACT_SECRET_GRANT_LIMIT = 50;
/** Exact ARNs above this many characters in total (long secret names) switch to the prefix too. */
const EXACT_SECRET_ARNS_MAX_CHARS = 6000;
/** A resolved secret ARN without its name: `arn:<partition>:secretsmanager:<region>:<account>:secret:`, the `-??????` suffix and JSON quoting. */
const SECRET_ARN_OVERHEAD_CHARS = 80;
/** Characters Secrets Manager allows in a secret name. */
const SECRET_NAME_PATTERN = /^[A-Za-z0-9/_+=.@-]+$/;
/** AWS guidance for SQS event sources: visibility timeout at least 6x the function timeout. */
const VISIBILITY_TIMEOUT_FACTOR = 6;

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

/** Inputs Lambda receives from the schedule: a tick id the dispatcher uses for FIFO dedup. */
const SCHEDULE_INPUT = {
  source: "mail-ingest.schedule",
  scheduledTime: "<aws.scheduler.scheduled-time>",
  executionId: "<aws.scheduler.execution-id>",
} as const;

function validateMailboxes(mailboxes: readonly MailboxDefinition[]): void {
  if (mailboxes.length === 0) throw new ConfigError("mailboxes", "must be a non-empty array");
  const ids = new Set<string>();
  for (const [i, mailbox] of mailboxes.entries()) {
    const at = `mailboxes[${i}]`;
    if (!MAILBOX_ID_PATTERN.test(mailbox.id)) {
      throw new ConfigError(`${at}.id`, `must match ${MAILBOX_ID_PATTERN}`);
    }
    if (ids.has(mailbox.id)) throw new ConfigError(`${at}.id`, `duplicate id "${mailbox.id}"`);
    ids.add(mailbox.id);
    const password: unknown = mailbox.password;
    // A literal, env or file password would land in the template or be unreadable in Lambda.
    if (
      typeof password !== "object" ||
      password === null ||
      Object.keys(password).join() !== "secretId" ||
      typeof mailbox.password.secretId !== "string" ||
      mailbox.password.secretId.length === 0
    ) {
      throw new ConfigError(`${at}.password`, 'must be {"secretId": NAME} when deployed to AWS');
    }
    if (mailbox.ca !== undefined && !mailbox.ca.includes("-----BEGIN")) {
      throw new ConfigError(`${at}.ca`, "must be an inline PEM when deployed to AWS");
    }
  }
}

/** Only fields the runtime config schema knows, so `parseConfig` accepts the document. */
function mailboxDocument(mailbox: MailboxDefinition, defaultDelete: DeletePolicy) {
  return {
    id: mailbox.id,
    host: mailbox.host,
    port: mailbox.port,
    tls: mailbox.tls,
    ca: mailbox.ca,
    servername: mailbox.servername,
    username: mailbox.username,
    password: { secretId: mailbox.password.secretId },
    auth: mailbox.auth,
    allowInsecureAuth: mailbox.allowInsecureAuth,
    timeoutMs: mailbox.timeoutMs,
    delete: mailbox.delete ?? defaultDelete,
    maxMessagesPerRun: mailbox.maxMessagesPerRun,
    maxBytesPerRun: mailbox.maxBytesPerRun,
    maxMessageBytes: mailbox.maxMessageBytes,
  };
}

/**
 * Renders a resolved CloudFormation value the way cdk-nag names IAM5 findings (`<Logical.Arn>/*`),
 * so an acknowledgement names exactly one resource instead of silencing the whole rule.
 */
function flattenCfnReference(node: unknown): string {
  if (typeof node === "string") return node.replace(/\$\{/g, "<").replace(/\}/g, ">");
  if (typeof node === "object" && node !== null) {
    const record = node as Record<string, unknown>;
    const join = record["Fn::Join"];
    if (Array.isArray(join) && typeof join[0] === "string" && Array.isArray(join[1])) {
      return join[1].map(flattenCfnReference).join(join[0]);
    }
    const getAtt = record["Fn::GetAtt"];
    if (Array.isArray(getAtt)) return `<${getAtt.map(flattenCfnReference).join(".")}>`;
    if ("Ref" in record) return `<${flattenCfnReference(record.Ref)}>`;
    if ("Fn::Sub" in record) return flattenCfnReference(record["Fn::Sub"]);
    if ("Fn::ImportValue" in record) return flattenCfnReference(record["Fn::ImportValue"]);
  }
  return JSON.stringify(node);
}

/** Invokes a function from a schedule with a role allowed to call exactly that function. */
class InvokeExactly implements IScheduleTarget {
  constructor(
    private readonly func: IFunction,
    private readonly role: IRole,
  ) {}

  bind(_schedule: ISchedule): ScheduleTargetConfig {
    return {
      arn: this.func.functionArn,
      role: this.role,
      input: ScheduleTargetInput.fromObject(SCHEDULE_INPUT),
      // A missed tick is harmless: the next one polls the same mailboxes.
      retryPolicy: { maximumRetryAttempts: 2, maximumEventAgeInSeconds: 120 },
    };
  }
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
export class MailIngestion extends Construct {
  readonly bucket: IBucket;
  /** Created only when the construct creates the bucket and no `accessLogsBucket` is given. */
  readonly accessLogsBucket?: IBucket;
  readonly outputQueue: IQueue;
  /** Undefined when an existing `outputQueue` was given: its owner manages its DLQ. */
  readonly outputDlq?: IQueue;
  readonly jobsQueue: Queue;
  readonly jobsDlq: Queue;
  /** The JSON deployed as `config.json` in both functions. */
  readonly configJson: string;
  readonly dispatcher: NodejsFunction;
  readonly poller: NodejsFunction;
  readonly schedule: Schedule;
  readonly alarms: MailIngestionAlarms;

  constructor(scope: Construct, id: string, props: MailIngestionProps) {
    super(scope, id);
    // Before any child exists: context can only be set on a construct without children.
    for (const [flag, value] of Object.entries(CONSTRUCT_FEATURE_FLAGS)) {
      this.node.setContext(flag, value);
    }
    validateMailboxes(props.mailboxes);
    const pollerTimeout = props.pollerTimeout ?? Duration.minutes(5);
    const maxConcurrency = props.maxConcurrency ?? 10;
    if (pollerTimeout.toSeconds() > 900) {
      throw new ConfigError("pollerTimeout", "must be at most 15 minutes (the Lambda limit)");
    }
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 2 || maxConcurrency > 1000) {
      throw new ConfigError("maxConcurrency", "must be an integer between 2 and 1000");
    }
    const queueRetention = props.queueRetention ?? Duration.days(14);

    ({ bucket: this.bucket, accessLogsBucket: this.accessLogsBucket } = this.createBucket(props));
    if (props.outputQueue) {
      this.outputQueue = props.outputQueue;
    } else {
      this.outputDlq = new Queue(this, "OutputDlq", {
        encryption: QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: queueRetention,
      });
      this.outputQueue = new Queue(this, "OutputQueue", {
        encryption: QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: queueRetention,
        deadLetterQueue: { queue: this.outputDlq, maxReceiveCount: 5 },
      });
    }

    this.jobsDlq = new Queue(this, "JobsDlq", {
      fifo: true,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: queueRetention,
    });
    this.jobsQueue = new Queue(this, "JobsQueue", {
      fifo: true,
      // The dispatcher sets an explicit dedup id per mailbox and tick.
      contentBasedDeduplication: false,
      // High-throughput FIFO: limits apply per mailbox, not per queue, so thousands can fan out.
      deduplicationScope: DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(pollerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR),
      // A job older than a few ticks is superseded by newer ones.
      retentionPeriod: Duration.days(1),
      deadLetterQueue: { queue: this.jobsDlq, maxReceiveCount: 3 },
    });

    const document = {
      mailboxes: props.mailboxes.map((m) =>
        mailboxDocument(m, props.defaultDeletePolicy ?? "never"),
      ),
    };
    this.configJson = `${JSON.stringify(document, null, 2)}\n`;
    if (Token.isUnresolved(this.configJson)) {
      // The file is written at synth time; a deploy-time value would ship as its placeholder.
      throw new ConfigError("mailboxes", "must not contain deploy-time tokens");
    }
    // The bundling hook copies this file into each code package. It must exist only while the
    // functions are constructed: local bundling runs synchronously in the NodejsFunction constructor.
    const scratch = mkdtempSync(path.join(tmpdir(), "mail-ingest-config-"));
    const configSource = path.join(scratch, CONFIG_FILE_NAME);
    writeFileSync(configSource, this.configJson);

    const logRetention = props.logRetention ?? RetentionDays.ONE_MONTH;
    const commonEnv = {
      [HandlerEnv.configFile]: CONFIG_FILE_NAME,
      [HandlerEnv.jobsQueueUrl]: this.jobsQueue.queueUrl,
      POWERTOOLS_SERVICE_NAME: Metrics.serviceName,
      POWERTOOLS_METRICS_NAMESPACE: Metrics.namespace,
      NODE_OPTIONS: "--enable-source-maps",
    };

    this.dispatcher = this.createFunction("Dispatcher", {
      handlerName: "dispatcher",
      description: "mail-ingest: enqueues one FIFO job per mailbox per schedule tick",
      memorySize: props.dispatcherMemorySize ?? 256,
      timeout: props.dispatcherTimeout ?? Duration.minutes(1),
      logRetention,
      environment: commonEnv,
      configSource,
    });
    this.poller = this.createFunction("Poller", {
      handlerName: "poller",
      description: "mail-ingest: runs one mailbox session per job",
      memorySize: props.pollerMemorySize ?? 1024,
      timeout: pollerTimeout,
      logRetention,
      environment: {
        ...commonEnv,
        [HandlerEnv.bucket]: this.bucket.bucketName,
        ...(props.bucketPrefix ? { [HandlerEnv.bucketPrefix]: props.bucketPrefix } : {}),
        [HandlerEnv.outputQueueUrl]: this.outputQueue.queueUrl,
        ...(props.eventBus ? { [HandlerEnv.eventBusName]: props.eventBus.eventBusName } : {}),
      },
      configSource,
    });
    rmSync(scratch, { recursive: true, force: true });
    this.poller.addEventSource(
      new SqsEventSource(this.jobsQueue, {
        batchSize: 1,
        maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    this.grantPermissions(props);

    const schedulerRole = new Role(this, "SchedulerRole", {
      assumedBy: new ServicePrincipal("scheduler.amazonaws.com", {
        conditions: { StringEquals: { "aws:SourceAccount": Stack.of(this).account } },
      }),
      inlinePolicies: {
        invoke: new PolicyDocument({
          statements: [
            new PolicyStatement({
              actions: ["lambda:InvokeFunction"],
              resources: [this.dispatcher.functionArn],
            }),
          ],
        }),
      },
    });
    this.schedule = new Schedule(this, "Schedule", {
      description: "mail-ingest: poll every mailbox",
      schedule: ScheduleExpression.rate(props.schedule ?? Duration.minutes(5)),
      target: new InvokeExactly(this.dispatcher, schedulerRole),
    });

    this.alarms = this.createAlarms(props);
  }

  private createBucket(props: MailIngestionProps): { bucket: IBucket; accessLogsBucket?: IBucket } {
    if (props.bucket) return { bucket: props.bucket };
    const removalPolicy = props.bucketRemovalPolicy ?? RemovalPolicy.RETAIN;
    let accessLogsBucket = props.accessLogsBucket;
    let createdLogs: Bucket | undefined;
    if (!accessLogsBucket) {
      createdLogs = new Bucket(this, "AccessLogs", {
        // The S3 log delivery service only writes to SSE-S3 buckets.
        encryption: BucketEncryption.S3_MANAGED,
        blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removalPolicy,
        lifecycleRules: [
          {
            expiration: props.accessLogsExpiration ?? Duration.days(90),
            abortIncompleteMultipartUploadAfter: Duration.days(1),
          },
        ],
      });
      Validations.of(createdLogs).acknowledge({
        id: "AwsSolutions-S1",
        reason:
          "This is the server access logs bucket; logging it to itself would loop and to another bucket would only move the finding.",
      });
      accessLogsBucket = createdLogs;
    }
    const transitions =
      props.infrequentAccessAfter === undefined
        ? undefined
        : [
            {
              storageClass: StorageClass.INFREQUENT_ACCESS,
              transitionAfter: props.infrequentAccessAfter,
            },
          ];
    const bucket = new Bucket(this, "Bucket", {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy,
      serverAccessLogsBucket: accessLogsBucket,
      serverAccessLogsPrefix: "bucket/",
      lifecycleRules: [
        {
          // Uploads interrupted by a Lambda timeout leave parts that are billed until aborted.
          abortIncompleteMultipartUploadAfter: Duration.days(1),
          expiration: props.objectExpiration,
          transitions,
        },
      ],
    });
    return { bucket, accessLogsBucket: createdLogs };
  }

  private createFunction(
    id: string,
    options: {
      handlerName: HandlerName;
      description: string;
      memorySize: number;
      timeout: Duration;
      logRetention: RetentionDays;
      environment: Record<string, string>;
      /** The config file to ship next to the bundle; its directory is scratch space. */
      configSource: string;
    },
  ): NodejsFunction {
    const logGroup = new LogGroup(this, `${id}Logs`, { retention: options.logRetention });
    // An own role instead of AWSLambdaBasicExecutionRole: logs go to this one group only.
    const role = new Role(this, `${id}Role`, {
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      inlinePolicies: {
        logs: new PolicyDocument({
          statements: [
            new PolicyStatement({
              actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
              resources: [logGroup.logGroupArn],
            }),
          ],
        }),
      },
    });
    return new NodejsFunction(this, id, {
      ...handlerCode(options.handlerName, options.configSource),
      description: options.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: options.memorySize,
      timeout: options.timeout,
      role,
      logGroup,
      loggingFormat: LoggingFormat.JSON,
      environment: options.environment,
    });
  }

  private grantPermissions(props: MailIngestionProps): void {
    const stack = Stack.of(this);
    this.jobsQueue.grantSendMessages(this.dispatcher);
    // Continuation jobs when the deadline or a per-run cap leaves mail on the server.
    this.jobsQueue.grantSendMessages(this.poller);
    this.outputQueue.grantSendMessages(this.poller);
    props.eventBus?.grantPutEventsTo(this.poller);

    // Explicit actions: the bucket grant* helpers use wildcards such as s3:GetObject*.
    const prefix = props.bucketPrefix ?? "";
    const objects = this.bucket.arnForObjects(`${prefix}*`);
    this.poller.addToRolePolicy(
      new PolicyStatement({
        // Messages, MIME parts and the per-mailbox UIDL state.
        actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
        resources: [objects],
      }),
    );
    if (this.poller.role) {
      Validations.of(this.poller.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${flattenCfnReference(stack.resolve(objects))}]`,
        reason:
          "Object keys are derived from message ids at run time; the grant is limited to the ingestion prefix of this one bucket, with no wildcard actions.",
      });
    }
    this.poller.addToRolePolicy(
      new PolicyStatement({
        // Without ListBucket a missing key answers 403 instead of 404.
        actions: ["s3:ListBucket"],
        resources: [this.bucket.bucketArn],
        ...(prefix ? { conditions: { StringLike: { "s3:prefix": [`${prefix}*`] } } } : {}),
      }),
    );
    const bucketKey = this.bucket.encryptionKey;
    if (bucketKey) {
      this.poller.addToRolePolicy(
        new PolicyStatement({
          actions: ["kms:Decrypt", "kms:GenerateDataKey"],
          resources: [bucketKey.keyArn],
        }),
      );
    }

    this.poller.addToRolePolicy(
      new PolicyStatement({
        // PutSecretValue stores rotated OAuth2 refresh tokens.
        actions: ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
        resources: this.secretResources(props),
      }),
    );
    if (props.secretsKey) {
      this.poller.addToRolePolicy(
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ["kms:Decrypt", "kms:GenerateDataKey"],
          resources: [props.secretsKey.keyArn],
          conditions: {
            StringEquals: { "kms:ViaService": `secretsmanager.${stack.region}.amazonaws.com` },
          },
        }),
      );
    }
  }

  /**
   * The secrets the poller may read and update: exactly the named ones while their ARNs fit in the
   * role policy, else every secret under `secretNamePrefix`. The prefix grant is the trade-off
   * that lets one construct hold thousands of mailboxes: still no wildcard action, and only secrets
   * in this account and region under that prefix, but any such secret, including ones created
   * later for another purpose. Keep the prefix for mailbox secrets only.
   */
  private secretResources(props: MailIngestionProps): string[] {
    const stack = Stack.of(this);
    const secretIds = [...new Set(props.mailboxes.map((m) => m.password.secretId))];
    const secretArn = (resourceName: string) =>
      stack.formatArn({
        service: "secretsmanager",
        resource: "secret",
        resourceName,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    const exactChars = secretIds.reduce(
      (sum, id) => sum + id.length + SECRET_ARN_OVERHEAD_CHARS,
      0,
    );
    if (secretIds.length <= EXACT_SECRET_GRANT_LIMIT && exactChars <= EXACT_SECRET_ARNS_MAX_CHARS) {
      // Secrets Manager appends "-" and 6 random characters to every secret ARN.
      return secretIds.map((id) => (id.startsWith("arn:") ? id : secretArn(`${id}-??????`)));
    }
    const prefix = props.secretNamePrefix ?? "mail-ingest/";
    if (!SECRET_NAME_PATTERN.test(prefix)) {
      throw new ConfigError("secretNamePrefix", "must be a non-empty secret name prefix");
    }
    for (const [i, mailbox] of props.mailboxes.entries()) {
      if (!mailbox.password.secretId.startsWith(prefix)) {
        throw new ConfigError(
          `mailboxes[${i}].password.secretId`,
          `must be a secret name starting with "${prefix}" (secretNamePrefix): ${secretIds.length} secrets are too many to grant one by one within IAM's role policy size limit`,
        );
      }
    }
    const resource = secretArn(`${prefix}*`);
    if (this.poller.role) {
      Validations.of(this.poller.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${flattenCfnReference(stack.resolve(resource))}]`,
        reason: `${secretIds.length} mailbox secrets exceed what IAM's role policy size allows by exact ARN; the grant is limited to secrets named "${prefix}*" in this account and region, with no wildcard actions.`,
      });
    }
    return [resource];
  }

  private createAlarms(props: MailIngestionProps): MailIngestionAlarms {
    const action = props.alarmTopic ? new SnsAction(props.alarmTopic) : undefined;
    const alarm = (id: string, alarmProps: ConstructorParameters<typeof Alarm>[2]) => {
      const created = new Alarm(this, id, alarmProps);
      if (action) created.addAlarmAction(action);
      return created;
    };
    const fiveMinutes = Duration.minutes(5);
    const dlqAlarm = (id: string, queue: IQueue, what: string) =>
      alarm(id, {
        alarmDescription: `mail-ingest: ${what}`,
        metric: queue.metricApproximateNumberOfMessagesVisible({
          period: fiveMinutes,
          statistic: "Maximum",
        }),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
    const errorsAlarm = (id: string, fn: NodejsFunction, what: string) =>
      alarm(id, {
        alarmDescription: `mail-ingest: ${what}`,
        metric: fn.metricErrors({ period: fiveMinutes, statistic: "Sum" }),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
    // Metrics Insights over the whole namespace: whatever dimensions the poller adds (service,
    // mailbox), every series is included, so no per-mailbox alarm is needed.
    const insights = (query: string, period: Duration) =>
      new MathExpression({ expression: query, usingMetrics: {}, period });

    const backlogAfter = props.backlogAlarmAfter ?? Duration.hours(2);
    const backlogPeriod = Duration.minutes(15);
    const backlogPeriods = Math.max(1, Math.ceil(backlogAfter.toMinutes() / 15));
    if (backlogPeriods * 15 > 180) {
      // Metrics Insights alarms evaluate at most the last 3 hours.
      throw new ConfigError("backlogAlarmAfter", "must be at most 3 hours");
    }

    return {
      jobsDlqDepth: dlqAlarm("JobsDlqDepth", this.jobsDlq, "mailbox jobs failed repeatedly"),
      outputDlqDepth: this.outputDlq
        ? dlqAlarm("OutputDlqDepth", this.outputDlq, "output messages a consumer could not process")
        : undefined,
      pollerErrors: errorsAlarm("PollerErrors", this.poller, "poller invocations crashed"),
      dispatcherErrors: errorsAlarm("DispatcherErrors", this.dispatcher, "dispatcher failed"),
      authFailures: alarm("AuthFailures", {
        alarmDescription: "mail-ingest: a POP3 server rejected a mailbox's credentials",
        metric: insights(
          `SELECT SUM(${Metrics.authFailures}) FROM "${Metrics.namespace}"`,
          fiveMinutes,
        ),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      backlog: alarm("Backlog", {
        alarmDescription: `mail-ingest: a mailbox kept mail on the server for ${backlogPeriods * 15} minutes`,
        // MAX over every mailbox: above zero in every period means some mailbox never drained.
        metric: insights(
          `SELECT MAX(${Metrics.backlog}) FROM "${Metrics.namespace}"`,
          backlogPeriod,
        ),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: backlogPeriods,
        datapointsToAlarm: backlogPeriods,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
    };
  }
}
