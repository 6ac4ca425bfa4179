/**
 * The cdk-nag stance, in one place: every finding of the AwsSolutions and NIST 800-53 rev 5 packs
 * that the construct does not fix is acknowledged here, on the one resource it concerns, with the
 * reason. Findings a prop fixes (a KMS key, a VPC, an alarm topic) are acknowledged only while
 * that prop is absent. `test/infra` runs both packs and fails on any unacknowledged finding.
 */
import { Stack, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";
import type { PatternGrants } from "./permissions.ts";

/** A rule's reason, applied to each subject. */
type Reason = string;

/** AwsSolutions findings the construct keeps, by rule. */
export const AwsSolutionsReasons = {
  accessLogsBucketLogging:
    "This is the server access logs bucket; logging it to itself would loop and to another bucket would only move the finding.",
  objectPrefixGrant:
    "Object keys are derived from message ids at run time; the grant is limited to the ingestion prefix of this one bucket, with no wildcard actions.",
  stateDeleteGrant:
    "The poller deletes folded state deltas and released leases, whose keys are per mailbox and per write; DeleteObject is limited to the state prefix of this one bucket, so stored mail cannot be deleted.",
  secretPrefixGrant: (count: number, prefix: string): Reason =>
    `${count} mailbox secrets exceed what IAM's role policy size allows by exact ARN; the grant is limited to secrets named "${prefix}*" in this account and region, with no wildcard actions.`,
  parameterPrefixGrant: (count: number, prefix: string): Reason =>
    `${count} mailbox parameters exceed what IAM's role policy size allows by exact ARN; the grant is limited to parameters named "/${prefix}*" in this account and region, with no wildcard actions.`,
  dispatchDlq:
    "This queue is itself a DLQ: the schedule's dead-letter target and the dispatcher's on-failure destination; its arrivals alarm.",
  networkInterfaces:
    "Lambda manages the poller's VPC network interfaces with these EC2 actions; the Describe actions take no resource ARN, and Lambda creates interfaces whose ids are unknown at deploy time (the same grant as AWSLambdaVPCAccessExecutionRole, without its logs wildcard).",
} as const;

/** NIST 800-53 rev 5 findings the construct keeps, by rule. */
export const NistReasons = {
  S3BucketReplicationEnabled:
    "Cross-region replication is an account-level recovery decision with its own cost and target; pass an existing replicated bucket as `bucket` to have it.",
  accessLogsVersioning:
    "Server access logs are written once by S3 log delivery and expire by lifecycle; versions would only keep deleted log objects longer.",
  accessLogsKms:
    "S3 server access log delivery writes only to SSE-S3 buckets, so the access logs bucket cannot use a KMS key.",
  bucketKms:
    "Encrypted with SSE-S3 by default; pass `encryptionKey` or `bucketEncryptionKey` to use a customer-managed key.",
  CloudWatchLogGroupEncrypted:
    "CloudWatch Logs encrypts log data with its own key by default; pass `encryptionKey` or `logEncryptionKey` to use a customer-managed key.",
  IAMNoInlinePolicy:
    "Each role is the construct's own and its policy names only that role's resources; a managed policy would only add a reusable copy of the same statements.",
  dispatcherConcurrency:
    "One schedule invokes the dispatcher, once per tick; reserved concurrency would take capacity from the account pool for no gain.",
  dispatcherDlq:
    "The dispatcher is invoked asynchronously and its event invoke config sends failed events to an on-failure destination queue, which alarms; a function DLQ would duplicate it.",
  pollerDlq:
    "The poller is invoked by an SQS event source, not asynchronously: failed jobs are redriven to the jobs DLQ, which alarms.",
  dispatcherVpc:
    "The dispatcher only calls SQS over TLS with its IAM role; a VPC would add NAT or endpoint cost without reducing what it can reach.",
  pollerVpc:
    "Pass `vpc` to run the poller in your VPC (e.g. behind a NAT with a fixed IP); without it the poller reaches POP3 servers and AWS APIs over TLS from Lambda's network.",
  alarmAction:
    "No `alarmTopic` was given; the alarm still shows in the console. Pass `alarmTopic` to be notified.",
} as const;

/** The constructs the findings are about, and which props were given. */
export interface NagSubjects {
  /** Created by the construct, so its settings are the construct's. */
  readonly bucket?: IConstruct;
  readonly bucketKmsEncrypted: boolean;
  readonly accessLogsBucket?: IConstruct;
  readonly logGroups: readonly IConstruct[];
  readonly logsKmsEncrypted: boolean;
  readonly roles: readonly IConstruct[];
  readonly dispatcher: IConstruct;
  readonly poller: IConstruct;
  readonly dispatchDlq: IConstruct;
  readonly pollerRole: IConstruct;
  readonly pollerInVpc: boolean;
  readonly alarms: readonly IConstruct[];
  readonly alarmsHaveAction: boolean;
  readonly grants: PatternGrants;
}

const acknowledge = (subject: IConstruct, id: string, reason: Reason) =>
  Validations.of(subject).acknowledge({ id, reason });
const nist = (subject: IConstruct, rule: string, reason: Reason) =>
  acknowledge(subject, `NIST.800.53.R5-${rule}`, reason);

export function acknowledgeNagFindings(s: NagSubjects): void {
  const stack = Stack.of(s.pollerRole);
  const resourceFinding = (resource: string) =>
    `AwsSolutions-IAM5[Resource::${flattenCfnReference(stack.resolve(resource))}]`;

  if (s.accessLogsBucket) {
    acknowledge(s.accessLogsBucket, "AwsSolutions-S1", AwsSolutionsReasons.accessLogsBucketLogging);
    nist(s.accessLogsBucket, "S3DefaultEncryptionKMS", NistReasons.accessLogsKms);
  }
  for (const bucket of [s.bucket, s.accessLogsBucket]) {
    if (!bucket) continue;
    nist(bucket, "S3BucketReplicationEnabled", NistReasons.S3BucketReplicationEnabled);
  }
  if (s.accessLogsBucket) {
    nist(s.accessLogsBucket, "S3BucketVersioningEnabled", NistReasons.accessLogsVersioning);
  }
  if (s.bucket && !s.bucketKmsEncrypted) {
    nist(s.bucket, "S3DefaultEncryptionKMS", NistReasons.bucketKms);
  }
  if (!s.logsKmsEncrypted) {
    for (const group of s.logGroups) {
      nist(group, "CloudWatchLogGroupEncrypted", NistReasons.CloudWatchLogGroupEncrypted);
    }
  }

  acknowledge(
    s.pollerRole,
    resourceFinding(s.grants.objects),
    AwsSolutionsReasons.objectPrefixGrant,
  );
  acknowledge(
    s.pollerRole,
    resourceFinding(s.grants.stateObjects),
    AwsSolutionsReasons.stateDeleteGrant,
  );
  if (s.grants.secretPrefix) {
    const { resource, count, prefix } = s.grants.secretPrefix;
    acknowledge(
      s.pollerRole,
      resourceFinding(resource),
      AwsSolutionsReasons.secretPrefixGrant(count, prefix),
    );
  }
  if (s.grants.parameterPrefix) {
    const { resource, count, prefix } = s.grants.parameterPrefix;
    acknowledge(
      s.pollerRole,
      resourceFinding(resource),
      AwsSolutionsReasons.parameterPrefixGrant(count, prefix),
    );
  }
  acknowledge(s.dispatchDlq, "AwsSolutions-SQS3", AwsSolutionsReasons.dispatchDlq);
  if (s.grants.networkInterfaces) {
    acknowledge(
      s.pollerRole,
      "AwsSolutions-IAM5[Resource::*]",
      AwsSolutionsReasons.networkInterfaces,
    );
  }
  for (const role of s.roles) nist(role, "IAMNoInlinePolicy", NistReasons.IAMNoInlinePolicy);

  nist(s.dispatcher, "LambdaConcurrency", NistReasons.dispatcherConcurrency);
  nist(s.dispatcher, "LambdaDLQ", NistReasons.dispatcherDlq);
  nist(s.poller, "LambdaDLQ", NistReasons.pollerDlq);
  nist(s.dispatcher, "LambdaInsideVPC", NistReasons.dispatcherVpc);
  if (!s.pollerInVpc) nist(s.poller, "LambdaInsideVPC", NistReasons.pollerVpc);

  if (!s.alarmsHaveAction) {
    for (const alarm of s.alarms) nist(alarm, "CloudWatchAlarmAction", NistReasons.alarmAction);
  }
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
