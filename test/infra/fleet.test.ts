/**
 * A fleet of 5,000 mailboxes on a 5-minute schedule (issue 9): the template protects the only copy
 * of the mail, keeps up with the fleet or refuses to synthesize, and alarms once per failure with
 * service-level metrics. Synthesized with both cdk-nag packs; bundling is skipped (the asset hash
 * test bundles for real).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App, Duration, Stack, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { Key } from "aws-cdk-lib/aws-kms";
import { Bucket } from "aws-cdk-lib/aws-s3";
import { AwsSolutionsChecks, NIST80053R5Checks } from "cdk-nag";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type MailboxDefinition,
  MailIngestion,
  type MailIngestionProps,
} from "../../infra/mail-ingestion.ts";
import { isMailIngestError } from "../../lambdas/errors.ts";
import { actionsOf, cdkJsonContext, identityStatements, type Statement } from "./helpers.ts";

const FLEET = 5000;
/** 5,000 × 1 s ÷ 300 s × 1.5 */
const NEEDED_CONCURRENCY = 25;
const fleet: MailboxDefinition[] = Array.from({ length: FLEET }, (_, i) => ({
  id: `box-${i}`,
  host: `pop${i % 7}.example.com`,
  username: `user${i}@example.com`,
  password: { secretId: `mail-ingest/box-${i}` },
}));

const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

function synth(
  props: Partial<MailIngestionProps> = {},
  extra?: (stack: Stack) => Partial<MailIngestionProps>,
) {
  const outdir = mkdtempSync(path.join(tmpdir(), "mail-ingest-fleet-"));
  outdirs.push(outdir);
  const app = new App({ outdir, context: { ...cdkJsonContext(), "aws:cdk:bundling-stacks": [] } });
  const stack = new Stack(app, "Fleet", { env: { account: "123456789012", region: "eu-west-1" } });
  const ingestion = new MailIngestion(stack, "Ingest", {
    mailboxes: fleet,
    ...props,
    ...extra?.(stack),
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));
  const assembly = app.synth();
  const report = JSON.parse(
    readFileSync(path.join(assembly.directory, "validation-report.json"), "utf8"),
  );
  return { stack, ingestion, template: Template.fromStack(stack), report };
}

function configError(build: () => unknown): Error {
  try {
    build();
  } catch (err) {
    expect(isMailIngestError(err, "CONFIG_INVALID")).toBe(true);
    return err as Error;
  }
  throw new Error("expected a ConfigError");
}

let built: ReturnType<typeof synth>;
beforeAll(() => {
  built = synth();
}, 120_000);

const ref = (construct: { node: { defaultChild?: unknown } }) =>
  built.stack.getLogicalId(construct.node.defaultChild as never);
const arnOf = (construct: { node: { defaultChild?: unknown } }) => ({
  "Fn::GetAtt": [ref(construct), "Arn"],
});
const resource = (type: string, construct: { node: { defaultChild?: unknown } }) =>
  built.template.findResources(type)[ref(construct)]?.Properties;
const functionEnv = (fn: MailIngestion["poller"], template = built.template, stack = built.stack) =>
  template.findResources("AWS::Lambda::Function")[stack.getLogicalId(fn.node.defaultChild as never)]
    ?.Properties.Environment.Variables;
const alarms = () => Object.values(built.template.findResources("AWS::CloudWatch::Alarm"));

