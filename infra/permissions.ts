/**
 * What each function may do: explicit actions only (the `grant*` helpers of S3, and of SQS and KMS
 * for encrypted queues, use wildcards such as `s3:GetObject*` or `kms:GenerateDataKey*`), on
 * exactly the resources it uses. Also the secret-ARN arithmetic that keeps the poller's policy
 * under IAM's size limit.
 */
import { ArnFormat, Stack } from "aws-cdk-lib";
import type { IEventBus } from "aws-cdk-lib/aws-events";
import { Effect, type IGrantable, PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { IKey } from "aws-cdk-lib/aws-kms";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import type { IBucket } from "aws-cdk-lib/aws-s3";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import { ConfigError } from "../lambdas/config/index.ts";
import type { MailboxDefinition } from "./mailboxes.ts";

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
/** What a producer needs of an SSE-KMS queue's key (SQS developer guide, "Key management"). */
const KMS_SEND_ACTIONS = ["kms:GenerateDataKey", "kms:Decrypt"];
/** What a Lambda execution role needs to run in a VPC (the AWSLambdaVPCAccessExecutionRole EC2 actions). */
const VPC_NETWORK_INTERFACE_ACTIONS = [
  "ec2:CreateNetworkInterface",
  "ec2:DescribeNetworkInterfaces",
  "ec2:DescribeSubnets",
  "ec2:DeleteNetworkInterface",
  "ec2:AssignPrivateIpAddresses",
  "ec2:UnassignPrivateIpAddresses",
];

export interface PermissionsOptions {
  readonly dispatcher: IFunction;
  readonly poller: IFunction;
  readonly jobsQueue: IQueue;
  readonly outputQueue: IQueue;
  readonly bucket: IBucket;
  /** The key the bucket's objects are encrypted with, when SSE-KMS. */
  readonly bucketKey?: IKey;
  readonly bucketPrefix?: string;
  readonly eventBus?: IEventBus;
  readonly mailboxes: readonly MailboxDefinition[];
  readonly secretNamePrefix?: string;
  readonly secretsKey?: IKey;
  /** The poller runs in a VPC, so its role must manage its network interfaces. */
  readonly pollerInVpc: boolean;
}

/** Grants whose resources are patterns; each is acknowledged to cdk-nag by `nag-suppressions.ts`. */
export interface PatternGrants {
  /** The poller's object grant, `<bucket>/<prefix>*`. */
  readonly objects: string;
  /** The secrets grant by name prefix, when there are too many secrets to name one by one. */
  readonly secretPrefix?: {
    readonly resource: string;
    readonly prefix: string;
    readonly count: number;
  };
  /** `*` for the EC2 network-interface actions, which take no resource ARN, when in a VPC. */
  readonly networkInterfaces: boolean;
}

export function grantPermissions(options: PermissionsOptions): PatternGrants {
  const { dispatcher, poller, jobsQueue, outputQueue, bucket } = options;
  grantSend(jobsQueue, dispatcher);
  // Continuation jobs when the deadline or a per-run cap leaves mail on the server.
  grantSend(jobsQueue, poller);
  grantSend(outputQueue, poller);
  options.eventBus?.grantPutEventsTo(poller);

  const prefix = options.bucketPrefix ?? "";
  const objects = bucket.arnForObjects(`${prefix}*`);
  poller.addToRolePolicy(
    new PolicyStatement({
      // Messages, MIME parts and the per-mailbox UIDL state.
      actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
      resources: [objects],
    }),
  );
  poller.addToRolePolicy(
    new PolicyStatement({
      // Without ListBucket a missing key answers 403 instead of 404.
      actions: ["s3:ListBucket"],
      resources: [bucket.bucketArn],
      ...(prefix ? { conditions: { StringLike: { "s3:prefix": [`${prefix}*`] } } } : {}),
    }),
  );
  if (options.bucketKey) {
    poller.addToRolePolicy(
      new PolicyStatement({
        actions: ["kms:Decrypt", "kms:GenerateDataKey"],
        resources: [options.bucketKey.keyArn],
      }),
    );
  }

  const secrets = secretResources(poller, options);
  poller.addToRolePolicy(
    new PolicyStatement({
      // PutSecretValue stores rotated OAuth2 refresh tokens.
      actions: ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
      resources: secrets.resources,
    }),
  );
  if (options.secretsKey) {
    poller.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ["kms:Decrypt", "kms:GenerateDataKey"],
        resources: [options.secretsKey.keyArn],
        conditions: {
          StringEquals: {
            "kms:ViaService": `secretsmanager.${Stack.of(poller).region}.amazonaws.com`,
          },
        },
      }),
    );
  }
  if (options.pollerInVpc) {
    poller.addToRolePolicy(
      new PolicyStatement({ actions: VPC_NETWORK_INTERFACE_ACTIONS, resources: ["*"] }),
    );
  }
  return {
    objects,
    secretPrefix: secrets.prefix,
    networkInterfaces: options.pollerInVpc,
  };
}

/**
 * `grantSendMessages` without its KMS wildcards: the same SQS actions, and for an SSE-KMS queue
 * only the two key actions a producer needs.
 */
function grantSend(queue: IQueue, grantee: IGrantable): void {
  queue.grant(grantee, "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl");
  if (queue.encryptionMasterKey) {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: KMS_SEND_ACTIONS,
        resources: [queue.encryptionMasterKey.keyArn],
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
function secretResources(
  poller: IFunction,
  options: Pick<PermissionsOptions, "mailboxes" | "secretNamePrefix">,
): { resources: string[]; prefix?: PatternGrants["secretPrefix"] } {
  const stack = Stack.of(poller);
  const secretIds = [...new Set(options.mailboxes.map((m) => m.password.secretId))];
  const secretArn = (resourceName: string) =>
    stack.formatArn({
      service: "secretsmanager",
      resource: "secret",
      resourceName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  const exactChars = secretIds.reduce((sum, id) => sum + id.length + SECRET_ARN_OVERHEAD_CHARS, 0);
  if (secretIds.length <= EXACT_SECRET_GRANT_LIMIT && exactChars <= EXACT_SECRET_ARNS_MAX_CHARS) {
    // Secrets Manager appends "-" and 6 random characters to every secret ARN.
    return {
      resources: secretIds.map((id) => (id.startsWith("arn:") ? id : secretArn(`${id}-??????`))),
    };
  }
  const prefix = options.secretNamePrefix ?? "mail-ingest/";
  if (!SECRET_NAME_PATTERN.test(prefix)) {
    throw new ConfigError("secretNamePrefix", "must be a non-empty secret name prefix");
  }
  for (const [i, mailbox] of options.mailboxes.entries()) {
    if (!mailbox.password.secretId.startsWith(prefix)) {
      throw new ConfigError(
        `mailboxes[${i}].password.secretId`,
        `must be a secret name starting with "${prefix}" (secretNamePrefix): ${secretIds.length} secrets are too many to grant one by one within IAM's role policy size limit`,
      );
    }
  }
  const resource = secretArn(`${prefix}*`);
  return { resources: [resource], prefix: { resource, prefix, count: secretIds.length } };
}
