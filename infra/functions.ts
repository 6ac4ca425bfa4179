/**
 * The two Lambda functions and their bundling. Every function of the construct is created here,
 * by {@link handlerFunction}: its own log group, its own role, ESM bundle with `config.json`.
 */
import { ArnFormat, Duration, Stack } from "aws-cdk-lib";
import type { ISecurityGroup, IVpc, SubnetSelection } from "aws-cdk-lib/aws-ec2";
import { PolicyDocument, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IKey } from "aws-cdk-lib/aws-kms";
import {
  Architecture,
  type DestinationConfig,
  type IDestination,
  type IFunction,
  LoggingFormat,
  Runtime,
} from "aws-cdk-lib/aws-lambda";
import { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { CONFIG_FILE_NAME, HandlerEnv, Metrics } from "./contract.ts";
import { type HandlerName, handlerCode, stageConfig } from "./handler-code.ts";
import { grantSend } from "./permissions.ts";

/** Where the poller runs when it must reach POP3 servers from fixed addresses. */
export interface PollerNetwork {
  readonly vpc: IVpc;
  readonly vpcSubnets?: SubnetSelection;
  readonly securityGroups?: ISecurityGroup[];
}

export interface FunctionsOptions {
  /** The `config.json` both code packages carry. */
  readonly configJson: string;
  readonly jobsQueueUrl: string;
  readonly bucketName: string;
  readonly bucketPrefix?: string;
  readonly outputQueueUrl: string;
  readonly eventBusName?: string;
  readonly dispatcherMemorySize: number;
  readonly dispatcherTimeout: Duration;
  readonly pollerMemorySize: number;
  readonly pollerTimeout: Duration;
  readonly logRetention: RetentionDays;
  /** Encrypts both log groups; else CloudWatch Logs' own encryption. */
  readonly logEncryptionKey?: IKey;
  readonly pollerNetwork?: PollerNetwork;
  /** The poller's reserved concurrency (at least the event source's `maxConcurrency`). */
  readonly pollerReservedConcurrency: number;
  /** The schedule's period: the dispatcher's events expire after it, the poller drops jobs older. */
  readonly schedulePeriod: Duration;
  /** Where the dispatcher's failed asynchronous invocations go. */
  readonly dispatchDlq: IQueue;
  /** The output queue's maximum message size, bytes; above it the poller sends pointers. */
  readonly outputMaxMessageBytes: number;
  readonly perMailboxMetrics: boolean;
  readonly tokenWriteBackAfter: Duration;
  readonly secretCacheTtl: Duration;
}

export interface Functions {
  readonly dispatcher: NodejsFunction;
  readonly poller: NodejsFunction;
}

export function createFunctions(scope: Construct, options: FunctionsOptions): Functions {
  // Each code package carries this file. It must exist only while the functions are constructed:
  // bundling runs synchronously in the NodejsFunction constructor.
  const config = stageConfig(CONFIG_FILE_NAME, options.configJson);
  const configSource = config.path;
  const commonEnv = {
    [HandlerEnv.configFile]: CONFIG_FILE_NAME,
    [HandlerEnv.jobsQueueUrl]: options.jobsQueueUrl,
    POWERTOOLS_SERVICE_NAME: Metrics.serviceName,
    POWERTOOLS_METRICS_NAMESPACE: Metrics.namespace,
    NODE_OPTIONS: "--enable-source-maps",
  };
  if (options.logEncryptionKey) allowLogsToUseKey(options.logEncryptionKey);
  try {
    const dispatcher = handlerFunction(scope, "Dispatcher", {
      handler: "dispatcher",
      description: "mail-ingest: enqueues one FIFO job per mailbox per schedule tick",
      memorySize: options.dispatcherMemorySize,
      timeout: options.dispatcherTimeout,
      logRetention: options.logRetention,
      logEncryptionKey: options.logEncryptionKey,
      environment: commonEnv,
      configSource,
    });
    dispatcher.configureAsyncInvoke({
      // A tick older than one period is superseded by the next one, which enqueues the same jobs.
      maxEventAge: Duration.seconds(Math.min(options.schedulePeriod.toSeconds(), 6 * 60 * 60)),
      retryAttempts: 1,
      onFailure: new SendToQueue(options.dispatchDlq),
    });
    const poller = handlerFunction(scope, "Poller", {
      handler: "poller",
      description: "mail-ingest: runs one mailbox session per job, a batch's mailboxes at once",
      memorySize: options.pollerMemorySize,
      timeout: options.pollerTimeout,
      logRetention: options.logRetention,
      logEncryptionKey: options.logEncryptionKey,
      environment: {
        ...commonEnv,
        [HandlerEnv.bucket]: options.bucketName,
        ...(options.bucketPrefix ? { [HandlerEnv.bucketPrefix]: options.bucketPrefix } : {}),
        [HandlerEnv.outputQueueUrl]: options.outputQueueUrl,
        ...(options.eventBusName ? { [HandlerEnv.eventBusName]: options.eventBusName } : {}),
        [HandlerEnv.outputMaxMessageBytes]: String(options.outputMaxMessageBytes),
        [HandlerEnv.perMailboxMetrics]: String(options.perMailboxMetrics),
        [HandlerEnv.schedulePeriodSeconds]: String(options.schedulePeriod.toSeconds()),
        [HandlerEnv.tokenWriteBackAfterSeconds]: String(options.tokenWriteBackAfter.toSeconds()),
        [HandlerEnv.secretCacheSeconds]: String(options.secretCacheTtl.toSeconds()),
      },
      configSource,
      network: options.pollerNetwork,
      reservedConcurrentExecutions: options.pollerReservedConcurrency,
    });
    return { dispatcher, poller };
  } finally {
    config.remove();
  }
}

/**
 * An SQS on-failure destination granted with {@link grantSend}: `SqsDestination` would grant
 * through `grantSendMessages`, whose KMS actions are wildcards.
 */
class SendToQueue implements IDestination {
  constructor(private readonly queue: IQueue) {}

  bind(_scope: Construct, fn: IFunction): DestinationConfig {
    grantSend(this.queue, fn);
    return { destination: this.queue.queueArn };
  }
}

/**
 * CloudWatch Logs encrypts with the key as the service itself, so the key policy must allow it
 * (CloudWatch Logs user guide, "Encrypt log data using AWS KMS"), limited to log groups of this
 * account and region. The actions are the guide's `Encrypt*`, `Decrypt*`, `ReEncrypt*`,
 * `GenerateDataKey*` and `Describe*`, written out. An imported key's policy cannot be changed
 * from here; `addToResourcePolicy` then does nothing and its owner adds the statement.
 */
function allowLogsToUseKey(key: IKey): void {
  const stack = Stack.of(key);
  key.addToResourcePolicy(
    new PolicyStatement({
      principals: [new ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
      actions: [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:GenerateDataKeyPair",
        "kms:GenerateDataKeyPairWithoutPlaintext",
        "kms:DescribeKey",
      ],
      resources: ["*"],
      conditions: {
        ArnLike: {
          "kms:EncryptionContext:aws:logs:arn": stack.formatArn({
            service: "logs",
            resource: "log-group",
            resourceName: "*",
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        },
      },
    }),
  );
}

function handlerFunction(
  scope: Construct,
  id: string,
  options: {
    /** The entry point's file name under `lambdas/handlers/`. */
    handler: HandlerName;
    description: string;
    memorySize: number;
    timeout: Duration;
    logRetention: RetentionDays;
    logEncryptionKey?: IKey;
    environment: Record<string, string>;
    /** The config file to ship next to the bundle; its directory is scratch space. */
    configSource: string;
    network?: PollerNetwork;
    reservedConcurrentExecutions?: number;
  },
): NodejsFunction {
  const logGroup = new LogGroup(scope, `${id}Logs`, {
    retention: options.logRetention,
    encryptionKey: options.logEncryptionKey,
  });
  // An own role instead of AWSLambdaBasicExecutionRole: logs go to this one group only.
  const role = new Role(scope, `${id}Role`, {
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
  return new NodejsFunction(scope, id, {
    ...handlerCode(options.handler, options.configSource),
    description: options.description,
    runtime: Runtime.NODEJS_24_X,
    architecture: Architecture.ARM_64,
    memorySize: options.memorySize,
    timeout: options.timeout,
    role,
    logGroup,
    loggingFormat: LoggingFormat.JSON,
    environment: options.environment,
    reservedConcurrentExecutions: options.reservedConcurrentExecutions,
    ...(options.network
      ? {
          vpc: options.network.vpc,
          vpcSubnets: options.network.vpcSubnets,
          securityGroups: options.network.securityGroups,
        }
      : {}),
  });
}
