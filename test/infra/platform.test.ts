/**
 * The props platform teams ask for first (issue 11): the poller in a VPC, customer-managed KMS
 * keys, tags on every resource, and the cdk-nag stance (AwsSolutions and NIST 800-53 rev 5 with
 * zero unacknowledged findings) for both the default and the hardened construct. Bundling is
 * skipped: these tests read the template and the validation report only.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App, Stack, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { CfnAlarm } from "aws-cdk-lib/aws-cloudwatch";
import { SecurityGroup, Vpc } from "aws-cdk-lib/aws-ec2";
import { Key } from "aws-cdk-lib/aws-kms";
import type { CfnFunction } from "aws-cdk-lib/aws-lambda";
import type { CfnLogGroup } from "aws-cdk-lib/aws-logs";
import type { CfnBucket } from "aws-cdk-lib/aws-s3";
import { Bucket } from "aws-cdk-lib/aws-s3";
import { Topic } from "aws-cdk-lib/aws-sns";
import { AwsSolutionsChecks, NIST80053R5Checks } from "cdk-nag";
import { afterAll, describe, expect, it } from "vitest";
import {
  type MailboxDefinition,
  MailIngestion,
  type MailIngestionProps,
} from "../../infra/mail-ingestion.ts";
import { isMailIngestError } from "../../lambdas/errors.ts";
import { actionsOf, cdkJsonContext, identityStatements, type Statement } from "./helpers.ts";

const mailbox: MailboxDefinition = {
  id: "support",
  host: "pop.example.com",
  username: "support@example.com",
  password: { secretId: "mail-ingest/support" },
};
const SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"];
const SECURITY_GROUP = "sg-0123456789abcdef0";

const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Synthesizes one construct with both nag packs; throws on any unacknowledged finding. `tamper`
 * edits the construct after it is built, to undo what a prop fixed.
 */
function synth(
  extra: (stack: Stack) => Partial<MailIngestionProps>,
  tamper?: (ingestion: MailIngestion, stack: Stack) => void,
) {
  const outdir = mkdtempSync(path.join(tmpdir(), "mail-ingest-platform-"));
  outdirs.push(outdir);
  const app = new App({
    outdir,
    context: { ...cdkJsonContext(), "aws:cdk:bundling-stacks": [] },
  });
  const stack = new Stack(app, "Test", { env: { account: "123456789012", region: "eu-west-1" } });
  const ingestion = new MailIngestion(stack, "Ingest", { mailboxes: [mailbox], ...extra(stack) });
  tamper?.(ingestion, stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));
  const assembly = app.synth();
  const report = JSON.parse(
    readFileSync(path.join(assembly.directory, "validation-report.json"), "utf8"),
  );
  return { stack, ingestion, template: Template.fromStack(stack), report };
}

/** An imported VPC and key holder, so the fixtures add no resources of their own to nag. */
function network(stack: Stack) {
  const vpc = Vpc.fromVpcAttributes(stack, "Vpc", {
    vpcId: "vpc-0123456789abcdef0",
    availabilityZones: ["eu-west-1a", "eu-west-1b"],
    privateSubnetIds: SUBNETS,
  });
  return { vpc, securityGroup: SecurityGroup.fromSecurityGroupId(stack, "Sg", SECURITY_GROUP) };
}

const logicalId = (stack: Stack, construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as never);

function functionProps(template: Template, stack: Stack, fn: { node: { defaultChild?: unknown } }) {
  return template.findResources("AWS::Lambda::Function")[logicalId(stack, fn)]?.Properties;
}

/** The statements of one function's role: its inline policies and its default policy. */
function roleStatements(
  template: Template,
  stack: Stack,
  fn: MailIngestion["poller"],
): Statement[] {
  const role = fn.role;
  if (!role) throw new Error("function has no role");
  const owners = [
    logicalId(stack, role),
    stack.getLogicalId(role.node.findChild("DefaultPolicy").node.defaultChild as never),
  ];
  return identityStatements(template)
    .filter(({ owner }) => owners.includes(owner))
    .map(({ statement }) => statement);
}

