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

/** The key prefix, under the bucket prefix, of the per-mailbox UIDL state and the mailbox leases. */
export const STATE_PREFIX = "state/";

/**
 * Up to this many secrets and parameters (together) are granted by exact ARN. IAM allows 10,240
 * characters across a role's inline policies; the poller's other statements take about 2,500.
 */
export const EXACT_SECRET_GRANT_LIMIT = 50;
/** Exact ARNs above this many characters in total (long secret names) switch to the prefix too. */
const EXACT_SECRET_ARNS_MAX_CHARS = 6000;
/** A resolved secret ARN without its name: `arn:<partition>:secretsmanager:<region>:<account>:secret:`, the `-??????` suffix and JSON quoting. */
const SECRET_ARN_OVERHEAD_CHARS = 80;
/** Characters Secrets Manager allows in a secret name. */
const SECRET_NAME_PATTERN = /^[A-Za-z0-9/_+=.@-]+$/;
/** Auth methods that may read OAuth2 JSON from the secret, and so write a rotated token back. */
const OAUTH_CAPABLE_AUTH = new Set([undefined, "auto", "xoauth2", "oauthbearer"]);
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
  /** KMS key of the SecureString parameters, when not the AWS managed `aws/ssm` key. */
  readonly ssmParametersKey?: IKey;
  /** The poller runs in a VPC, so its role must manage its network interfaces. */
  readonly pollerInVpc: boolean;
}

/** Grants whose resources are patterns; each is acknowledged to cdk-nag by `nag-suppressions.ts`. */
export interface PatternGrants {
  /** The poller's object grant, `<bucket>/<prefix>*`. */
  readonly objects: string;
  /** The poller's delete grant, `<bucket>/<prefix>state/*`. */
  readonly stateObjects: string;
  /** Grants by name prefix, when there are too many secrets and parameters to name one by one. */
  readonly secretPrefix?: PrefixGrant;
  readonly parameterPrefix?: PrefixGrant;
  /** `*` for the EC2 network-interface actions, which take no resource ARN, when in a VPC. */
  readonly networkInterfaces: boolean;
}

export interface PrefixGrant {
  readonly resource: string;
  readonly prefix: string;
  readonly count: number;
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
      // Messages, MIME parts, metadata and the per-mailbox UIDL state.
      actions: ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
      resources: [objects],
    }),
  );
  // Deletes only where the poller rewrites: folded state deltas and released leases. Stored mail
  // (raw/, parts/, meta/) is the only copy once a mailbox deletes after ingest, so the role that
  // fetches it can never delete it.
  const stateObjects = bucket.arnForObjects(`${prefix}${STATE_PREFIX}*`);
  poller.addToRolePolicy(
    new PolicyStatement({ actions: ["s3:DeleteObject"], resources: [stateObjects] }),
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

  const sources = passwordResources(poller, options);
  if (sources.secrets.length > 0) {
    poller.addToRolePolicy(
      new PolicyStatement({
        // PutSecretValue stores rotated OAuth2 refresh tokens.
        actions: ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
        resources: sources.secrets,
      }),
    );
  }
  if (sources.parameters.length > 0) {
    poller.addToRolePolicy(
      new PolicyStatement({ actions: ["ssm:GetParameter"], resources: sources.parameters }),
    );
  }
  if (sources.writableParameters.length > 0) {
    poller.addToRolePolicy(
      new PolicyStatement({
        // Rotated OAuth2 refresh tokens, only for mailboxes whose auth can be OAuth2.
        actions: ["ssm:PutParameter"],
        resources: sources.writableParameters,
      }),
    );
  }
  if (options.ssmParametersKey && sources.parameters.length > 0) {
    // The AWS managed aws/ssm key needs no statement here: its key policy already lets every
    // principal of the account use it through SSM. A customer-managed key needs Decrypt to read
    // a SecureString and Encrypt to write one (Parameter Store user guide, "AWS KMS").
    poller.addToRolePolicy(
      new PolicyStatement({
        actions:
          sources.writableParameters.length > 0 ? ["kms:Decrypt", "kms:Encrypt"] : ["kms:Decrypt"],
        resources: [options.ssmParametersKey.keyArn],
        conditions: {
          StringEquals: { "kms:ViaService": `ssm.${Stack.of(poller).region}.amazonaws.com` },
        },
      }),
    );
  }
  if (options.secretsKey && sources.secrets.length > 0) {
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
    stateObjects,
    secretPrefix: sources.secretPrefix,
    parameterPrefix: sources.parameterPrefix,
    networkInterfaces: options.pollerInVpc,
  };
}

