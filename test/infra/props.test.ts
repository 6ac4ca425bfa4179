/**
 * The construct's props: existing resources, optional features and validation. Bundling is
 * skipped (`aws:cdk:bundling-stacks: []`) because these tests only read the template.
 */
import { App, Duration, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { EventBus } from "aws-cdk-lib/aws-events";
import { Bucket } from "aws-cdk-lib/aws-s3";
import { Queue } from "aws-cdk-lib/aws-sqs";
import { describe, expect, it } from "vitest";
import {
  type MailboxDefinition,
  MailIngestion,
  type MailIngestionProps,
} from "../../infra/mail-ingestion.ts";
import { parseDeployConfig } from "../../infra/stack.ts";
import { isMailIngestError } from "../../lambdas/errors.ts";
import { actionsOf, cdkJsonContext, identityStatements } from "./helpers.ts";

const mailbox: MailboxDefinition = {
  id: "support",
  host: "pop.example.com",
  username: "support@example.com",
  password: { secretId: "mail-ingest/support" },
};

function synth(
  props: Partial<MailIngestionProps>,
  extra?: (stack: Stack) => Partial<MailIngestionProps>,
) {
  const app = new App({ context: { ...cdkJsonContext(), "aws:cdk:bundling-stacks": [] } });
  const stack = new Stack(app, "Test");
  const ingestion = new MailIngestion(stack, "Ingest", {
    mailboxes: [mailbox],
    ...props,
    ...extra?.(stack),
  });
  return { stack, ingestion, template: Template.fromStack(stack) };
}

function expectConfigError(build: () => unknown, field: RegExp) {
  let thrown: unknown;
  try {
    build();
  } catch (err) {
    thrown = err;
  }
  expect(isMailIngestError(thrown, "CONFIG_INVALID")).toBe(true);
  expect((thrown as Error).message).toMatch(field);
}

describe("existing resources", () => {
  it("uses a given bucket and output queue instead of creating them, drops the output DLQ alarm and keeps its age alarm", () => {
    const { template, ingestion, stack } = synth({}, (s) => ({
      bucket: Bucket.fromBucketName(s, "Existing", "corp-mail-archive"),
      outputQueue: Queue.fromQueueArn(
        s,
        "ExistingQueue",
        "arn:aws:sqs:eu-west-1:123456789012:mail-out",
      ),
    }));
    template.resourceCountIs("AWS::S3::Bucket", 0);
    // Only the jobs queue, its DLQ and the dispatch DLQ remain.
    template.resourceCountIs("AWS::SQS::Queue", 3);
    expect(ingestion.outputDlq).toBeUndefined();
    expect(ingestion.alarms.outputDlqArrivals).toBeUndefined();
    template.resourceCountIs("AWS::CloudWatch::Alarm", 9);
    // The passed-in queue is watched for messages nobody consumes.
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "ApproximateAgeOfOldestMessage",
      Dimensions: [{ Name: "QueueName", Value: "mail-out" }],
      Threshold: 24 * 3600,
      ComparisonOperator: "GreaterThanThreshold",
    });
    const objectStatement = identityStatements(template).find(({ statement }) =>
      actionsOf(statement).includes("s3:PutObject"),
    );
    expect(stack.resolve(objectStatement?.statement.Resource)).toEqual({
      "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":s3:::corp-mail-archive/*"]],
    });
    const sends = identityStatements(template).filter(({ statement }) =>
      actionsOf(statement).includes("sqs:SendMessage"),
    );
    expect(sends.map(({ statement }) => statement.Resource)).toContainEqual(
      "arn:aws:sqs:eu-west-1:123456789012:mail-out",
    );
  });
});

describe("optional features", () => {
  it("publishes to a given event bus: PutEvents on that bus and its name in the poller env", () => {
    const { template, stack, ingestion } = synth({}, (s) => ({
      eventBus: new EventBus(s, "Bus"),
    }));
    const busRef = stack.getLogicalId(
      (ingestion.node.scope as Stack).node.findChild("Bus").node.defaultChild as never,
    );
    const putEvents = identityStatements(template).filter(({ statement }) =>
      actionsOf(statement).includes("events:PutEvents"),
    );
    expect(putEvents.map(({ statement }) => statement.Resource)).toEqual([
      { "Fn::GetAtt": [busRef, "Arn"] },
    ]);
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: { EVENT_BUS_NAME: { Ref: busRef } } },
    });
  });

  it("scopes object access to the bucket prefix and passes the prefix to the poller", () => {
    const { template, stack } = synth({ bucketPrefix: "mail/" });
    const list = identityStatements(template).find(({ statement }) =>
      actionsOf(statement).includes("s3:ListBucket"),
    ) as { statement: { Condition?: unknown } } | undefined;
    expect(list?.statement.Condition).toEqual({ StringLike: { "s3:prefix": ["mail/*"] } });
    const objects = identityStatements(template).find(({ statement }) =>
      actionsOf(statement).includes("s3:GetObject"),
    );
    expect(JSON.stringify(stack.resolve(objects?.statement.Resource))).toContain('"/mail/*"');
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: { BUCKET_PREFIX: "mail/" } },
    });
  });

  it("grants up to 50 secrets by exact ARN, and more by secretNamePrefix", () => {
    const boxes = (count: number) =>
      Array.from({ length: count }, (_, i) => ({
        ...mailbox,
        id: `box-${i}`,
        password: { secretId: `tenant-a/box-${i}` },
      }));
    const secretResources = (template: ReturnType<typeof synth>["template"], stack: Stack) => {
      const found = identityStatements(template).find(({ statement }) =>
        actionsOf(statement).includes("secretsmanager:GetSecretValue"),
      );
      const resources = [found?.statement.Resource].flat();
      return resources.map((r) => JSON.stringify(stack.resolve(r)));
    };
    const exact = synth({ mailboxes: boxes(50), secretNamePrefix: "tenant-a/" });
    const exactArns = secretResources(exact.template, exact.stack);
    expect(exactArns).toHaveLength(50);
    expect(exactArns.filter((arn) => arn.includes(":secret:tenant-a/box-49-??????"))).toHaveLength(
      1,
    );
    const byPrefix = synth({ mailboxes: boxes(51), secretNamePrefix: "tenant-a/" });
    const prefixArns = secretResources(byPrefix.template, byPrefix.stack);
    expect(prefixArns).toHaveLength(1);
    expect(prefixArns[0]).toContain(':secret:tenant-a/*"');
  });

  it("adds expiry and Infrequent Access transition rules to a new bucket", () => {
    const { template, ingestion, stack } = synth({
      objectExpiration: Duration.days(365),
      infrequentAccessAfter: Duration.days(30),
    });
    const bucket =
      template.findResources("AWS::S3::Bucket")[
        stack.getLogicalId(ingestion.bucket.node.defaultChild as never)
      ];
    expect(bucket?.Properties.LifecycleConfiguration.Rules).toEqual([
      expect.objectContaining({
        ExpirationInDays: 365,
        Transitions: [{ StorageClass: "STANDARD_IA", TransitionInDays: 30 }],
        NoncurrentVersionExpiration: { NoncurrentDays: 30 },
      }),
      { ExpiredObjectDeleteMarker: true, Status: "Enabled" },
    ]);
  });

  it("derives the jobs visibility timeout from a custom poller timeout, and applies the schedule and cap", () => {
    const { template, stack, ingestion } = synth({
      pollerTimeout: Duration.minutes(10),
      schedule: Duration.minutes(15),
      maxConcurrency: 50,
    });
    const queue =
      template.findResources("AWS::SQS::Queue")[
        stack.getLogicalId(ingestion.jobsQueue.node.defaultChild as never)
      ];
    expect(queue?.Properties.VisibilityTimeout).toBe(3600);
    template.hasResourceProperties("AWS::Scheduler::Schedule", {
      ScheduleExpression: "rate(15 minutes)",
    });
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      ScalingConfig: { MaximumConcurrency: 50 },
    });
  });

  it("creates alarms without actions when no topic is given", () => {
    const { template } = synth({});
    for (const alarm of Object.values(template.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties.AlarmActions).toBeUndefined();
    }
  });

  it("writes the default delete policy into mailboxes that do not set one", () => {
    const { template, ingestion } = synth({
      mailboxes: [mailbox, { ...mailbox, id: "sales", delete: "never" }],
      defaultDeletePolicy: "after-ingest",
    });
    template.resourceCountIs("AWS::SSM::Parameter", 0);
    const { mailboxes } = JSON.parse(ingestion.configJson);
    expect(mailboxes.map((m: { id: string; delete: unknown }) => [m.id, m.delete])).toEqual([
      ["support", "after-ingest"],
      ["sales", "never"],
    ]);
  });
});

describe("validation", () => {
  it("rejects a literal password so no credential can reach the template", () => {
    expectConfigError(
      () => synth({ mailboxes: [{ ...mailbox, password: "hunter2" as never }] }),
      /mailboxes\[0\]\.password/,
    );
  });

  it("rejects env and file password sources, which cannot work in Lambda", () => {
    expectConfigError(
      () => synth({ mailboxes: [{ ...mailbox, password: { env: "PW" } as never }] }),
      /password/,
    );
    expectConfigError(
      () => synth({ mailboxes: [{ ...mailbox, password: { file: "/pw" } as never }] }),
      /password/,
    );
  });

  it("rejects duplicate and malformed mailbox ids", () => {
    expectConfigError(
      () => synth({ mailboxes: [mailbox, mailbox] }),
      /mailboxes\[1\]\.id.*duplicate/,
    );
    expectConfigError(
      () => synth({ mailboxes: [{ ...mailbox, id: "a/b" }] }),
      /mailboxes\[0\]\.id/,
    );
  });

  it("rejects a CA file path, which the Lambda cannot read", () => {
    expectConfigError(
      () => synth({ mailboxes: [{ ...mailbox, ca: "certs/private-ca.pem" }] }),
      /mailboxes\[0\]\.ca: must be an inline PEM/,
    );
  });

  it("rejects, like the CLI's parser, a mailbox field the runtime schema does not know", () => {
    expectConfigError(
      () => synth({ mailboxes: [{ ...mailbox, pasword: "typo" } as never] }),
      /mailboxes\[0\]\.pasword: unknown field/,
    );
    expectConfigError(
      () => synth({ mailboxes: [{ ...mailbox, timeoutMs: 5 }] }),
      /mailboxes\[0\]\.timeoutMs: must be between 100/,
    );
  });

  it("rejects a maxConcurrency below the SQS event source minimum of 2", () => {
    expectConfigError(() => synth({ maxConcurrency: 1 }), /maxConcurrency/);
  });

  it("rejects, once secrets are granted by prefix, a mailbox secret outside secretNamePrefix", () => {
    const many = Array.from({ length: 60 }, (_, i) => ({
      ...mailbox,
      id: `mailbox-${i}`,
      password: { secretId: `mail-ingest/mailbox-${i}` },
    }));
    many[41] = { ...mailbox, id: "stray", password: { secretId: "other/stray" } };
    expectConfigError(
      () => synth({ mailboxes: many }),
      /mailboxes\[41\]\.password\.secretId: must be a secret name starting with "mail-ingest\/"/,
    );
    expectConfigError(() => synth({ mailboxes: many, secretNamePrefix: "*" }), /secretNamePrefix/);
  });

  it("rejects mailbox fields holding deploy-time tokens, which a synth-time file cannot carry", () => {
    expectConfigError(
      () => synth({}, (s) => ({ mailboxes: [{ ...mailbox, host: s.region }] })),
      /deploy-time tokens/,
    );
  });

  it("rejects unknown fields in the deploy config file", async () => {
    await expect(parseDeployConfig({ mailboxes: [mailbox], schedule: 5 })).rejects.toThrow(
      /schedule: unknown field/,
    );
  });

  it("rejects a deploy config whose password is not a secretId, before any construct is built", async () => {
    await expect(
      parseDeployConfig({ mailboxes: [{ ...mailbox, password: { env: "PW" } }] }),
    ).rejects.toThrow(/mailboxes\[0\]\.password: must be \{"secretId": NAME\}/);
  });

  it("rejects a deploy config whose mailbox the runtime schema would refuse", async () => {
    await expect(parseDeployConfig({ mailboxes: [{ ...mailbox, port: "995" }] })).rejects.toThrow(
      /mailboxes\[0\]\.port: must be an integer/,
    );
  });
});