const violations = (report: { pluginReports: { violations?: unknown[] }[] }) =>
  report.pluginReports.flatMap((r) => r.violations ?? []);

describe("vpc", () => {
  it("runs the poller in the given subnets and security groups, and the dispatcher outside any VPC", () => {
    const { template, stack, ingestion } = synth((s) => {
      const { vpc, securityGroup } = network(s);
      return { vpc, vpcSubnets: { subnets: vpc.privateSubnets }, securityGroups: [securityGroup] };
    });
    expect(functionProps(template, stack, ingestion.poller).VpcConfig).toEqual({
      SubnetIds: SUBNETS,
      SecurityGroupIds: [SECURITY_GROUP],
    });
    expect(functionProps(template, stack, ingestion.dispatcher).VpcConfig).toBeUndefined();
  });

  it("lets only the poller's role manage the network interfaces Lambda needs in a VPC", () => {
    const { template, stack, ingestion } = synth((s) => ({ vpc: network(s).vpc }));
    const eni = roleStatements(template, stack, ingestion.poller).filter((s) =>
      actionsOf(s).includes("ec2:CreateNetworkInterface"),
    );
    expect(eni).toHaveLength(1);
    expect(actionsOf(eni[0] as Statement)).toContain("ec2:DeleteNetworkInterface");
    const dispatcherEc2 = roleStatements(template, stack, ingestion.dispatcher).filter((s) =>
      actionsOf(s).some((a) => a.startsWith("ec2:")),
    );
    expect(dispatcherEc2).toEqual([]);
  });

  it("creates one security group for the poller when none is given", () => {
    const { template, stack, ingestion } = synth((s) => ({ vpc: network(s).vpc }));
    template.resourceCountIs("AWS::EC2::SecurityGroup", 1);
    const [groupId] = Object.keys(template.findResources("AWS::EC2::SecurityGroup"));
    expect(functionProps(template, stack, ingestion.poller).VpcConfig.SecurityGroupIds).toEqual([
      { "Fn::GetAtt": [groupId, "GroupId"] },
    ]);
  });

  it("grants no network-interface actions when the poller runs outside a VPC", () => {
    const { template } = synth(() => ({}));
    const ec2 = identityStatements(template).filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith("ec2:")),
    );
    expect(ec2).toEqual([]);
    for (const fn of Object.values(template.findResources("AWS::Lambda::Function"))) {
      expect(fn.Properties.VpcConfig).toBeUndefined();
    }
  });

  it("rejects subnets or security groups without a vpc", () => {
    let thrown: unknown;
    try {
      synth((s) => ({ securityGroups: [network(s).securityGroup] }));
    } catch (err) {
      thrown = err;
    }
    expect(isMailIngestError(thrown, "CONFIG_INVALID")).toBe(true);
    expect((thrown as Error).message).toMatch(/need `vpc`/);
  });
});

