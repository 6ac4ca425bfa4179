/**
 * The deployable stack, synthesized once (with real esbuild bundling of both handlers and the
 * cdk-nag AwsSolutions checks) from `infra/example.config.json`, then asserted property by
 * property.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App, Stack, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Queue } from "aws-cdk-lib/aws-sqs";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp, type MailIngestStack, parseDeployConfig } from "../../infra/stack.ts";
import { parseConfig } from "../../lambdas/config/index.ts";
import { actionsOf, cdkJsonContext, identityStatements, repoRoot } from "./helpers.ts";

const TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:pager";
const exampleConfig = await parseDeployConfig(
  JSON.parse(readFileSync(`${repoRoot}infra/example.config.json`, "utf8")),
);

let outdir: string;
let stack: MailIngestStack;
let template: Template;
let assembly: CloudAssembly;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), "mail-ingest-cdk-"));
  const app = new App({ outdir, context: cdkJsonContext() });
  ({ stack } = buildApp({ ...exampleConfig, alarmTopicArn: TOPIC_ARN }, app));
  // Throws (in-memory app mode under vitest) if any AwsSolutions rule is violated.
  assembly = app.synth();
  template = Template.fromStack(stack);
});

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

const ref = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as never);

function functionProps(fn: { node: { defaultChild?: unknown } }) {
  const resources = template.findResources("AWS::Lambda::Function");
  const props = resources[ref(fn)]?.Properties;
  if (!props) throw new Error("function not in template");
  return props;
}

describe("storage", () => {
  it("encrypts the output bucket, blocks public access and aborts incomplete uploads", () => {
    const bucket = template.findResources("AWS::S3::Bucket")[ref(stack.ingestion.bucket)];
    expect(bucket?.Properties).toMatchObject({
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: {
        Rules: [
          expect.objectContaining({
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
            Status: "Enabled",
          }),
          { ExpiredObjectDeleteMarker: true, Status: "Enabled" },
        ],
      },
      LoggingConfiguration: {
        DestinationBucketName: { Ref: ref(stack.ingestion.accessLogsBucket as never) },
      },
    });
  });

  it("denies non-TLS access to both buckets", () => {
    const policies = Object.values(template.findResources("AWS::S3::BucketPolicy"));
    const denied = policies.filter((policy) =>
      policy.Properties.PolicyDocument.Statement.some(
        (s: { Effect: string; Condition?: unknown }) =>
          s.Effect === "Deny" &&
          JSON.stringify(s.Condition) ===
            JSON.stringify({ Bool: { "aws:SecureTransport": "false" } }),
      ),
    );
    expect(policies).toHaveLength(2);
    expect(denied).toHaveLength(2);
  });
});

describe("queues", () => {
  it("encrypts every queue and denies non-TLS access to each", () => {
    const queues = template.findResources("AWS::SQS::Queue");
    expect(Object.keys(queues)).toHaveLength(5);
    for (const queue of Object.values(queues)) {
      expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
    }
    const sslOnly = Object.values(template.findResources("AWS::SQS::QueuePolicy")).flatMap(
      (policy) =>
        policy.Properties.PolicyDocument.Statement.some(
          (s: { Effect: string; Condition?: { Bool?: Record<string, string> } }) =>
            s.Effect === "Deny" && s.Condition?.Bool?.["aws:SecureTransport"] === "false",
        )
          ? policy.Properties.Queues
          : [],
    );
    expect(sslOnly.map((q: { Ref: string }) => q.Ref).sort()).toEqual(Object.keys(queues).sort());
  });

  it("makes the jobs queue FIFO without content dedup, redriving to a FIFO DLQ", () => {
    const { jobsQueue, jobsDlq } = stack.ingestion;
    const queues = template.findResources("AWS::SQS::Queue");
    expect(queues[ref(jobsQueue)]?.Properties).toMatchObject({
      FifoQueue: true,
      ContentBasedDeduplication: false,
      DeduplicationScope: "messageGroup",
      FifoThroughputLimit: "perMessageGroupId",
      RedrivePolicy: {
        deadLetterTargetArn: { "Fn::GetAtt": [ref(jobsDlq), "Arn"] },
        maxReceiveCount: 5,
      },
    });
    expect(queues[ref(jobsDlq)]?.Properties.FifoQueue).toBe(true);
  });

  it("sets the jobs visibility timeout to six times the poller timeout", () => {
    const pollerTimeout = functionProps(stack.ingestion.poller).Timeout;
    expect(pollerTimeout).toBe(300);
    const queue = template.findResources("AWS::SQS::Queue")[ref(stack.ingestion.jobsQueue)];
    expect(queue?.Properties.VisibilityTimeout).toBe(6 * pollerTimeout);
  });

  it("redrives the output queue to its DLQ and keeps both for 14 days", () => {
    const { outputQueue, outputDlq } = stack.ingestion;
    const queues = template.findResources("AWS::SQS::Queue");
    expect(queues[ref(outputQueue)]?.Properties).toMatchObject({
      MessageRetentionPeriod: 14 * 86_400,
      RedrivePolicy: { deadLetterTargetArn: { "Fn::GetAtt": [ref(outputDlq as never), "Arn"] } },
    });
    expect(queues[ref(outputDlq as never)]?.Properties.MessageRetentionPeriod).toBe(14 * 86_400);
  });
});

describe("functions", () => {
  it("feeds the poller from the jobs queue ten mailboxes' jobs at a time, capped, with batch item failures", () => {
    template.resourceCountIs("AWS::Lambda::EventSourceMapping", 1);
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: { "Fn::GetAtt": [ref(stack.ingestion.jobsQueue), "Arn"] },
      FunctionName: { Ref: ref(stack.ingestion.poller) },
      // Issue 9: the batch's idle polls run side by side, for about the price of one.
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 10 },
      FunctionResponseTypes: ["ReportBatchItemFailures"],
    });
  });

  it("invokes the dispatcher every 5 minutes with the scheduled time as the tick", () => {
    template.resourceCountIs("AWS::Scheduler::Schedule", 1);
    const schedule = Object.values(template.findResources("AWS::Scheduler::Schedule"))[0];
    expect(schedule?.Properties.ScheduleExpression).toBe("rate(5 minutes)");
    expect(schedule?.Properties.Target.Arn).toEqual({
      "Fn::GetAtt": [ref(stack.ingestion.dispatcher), "Arn"],
    });
    expect(JSON.parse(schedule?.Properties.Target.Input)).toMatchObject({
      scheduledTime: "<aws.scheduler.scheduled-time>",
    });
  });

  it("runs both functions on a current Node runtime on arm64 from ESM bundles", () => {
    for (const fn of [stack.ingestion.dispatcher, stack.ingestion.poller]) {
      const props = functionProps(fn);
      expect(props.Runtime).toMatch(/^nodejs(2[2-9]|[3-9]\d)\.x$/);
      expect(props.Architectures).toEqual(["arm64"]);
      expect(props.Handler).toBe("index.handler");
      // The file asset the function's S3 key names, as staged in the cloud assembly.
      const dir = path.join(assembly.directory, `asset.${props.Code.S3Key.replace(/\.zip$/, "")}`);
      const code = readFileSync(path.join(dir, "index.mjs"), "utf8");
      // The require shim banner, then minified ESM that exports the handler.
      expect(code.startsWith("import { createRequire } from 'module';")).toBe(true);
      expect(code).toMatch(/export\s*\{[^}]*\bhandler\b[^}]*\}/);
      // Minified: whitespace gone, so lines average thousands of characters.
      expect(code.length / code.split("\n").length).toBeGreaterThan(1000);
      expect(existsSync(path.join(dir, "index.mjs.map"))).toBe(true);
    }
  });

  it("gives the poller its queues, bucket and config file name but no secret values", () => {
    const env = functionProps(stack.ingestion.poller).Environment.Variables;
    expect(env).toEqual({
      MAIL_INGEST_CONFIG_FILE: "config.json",
      JOBS_QUEUE_URL: { Ref: ref(stack.ingestion.jobsQueue) },
      OUTPUT_QUEUE_URL: { Ref: ref(stack.ingestion.outputQueue) },
      BUCKET_NAME: { Ref: ref(stack.ingestion.bucket) },
      POWERTOOLS_SERVICE_NAME: "mail-ingest",
      POWERTOOLS_METRICS_NAMESPACE: "MailIngest",
      NODE_OPTIONS: "--enable-source-maps",
      OUTPUT_MAX_MESSAGE_BYTES: "1048576",
      PER_MAILBOX_METRICS: "false",
      SCHEDULE_PERIOD_SECONDS: "300",
      OAUTH_WRITE_BACK_AFTER_SECONDS: "86400",
      SECRET_CACHE_SECONDS: "21600",
    });
  });

  it("keeps logs in a dedicated group per function with a retention", () => {
    const groups = template.findResources("AWS::Logs::LogGroup");
    expect(Object.keys(groups)).toHaveLength(2);
    for (const fn of [stack.ingestion.dispatcher, stack.ingestion.poller]) {
      const logGroup = functionProps(fn).LoggingConfig.LogGroup.Ref;
      expect(groups[logGroup]?.Properties.RetentionInDays).toBe(30);
    }
  });
});

describe("config", () => {
  it("ships a config.json the runtime schema accepts in both code packages, naming secrets but holding none", async () => {
    template.resourceCountIs("AWS::SSM::Parameter", 0);
    for (const fn of [stack.ingestion.dispatcher, stack.ingestion.poller]) {
      const props = functionProps(fn);
      expect(props.Environment.Variables.MAIL_INGEST_CONFIG_FILE).toBe("config.json");
      const dir = path.join(assembly.directory, `asset.${props.Code.S3Key.replace(/\.zip$/, "")}`);
      const text = readFileSync(path.join(dir, "config.json"), "utf8");
      expect(text).toBe(stack.ingestion.configJson);
      const config = await parseConfig(JSON.parse(text));
      expect(config.mailboxes.map((m) => m.password)).toEqual([
        { secretId: "mail-ingest/support" },
        { secretId: "mail-ingest/billing-m365" },
      ]);
    }
  });
});

describe("IAM", () => {
  it("grants no wildcard actions and no NotAction anywhere", () => {
    const statements = identityStatements(template);
    expect(statements.length).toBeGreaterThan(5);
    for (const { owner, statement } of statements) {
      expect(statement.NotAction, owner).toBeUndefined();
      for (const action of actionsOf(statement)) expect(action, owner).not.toContain("*");
    }
  });

  it("scopes secret access to exactly the named secrets, for the poller only", () => {
    const secretStatements = identityStatements(template).filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith("secretsmanager:")),
    );
    expect(secretStatements).toHaveLength(1);
    const [{ owner, statement }] = secretStatements as [(typeof secretStatements)[0]];
    expect(owner).toBe(
      stack.getLogicalId(
        stack.ingestion.poller.role?.node.findChild("DefaultPolicy").node.defaultChild as never,
      ),
    );
    expect(actionsOf(statement).sort()).toEqual([
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
    ]);
    const names = (statement.Resource as { "Fn::Join": [string, unknown[]] }[]).map((r) =>
      String(r["Fn::Join"][1].at(-1)),
    );
    expect(names.sort()).toEqual([
      ":secret:mail-ingest/billing-m365-??????",
      ":secret:mail-ingest/support-??????",
    ]);
  });

  it("lets the scheduler invoke only the dispatcher", () => {
    const invokes = identityStatements(template).filter(({ statement }) =>
      actionsOf(statement).includes("lambda:InvokeFunction"),
    );
    expect(invokes.map(({ statement }) => statement.Resource)).toEqual([
      { "Fn::GetAtt": [ref(stack.ingestion.dispatcher), "Arn"] },
    ]);
  });
});

describe("alarms", () => {
  it("alarms on DLQ arrivals, queue ages, function errors, the dispatcher's heartbeat, auth failures and backlog, all paging the topic", () => {
    const alarms = Object.values(template.findResources("AWS::CloudWatch::Alarm"));
    expect(alarms).toHaveLength(10);
    for (const alarm of alarms) expect(alarm.Properties.AlarmActions).toEqual([TOPIC_ARN]);
    const watched = alarms.map((a) =>
      a.Properties.Metrics
        ? a.Properties.Metrics.find((m: { Expression?: string }) => m.Expression).Expression
        : `${a.Properties.Namespace}/${a.Properties.MetricName}`,
    );
    expect(watched.sort()).toEqual([
      "AWS/Lambda/Errors",
      "AWS/Lambda/Errors",
      "AWS/Lambda/Invocations",
      "AWS/SQS/ApproximateAgeOfOldestMessage",
      "AWS/SQS/ApproximateAgeOfOldestMessage",
      "AWS/SQS/NumberOfMessagesSent",
      "DIFF(FILL(jobsVisible, 0))",
      "DIFF(FILL(outputVisible, 0))",
      "MailIngest/AuthFailures",
      "MailIngest/Backlog",
    ]);
  });

  it("fires the backlog alarm only after two hours of unshrunk backlog, fleet-wide", () => {
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "MailIngest",
      MetricName: "Backlog",
      Dimensions: [{ Name: "service", Value: "mail-ingest" }],
      Statistic: "Maximum",
      Period: 900,
      EvaluationPeriods: 8,
      DatapointsToAlarm: 8,
    });
  });
});

describe("cdk-nag", () => {
  it("reports no unacknowledged AwsSolutions findings", () => {
    const report = JSON.parse(
      readFileSync(path.join(assembly.directory, "validation-report.json"), "utf8"),
    );
    const violations = report.pluginReports.flatMap(
      (r: { violations?: unknown[] }) => r.violations ?? [],
    );
    expect(violations).toEqual([]);
  });

  it("would report a finding: an unencrypted, TLS-optional queue fails synthesis", () => {
    const app = new App({ outdir: mkdtempSync(path.join(tmpdir(), "mail-ingest-nag-")) });
    const bad = new Stack(app, "Bad");
    new Queue(bad, "Plain", { enforceSSL: false });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
    rmSync(app.outdir, { recursive: true, force: true });
  });
});