/**
 * `grantSendMessages` without its KMS wildcards: the same SQS actions, and for an SSE-KMS queue
 * only the two key actions a producer needs.
 */
export function grantSend(queue: IQueue, grantee: IGrantable): void {
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
 * The secrets and parameters the poller may read and update: exactly the named ones while their
 * ARNs fit in the role policy, else every secret and parameter under `secretNamePrefix`. The
 * prefix grant is the trade-off that lets one construct hold thousands of mailboxes: still no
 * wildcard action, and only names in this account and region under that prefix, but any such
 * name, including ones created later for another purpose. Keep the prefix for mailbox secrets.
 */
function passwordResources(
  poller: IFunction,
  options: Pick<PermissionsOptions, "mailboxes" | "secretNamePrefix">,
): {
  secrets: string[];
  parameters: string[];
  writableParameters: string[];
  secretPrefix?: PrefixGrant;
  parameterPrefix?: PrefixGrant;
} {
  const stack = Stack.of(poller);
  const secretIds = new Set<string>();
  const parameters = new Set<string>();
  const writable = new Set<string>();
  for (const mailbox of options.mailboxes) {
    const source = mailbox.password;
    if ("secretId" in source) {
      secretIds.add(source.secretId);
    } else {
      parameters.add(source.ssmParameter);
      if (OAUTH_CAPABLE_AUTH.has(mailbox.auth)) writable.add(source.ssmParameter);
    }
  }
  const secretArn = (resourceName: string) =>
    stack.formatArn({
      service: "secretsmanager",
      resource: "secret",
      resourceName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  // A hierarchical name starts with "/", which the ARN's "parameter/" already supplies.
  const parameterArn = (name: string) =>
    name.startsWith("arn:")
      ? name
      : stack.formatArn({
          service: "ssm",
          resource: "parameter",
          resourceName: name.replace(/^\//, ""),
          arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
        });
  const names = [...secretIds, ...parameters];
  const exactChars = names.reduce((sum, id) => sum + id.length + SECRET_ARN_OVERHEAD_CHARS, 0);
  if (names.length <= EXACT_SECRET_GRANT_LIMIT && exactChars <= EXACT_SECRET_ARNS_MAX_CHARS) {
    return {
      // Secrets Manager appends "-" and 6 random characters to every secret ARN.
      secrets: [...secretIds].map((id) => (id.startsWith("arn:") ? id : secretArn(`${id}-??????`))),
      parameters: [...parameters].map(parameterArn),
      writableParameters: [...writable].map(parameterArn),
    };
  }
  const prefix = options.secretNamePrefix ?? "mail-ingest/";
  if (!SECRET_NAME_PATTERN.test(prefix)) {
    throw new ConfigError("secretNamePrefix", "must be a non-empty secret name prefix");
  }
  const tooMany = `${names.length} secrets and parameters are too many to grant one by one within IAM's role policy size limit`;
  for (const [i, mailbox] of options.mailboxes.entries()) {
    const source = mailbox.password;
    if ("secretId" in source) {
      if (!source.secretId.startsWith(prefix)) {
        throw new ConfigError(
          `mailboxes[${i}].password.secretId`,
          `must be a secret name starting with "${prefix}" (secretNamePrefix): ${tooMany}`,
        );
      }
    } else if (!source.ssmParameter.replace(/^\//, "").startsWith(prefix)) {
      throw new ConfigError(
        `mailboxes[${i}].password.ssmParameter`,
        `must be a parameter name starting with "/${prefix}" (secretNamePrefix): ${tooMany}`,
      );
    }
  }
  const secretResource = secretArn(`${prefix}*`);
  const parameterResource = parameterArn(`${prefix}*`);
  return {
    secrets: secretIds.size > 0 ? [secretResource] : [],
    parameters: parameters.size > 0 ? [parameterResource] : [],
    writableParameters: writable.size > 0 ? [parameterResource] : [],
    ...(secretIds.size > 0
      ? { secretPrefix: { resource: secretResource, prefix, count: secretIds.size } }
      : {}),
    ...(parameters.size > 0
      ? { parameterPrefix: { resource: parameterResource, prefix, count: parameters.size } }
      : {}),
  };
}