describe("customer-managed KMS keys", () => {
  const keyed = () => {
    let key: Key | undefined;
    const built = synth((s) => {
      key = new Key(s, "Key", { enableKeyRotation: true });
      return { encryptionKey: key };
    });
    if (!key) throw new Error("no key");
    return { ...built, keyRef: { "Fn::GetAtt": [logicalId(built.stack, key), "Arn"] } };
  };

  it("encrypts the bucket with the key and S3 Bucket Keys; the access logs bucket stays SSE-S3", () => {
    const { template, stack, ingestion, keyRef } = keyed();
    const buckets = template.findResources("AWS::S3::Bucket");
    expect(buckets[logicalId(stack, ingestion.bucket)]?.Properties.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [
        {
          BucketKeyEnabled: true,
          ServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms", KMSMasterKeyID: keyRef },
        },
      ],
    });
    const logs = buckets[logicalId(stack, ingestion.accessLogsBucket as never)];
    expect(logs?.Properties.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      { ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } },
    ]);
  });

  it("encrypts all five queues and both log groups with the key", () => {
    const { template, keyRef } = keyed();
    const queues = Object.values(template.findResources("AWS::SQS::Queue"));
    expect(queues).toHaveLength(5);
    for (const queue of queues) {
      expect(queue.Properties.KmsMasterKeyId).toEqual(keyRef);
      expect(queue.Properties.SqsManagedSseEnabled).toBeUndefined();
    }
    const groups = Object.values(template.findResources("AWS::Logs::LogGroup"));
    expect(groups).toHaveLength(2);
    for (const group of groups) expect(group.Properties.KmsKeyId).toEqual(keyRef);
  });

  it("grants each function exactly the key actions it needs, with no wildcard action", () => {
    const { template, stack, ingestion, keyRef } = keyed();
    const keyActions = (fn: MailIngestion["poller"]) =>
      [
        ...new Set(
          roleStatements(template, stack, fn)
            .filter((s) => JSON.stringify(s.Resource) === JSON.stringify(keyRef))
            .flatMap(actionsOf),
        ),
      ].sort();
    // The dispatcher sends jobs; the poller also receives them, sends metadata and stores objects.
    expect(keyActions(ingestion.dispatcher)).toEqual(["kms:Decrypt", "kms:GenerateDataKey"]);
    expect(keyActions(ingestion.poller)).toEqual(["kms:Decrypt", "kms:GenerateDataKey"]);
    for (const { statement } of identityStatements(template)) {
      for (const action of actionsOf(statement)) expect(action).not.toContain("*");
    }
  });

  it("lets CloudWatch Logs use the key, for this account's log groups only", () => {
    const { template } = keyed();
    const key = Object.values(template.findResources("AWS::KMS::Key"))[0];
    const logs = key?.Properties.KeyPolicy.Statement.find(
      (s: { Principal?: { Service?: string } }) =>
        s.Principal?.Service === "logs.eu-west-1.amazonaws.com",
    );
    expect(logs?.Action).toEqual(expect.arrayContaining(["kms:Encrypt", "kms:GenerateDataKey"]));
    expect(logs?.Condition).toEqual({
      ArnLike: {
        "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:123456789012:log-group:*",
      },
    });
  });

  it("grants the poller an existing bucket's key named in bucketEncryptionKey", () => {
    const keyArn = "arn:aws:kms:eu-west-1:123456789012:key/0f6c1e8a-1111-2222-3333-444455556666";
    const { template, stack, ingestion } = synth((s) => ({
      bucket: Bucket.fromBucketName(s, "Archive", "corp-mail-archive"),
      bucketEncryptionKey: Key.fromKeyArn(s, "ArchiveKey", keyArn),
    }));
    template.resourceCountIs("AWS::S3::Bucket", 0);
    const onKey = roleStatements(template, stack, ingestion.poller).filter(
      (s) => s.Resource === keyArn,
    );
    expect(onKey.flatMap(actionsOf).sort()).toEqual(["kms:Decrypt", "kms:GenerateDataKey"]);
  });

  it("uses per-resource keys over encryptionKey", () => {
    const keys: Record<string, Key> = {};
    const { template, stack, ingestion } = synth((s) => {
      for (const name of ["All", "Bucket", "Queue", "Log"]) {
        keys[name] = new Key(s, `${name}Key`, { enableKeyRotation: true });
      }
      return {
        encryptionKey: keys.All,
        bucketEncryptionKey: keys.Bucket,
        queueEncryptionKey: keys.Queue,
        logEncryptionKey: keys.Log,
      };
    });
    const arn = (name: string) => ({
      "Fn::GetAtt": [logicalId(stack, keys[name] as Key), "Arn"],
    });
    const bucket = template.findResources("AWS::S3::Bucket")[logicalId(stack, ingestion.bucket)];
    expect(
      bucket?.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0]
        .ServerSideEncryptionByDefault.KMSMasterKeyID,
    ).toEqual(arn("Bucket"));
    for (const queue of Object.values(template.findResources("AWS::SQS::Queue"))) {
      expect(queue.Properties.KmsMasterKeyId).toEqual(arn("Queue"));
    }
    for (const group of Object.values(template.findResources("AWS::Logs::LogGroup"))) {
      expect(group.Properties.KmsKeyId).toEqual(arn("Log"));
    }
    // encryptionKey is overridden everywhere, so nothing but its own definition names it.
    const { [logicalId(stack, keys.All as Key)]: _all, ...others } = template.toJSON().Resources;
    expect(JSON.stringify(others)).not.toContain(logicalId(stack, keys.All as Key));
  });
});

