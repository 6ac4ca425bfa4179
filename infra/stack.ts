/**
 * The deployable stack: one {@link MailIngestion} built from a deploy config, with cdk-nag's
 * AwsSolutions and NIST 800-53 rev 5 checks. `app.ts` feeds it from a file; tests build it directly.
 */
import { App, Duration, Stack, type StackProps, Validations } from "aws-cdk-lib";
import { Topic } from "aws-cdk-lib/aws-sns";
import { AwsSolutionsChecks, NIST80053R5Checks } from "cdk-nag";
import type { Construct } from "constructs";
import { ConfigError } from "../lambdas/config/index.ts";
import { MailIngestion } from "./mail-ingestion.ts";
import { assertDeployMailboxes, type MailboxDefinition } from "./mailboxes.ts";

export interface MailIngestStackProps extends StackProps {
  readonly mailboxes: readonly MailboxDefinition[];
  /** Poll interval, minutes. @default 5 */
  readonly scheduleMinutes?: number;
  /** Existing SNS topic ARN that receives every alarm. @default alarms without actions */
  readonly alarmTopicArn?: string;
  /** Poller concurrency cap. @default 10 */
  readonly maxConcurrency?: number;
}

export class MailIngestStack extends Stack {
  readonly ingestion: MailIngestion;

  constructor(scope: Construct, id: string, props: MailIngestStackProps) {
    super(scope, id, props);
    this.ingestion = new MailIngestion(this, "MailIngestion", {
      mailboxes: props.mailboxes,
      schedule:
        props.scheduleMinutes === undefined ? undefined : Duration.minutes(props.scheduleMinutes),
      alarmTopic: props.alarmTopicArn
        ? Topic.fromTopicArn(this, "AlarmTopic", props.alarmTopicArn)
        : undefined,
      maxConcurrency: props.maxConcurrency,
    });
  }
}

/** The deploy config file: the CLI config's `mailboxes`, plus optional deploy settings. */
export interface DeployConfig extends Omit<MailIngestStackProps, keyof StackProps> {
  readonly stackName?: string;
}

/**
 * Validates a parsed deploy config file: the deploy settings here, every mailbox with the
 * runtime's own parser plus the AWS-only rules (`mailboxes.ts`), so a file that deploys is a file
 * the handlers accept.
 */
export async function parseDeployConfig(json: unknown): Promise<DeployConfig> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError("(root)", "must be a JSON object");
  }
  const record = json as Record<string, unknown>;
  const allowed = ["mailboxes", "scheduleMinutes", "alarmTopicArn", "maxConcurrency", "stackName"];
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) throw new ConfigError(key, "unknown field");
  }
  const { mailboxes, scheduleMinutes, alarmTopicArn, maxConcurrency, stackName } = record;
  assertDeployMailboxes(mailboxes);
  const optionalInteger = (key: string, value: unknown, min: number, max: number) => {
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(key, `must be an integer between ${min} and ${max}`);
    }
    return value;
  };
  const optionalString = (key: string, value: unknown) => {
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value.length === 0) {
      throw new ConfigError(key, "must be a non-empty string");
    }
    return value;
  };
  return {
    mailboxes,
    scheduleMinutes: optionalInteger("scheduleMinutes", scheduleMinutes, 1, 1440),
    alarmTopicArn: optionalString("alarmTopicArn", alarmTopicArn),
    maxConcurrency: optionalInteger("maxConcurrency", maxConcurrency, 2, 1000),
    stackName: optionalString("stackName", stackName),
  };
}

/**
 * Builds the app with the AwsSolutions and NIST 800-53 rev 5 checks; every acknowledgement and
 * its reason is in `nag-suppressions.ts`.
 */
export function buildApp(
  config: DeployConfig,
  app = new App(),
): { app: App; stack: MailIngestStack } {
  const stack = new MailIngestStack(app, config.stackName ?? "MailIngest", {
    ...config,
    description: "mail-ingest: POP3 mailboxes to S3 and SQS",
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));
  return { app, stack };
}