describe(`a fleet of ${FLEET} mailboxes`, () => {
  it("reports no unacknowledged AwsSolutions or NIST 800-53 rev 5 finding", () => {
    expect(
      built.report.pluginReports.flatMap((r: { violations?: unknown[] }) => r.violations ?? []),
    ).toEqual([]);
  });

  describe("the only copy of the mail", () => {
    it("versions the bucket and expires noncurrent versions after 30 days", () => {
      const bucket = resource("AWS::S3::Bucket", built.ingestion.bucket);
      expect(bucket.VersioningConfiguration).toEqual({ Status: "Enabled" });
      expect(bucket.LifecycleConfiguration.Rules).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ NoncurrentVersionExpiration: { NoncurrentDays: 30 } }),
          expect.objectContaining({ ExpiredObjectDeleteMarker: true }),
        ]),
      );
      expect(bucket.ObjectLockEnabled).toBeUndefined();
    });

    it("lets the poller delete objects only under the state prefix", () => {
      const deletes = identityStatements(built.template).filter(({ statement }) =>
        actionsOf(statement).some((a) => a === "s3:DeleteObject" || a.startsWith("s3:Delete")),
      );
      expect(deletes).toHaveLength(1);
      const statement = deletes[0]?.statement as Statement;
      expect(actionsOf(statement)).toEqual(["s3:DeleteObject"]);
      expect(statement.Resource).toEqual({
        "Fn::Join": ["", [arnOf(built.ingestion.bucket), "/state/*"]],
      });
    });

    it("scopes the state prefix under bucketPrefix", () => {
      const { template } = synth({ bucketPrefix: "mail/" });
      const deletes = identityStatements(template).filter(({ statement }) =>
        actionsOf(statement).includes("s3:DeleteObject"),
      );
      expect(deletes.map(({ statement }) => JSON.stringify(statement.Resource))).toEqual([
        expect.stringContaining('"/mail/state/*"'),
      ]);
    });

    it("creates the bucket with Object Lock in governance mode when a retention is given", () => {
      const { template, ingestion, stack, report } = synth({
        objectLockRetention: Duration.days(365),
      });
      const bucket =
        template.findResources("AWS::S3::Bucket")[
          stack.getLogicalId(ingestion.bucket.node.defaultChild as never)
        ]?.Properties;
      expect(bucket.ObjectLockEnabled).toBe(true);
      expect(bucket.ObjectLockConfiguration).toEqual({
        ObjectLockEnabled: "Enabled",
        Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 365 } },
      });
      expect(bucket.VersioningConfiguration).toEqual({ Status: "Enabled" });
      expect(
        report.pluginReports.flatMap((r: { violations?: unknown[] }) => r.violations ?? []),
      ).toEqual([]);
    });

    it("refuses Object Lock or version expiry for a passed-in bucket, whose settings it cannot change", () => {
      for (const props of [
        { objectLockRetention: Duration.days(30) },
        { noncurrentVersionExpiration: Duration.days(7) },
      ]) {
        const error = configError(() =>
          synth(props, (s) => ({ bucket: Bucket.fromBucketName(s, "Archive", "corp-archive") })),
        );
        expect(error.message).toMatch(/passed-in `bucket`/);
      }
    });

    it("grants the key a passed-in bucket reports, without bucketEncryptionKey", () => {
      const keyArn = "arn:aws:kms:eu-west-1:123456789012:key/0f6c1e8a-1111-2222-3333-444455556666";
      const { template } = synth({}, (s) => ({
        bucket: Bucket.fromBucketAttributes(s, "Archive", {
          bucketName: "corp-archive",
          encryptionKey: Key.fromKeyArn(s, "ArchiveKey", keyArn),
        }),
      }));
      const onKey = identityStatements(template).filter(
        ({ statement }) => statement.Resource === keyArn,
      );
      expect(onKey.flatMap(({ statement }) => actionsOf(statement)).sort()).toEqual([
        "kms:Decrypt",
        "kms:GenerateDataKey",
      ]);
    });
  });

  describe("keeping up with the fleet", () => {
    it("sizes maxConcurrency for the fleet when unset, and reserves that much for the poller", () => {
      expect(built.ingestion.maxConcurrency).toBe(NEEDED_CONCURRENCY);
      built.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        ScalingConfig: { MaximumConcurrency: NEEDED_CONCURRENCY },
      });
      const poller = resource("AWS::Lambda::Function", built.ingestion.poller);
      expect(poller.ReservedConcurrentExecutions).toBeGreaterThanOrEqual(NEEDED_CONCURRENCY);
    });

    it("fails synth naming mailboxesPerInvocation outside the FIFO event source's 1–10", () => {
      for (const n of [0, 11, 2.5]) {
        expect(configError(() => synth({ mailboxesPerInvocation: n })).message).toMatch(
          /\bmailboxesPerInvocation: is .*1 to 10/,
        );
      }
    });

    it("fails synth naming maxConcurrency when it is below mailboxes × poll seconds ÷ period × 1.5", () => {
      const error = configError(() => synth({ maxConcurrency: NEEDED_CONCURRENCY - 1 }));
      expect(error.message).toMatch(/\bmaxConcurrency: is 24, /);
      expect(error.message).toContain(`below the ${NEEDED_CONCURRENCY} the fleet needs`);
      expect(error.message).toContain("5000 mailboxes × 1 s per poll (estimatedPollSeconds)");
      // The estimate is the documented prop: a measured 0.5 s halves the need.
      expect(() => synth({ maxConcurrency: 13, estimatedPollSeconds: 0.5 })).not.toThrow();
      expect(() => synth({ maxConcurrency: 12, estimatedPollSeconds: 0.5 })).toThrow(
        /maxConcurrency: is 12, below the 13/,
      );
    });

    it("dead-letters a job only after at least 5 receives", () => {
      const jobs = resource("AWS::SQS::Queue", built.ingestion.jobsQueue);
      expect(jobs.RedrivePolicy.maxReceiveCount).toBeGreaterThanOrEqual(5);
    });

    it("alarms when the oldest job is older than one schedule period", () => {
      built.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        MetricName: "ApproximateAgeOfOldestMessage",
        Dimensions: [
          {
            Name: "QueueName",
            Value: { "Fn::GetAtt": [ref(built.ingestion.jobsQueue), "QueueName"] },
          },
        ],
        Threshold: 300,
        ComparisonOperator: "GreaterThanThreshold",
      });
    });

    it("tells the poller the schedule period, the output size cap and the metrics and write-back settings", () => {
      expect(functionEnv(built.ingestion.poller)).toMatchObject({
        SCHEDULE_PERIOD_SECONDS: "300",
        OUTPUT_MAX_MESSAGE_BYTES: "1048576",
        PER_MAILBOX_METRICS: "false",
        OAUTH_WRITE_BACK_AFTER_SECONDS: "86400",
        SECRET_CACHE_SECONDS: "21600",
      });
      const custom = synth({
        schedule: Duration.minutes(10),
        outputMaxMessageBytes: 262_144,
        perMailboxMetrics: true,
        tokenWriteBackAfter: Duration.hours(6),
        secretCacheTtl: Duration.minutes(5),
        mailboxesPerInvocation: 1,
      });
      expect(functionEnv(custom.ingestion.poller, custom.template, custom.stack)).toMatchObject({
        SCHEDULE_PERIOD_SECONDS: "600",
        OUTPUT_MAX_MESSAGE_BYTES: "262144",
        PER_MAILBOX_METRICS: "true",
        OAUTH_WRITE_BACK_AFTER_SECONDS: "21600",
        SECRET_CACHE_SECONDS: "300",
      });
      custom.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", { BatchSize: 1 });
      const output =
        custom.template.findResources("AWS::SQS::Queue")[
          custom.stack.getLogicalId(custom.ingestion.outputQueue.node.defaultChild as never)
        ]?.Properties;
      expect(output.MaximumMessageSize).toBe(262_144);
    });
  });

  describe("the dispatcher", () => {
    it("drops a tick older than one period, retries at most once and sends failures to the dispatch DLQ", () => {
      const configs = Object.values(built.template.findResources("AWS::Lambda::EventInvokeConfig"));
      expect(configs).toHaveLength(1);
      const config = configs[0]?.Properties;
      expect(config.FunctionName).toEqual({ Ref: ref(built.ingestion.dispatcher) });
      expect(config.MaximumEventAgeInSeconds).toBeLessThanOrEqual(300);
      expect(config.MaximumRetryAttempts).toBeLessThanOrEqual(1);
      expect(config.DestinationConfig.OnFailure.Destination).toEqual(
        arnOf(built.ingestion.dispatchDlq),
      );
      const dlqArn = JSON.stringify(arnOf(built.ingestion.dispatchDlq));
      const sends = identityStatements(built.template).filter(
        ({ statement }) =>
          actionsOf(statement).includes("sqs:SendMessage") &&
          [statement.Resource].flat().some((r) => JSON.stringify(r) === dlqArn),
      );
      expect(sends.map(({ owner }) => owner).sort()).toEqual(
        [
          built.stack.getLogicalId(
            built.ingestion.dispatcher.role?.node.findChild("DefaultPolicy").node
              .defaultChild as never,
          ),
          built.stack.getLogicalId(
            built.ingestion.node.findChild("SchedulerRole").node.findChild("DefaultPolicy").node
              .defaultChild as never,
          ),
        ].sort(),
      );
    });

    it("gives the schedule a dead-letter queue", () => {
      const schedule = Object.values(built.template.findResources("AWS::Scheduler::Schedule"))[0];
      expect(schedule?.Properties.Target.DeadLetterConfig).toEqual({
        Arn: arnOf(built.ingestion.dispatchDlq),
      });
    });

    it("alarms when the dispatcher has not run for two periods", () => {
      built.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "AWS/Lambda",
        MetricName: "Invocations",
        Dimensions: [{ Name: "FunctionName", Value: { Ref: ref(built.ingestion.dispatcher) } }],
        Period: 300,
        EvaluationPeriods: 2,
        Threshold: 1,
        ComparisonOperator: "LessThanThreshold",
        TreatMissingData: "breaching",
      });
    });
  });

  describe("alarms that fire once and do not latch", () => {
    it("alarms on DLQ arrivals, never on a DLQ's depth", () => {
      const dlqNames = [
        built.ingestion.jobsDlq,
        built.ingestion.outputDlq,
        built.ingestion.dispatchDlq,
      ].map((queue) => JSON.stringify({ "Fn::GetAtt": [ref(queue as never), "QueueName"] }));
      const onDlq = (dimensions?: { Value: unknown }[]) =>
        dlqNames.includes(JSON.stringify(dimensions?.[0]?.Value));
      for (const { Properties: p } of alarms()) {
        // Max(visible) > 0 on a DLQ stays in ALARM for the queue's whole retention: a DLQ's
        // visible count may only feed a DIFF expression.
        if (!p.Metrics) {
          if (onDlq(p.Dimensions)) expect(p.MetricName).toBe("NumberOfMessagesSent");
          continue;
        }
        const visible = p.Metrics.filter(
          (m: {
            MetricStat?: { Metric: { MetricName: string; Dimensions: { Value: unknown }[] } };
          }) =>
            m.MetricStat?.Metric.MetricName === "ApproximateNumberOfMessagesVisible" &&
            onDlq(m.MetricStat.Metric.Dimensions),
        );
        for (const input of visible) {
          expect(
            p.Metrics.find((m: { ReturnData?: boolean }) => m.ReturnData !== false).Expression,
          ).toBe(`DIFF(FILL(${input.Id}, 0))`);
        }
      }
      built.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        MetricName: "NumberOfMessagesSent",
        Dimensions: [
          {
            Name: "QueueName",
            Value: { "Fn::GetAtt": [ref(built.ingestion.dispatchDlq), "QueueName"] },
          },
        ],
        Statistic: "Sum",
        Threshold: 0,
      });
      for (const [name, queue] of [
        ["jobs", built.ingestion.jobsDlq],
        ["output", built.ingestion.outputDlq],
      ] as const) {
        built.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
          Metrics: Match.arrayWith([
            Match.objectLike({ Expression: `DIFF(FILL(${name}Visible, 0))`, ReturnData: true }),
            Match.objectLike({
              Id: `${name}Visible`,
              MetricStat: Match.objectLike({
                Metric: Match.objectLike({
                  MetricName: "ApproximateNumberOfMessagesVisible",
                  Dimensions: [
                    {
                      Name: "QueueName",
                      Value: { "Fn::GetAtt": [ref(queue as never), "QueueName"] },
                    },
                  ],
                }),
              }),
            }),
          ]),
          Threshold: 0,
          ComparisonOperator: "GreaterThanThreshold",
        });
      }
    });

    it("alarms when the output queue's oldest message is older than 24 hours, or the given age", () => {
      const outputAge = (template: Template, stack: Stack, queue: MailIngestion["outputQueue"]) =>
        template.hasResourceProperties("AWS::CloudWatch::Alarm", {
          MetricName: "ApproximateAgeOfOldestMessage",
          Dimensions: [
            {
              Name: "QueueName",
              Value: {
                "Fn::GetAtt": [stack.getLogicalId(queue.node.defaultChild as never), "QueueName"],
              },
            },
          ],
          Threshold: 24 * 3600,
        });
      outputAge(built.template, built.stack, built.ingestion.outputQueue);
      const custom = synth({ outputQueueAgeAlarmAfter: Duration.hours(6) });
      custom.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        MetricName: "ApproximateAgeOfOldestMessage",
        Threshold: 6 * 3600,
      });
    });

    it("reads poller metrics at service level: no alarm depends on a mailbox dimension", () => {
      const ours = alarms().filter((a) => a.Properties.Namespace === "MailIngest");
      expect(ours.map((a) => a.Properties.MetricName).sort()).toEqual(["AuthFailures", "Backlog"]);
      for (const alarm of ours) {
        expect(alarm.Properties.Dimensions).toEqual([{ Name: "service", Value: "mail-ingest" }]);
      }
      expect(JSON.stringify(built.template.toJSON())).not.toMatch(/"Name":"mailbox"/);
    });
  });

  describe("the dashboard", () => {
    const body = () => {
      const dashboards = Object.values(built.template.findResources("AWS::CloudWatch::Dashboard"));
      expect(dashboards).toHaveLength(1);
      return JSON.stringify(built.stack.resolve(dashboards[0]?.Properties.DashboardBody));
    };

    it("shows ingest volume, failures, back-offs, queue ages, DLQ arrivals and Lambda health", () => {
      const text = body();
      for (const metric of [
        "MessagesIngested",
        "BytesIngested",
        "PollFailures",
        "AuthFailures",
        "BackOffs",
        "ApproximateAgeOfOldestMessage",
        "NumberOfMessagesSent",
        "DIFF(FILL(jobsVisible, 0))",
        "Errors",
        "Throttles",
        "Duration",
      ]) {
        expect(text, metric).toContain(metric);
      }
    });

    it("lists each mailbox's failures from the poller's logs with Logs Insights", () => {
      const text = body();
      expect(text).toContain("stats count(*) as problems");
      expect(text).toContain("by mailbox");
      expect(text).toContain(ref(built.ingestion.poller.logGroup as never));
    });

    it("is left out on request", () => {
      const { template } = synth({ dashboard: false });
      template.resourceCountIs("AWS::CloudWatch::Dashboard", 0);
    });
  });
});