describe("tags", () => {
  it("tags every taggable resource the construct creates", () => {
    const { template } = synth((s) => ({
      vpc: network(s).vpc,
      tags: { CostCenter: "mail-1234", Owner: "platform" },
    }));
    const taggable = [
      "AWS::S3::Bucket",
      "AWS::SQS::Queue",
      "AWS::Lambda::Function",
      "AWS::IAM::Role",
      "AWS::Logs::LogGroup",
      "AWS::EC2::SecurityGroup",
    ];
    for (const type of taggable) {
      const resources = Object.entries(template.findResources(type));
      expect(resources.length, type).toBeGreaterThan(0);
      for (const [id, resource] of resources) {
        expect(resource.Properties.Tags, id).toEqual(
          expect.arrayContaining([
            { Key: "CostCenter", Value: "mail-1234" },
            { Key: "Owner", Value: "platform" },
          ]),
        );
      }
    }
  });
});

describe("cdk-nag", () => {
  it("runs both packs: a stray unencrypted, TLS-optional topic fails synthesis under each", () => {
    const build = () =>
      synth(
        () => ({}),
        (_, stack) => new Topic(stack, "Stray"),
      );
    expect(build).toThrow(/AwsSolutions-SNS3/);
    expect(build).toThrow(/NIST\.800\.53\.R5-SNSEncryptedKMS/);
  });

  it("reports no unacknowledged AwsSolutions or NIST 800-53 rev 5 finding with default props", () => {
    const { report } = synth(() => ({}));
    expect(violations(report)).toEqual([]);
  });

  it("reports no unacknowledged finding with a VPC, a customer-managed key and an alarm topic", () => {
    const { report } = synth((s) => ({
      vpc: network(s).vpc,
      encryptionKey: new Key(s, "Key", { enableKeyRotation: true }),
      alarmTopic: Topic.fromTopicArn(s, "Pager", "arn:aws:sns:eu-west-1:123456789012:pager"),
    }));
    expect(violations(report)).toEqual([]);
  });

  it("acknowledges a KMS, VPC or alarm-action finding only while the prop that fixes it is absent", () => {
    const hardened = (s: Stack): Partial<MailIngestionProps> => ({
      vpc: network(s).vpc,
      encryptionKey: new Key(s, "Key", { enableKeyRotation: true }),
      alarmTopic: Topic.fromTopicArn(s, "Pager", "arn:aws:sns:eu-west-1:123456789012:pager"),
    });
    // cdk-nag reads the L1 properties, so the tampering sets those (not template overrides).
    const l1 = <T>(construct: { node: { defaultChild?: unknown } }) =>
      construct.node.defaultChild as T;
    const undo: [RegExp, (ingestion: MailIngestion) => void][] = [
      [
        /NIST\.800\.53\.R5-S3DefaultEncryptionKMS/,
        (i) => {
          l1<CfnBucket>(i.bucket).bucketEncryption = undefined;
        },
      ],
      [
        /NIST\.800\.53\.R5-CloudWatchLogGroupEncrypted/,
        (i) => {
          l1<CfnLogGroup>(i.poller.logGroup).kmsKeyId = undefined;
        },
      ],
      [
        /NIST\.800\.53\.R5-LambdaInsideVPC/,
        (i) => {
          l1<CfnFunction>(i.poller).vpcConfig = undefined;
        },
      ],
      [
        /NIST\.800\.53\.R5-CloudWatchAlarmAction/,
        (i) => {
          l1<CfnAlarm>(i.alarms.backlog).alarmActions = undefined;
        },
      ],
    ];
    for (const [finding, tamper] of undo) {
      expect(() => synth(hardened, tamper)).toThrow(finding);
    }
  });
});
