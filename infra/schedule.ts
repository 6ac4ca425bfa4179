/**
 * The schedule that invokes the dispatcher, with a role allowed to invoke exactly that function,
 * and a DLQ for ticks it could not deliver.
 */
import { type Duration, Stack } from "aws-cdk-lib";
import {
  type IRole,
  PolicyDocument,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from "aws-cdk-lib/aws-iam";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import {
  type ISchedule,
  type IScheduleTarget,
  Schedule,
  ScheduleExpression,
  type ScheduleTargetConfig,
  ScheduleTargetInput,
} from "aws-cdk-lib/aws-scheduler";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";

/** Inputs Lambda receives from the schedule: a tick id the dispatcher uses for FIFO dedup. */
const SCHEDULE_INPUT = {
  source: "mail-ingest.schedule",
  scheduledTime: "<aws.scheduler.scheduled-time>",
  executionId: "<aws.scheduler.execution-id>",
} as const;

/** Invokes a function from a schedule with a role allowed to call exactly that function. */
class InvokeExactly implements IScheduleTarget {
  constructor(
    private readonly func: IFunction,
    private readonly role: IRole,
    private readonly deadLetterQueue: IQueue,
  ) {}

  bind(_schedule: ISchedule): ScheduleTargetConfig {
    return {
      arn: this.func.functionArn,
      role: this.role,
      input: ScheduleTargetInput.fromObject(SCHEDULE_INPUT),
      // A missed tick is harmless: the next one polls the same mailboxes.
      retryPolicy: { maximumRetryAttempts: 2, maximumEventAgeInSeconds: 120 },
      // A tick the scheduler could not hand to Lambda (throttled, denied) lands here, where its
      // arrival alarms, instead of vanishing.
      deadLetterConfig: { arn: this.deadLetterQueue.queueArn },
    };
  }
}

export function createSchedule(
  scope: Construct,
  dispatcher: IFunction,
  rate: Duration,
  deadLetterQueue: IQueue,
): { schedule: Schedule; role: IRole } {
  const schedulerRole = new Role(scope, "SchedulerRole", {
    assumedBy: new ServicePrincipal("scheduler.amazonaws.com", {
      conditions: { StringEquals: { "aws:SourceAccount": Stack.of(scope).account } },
    }),
    inlinePolicies: {
      invoke: new PolicyDocument({
        statements: [
          new PolicyStatement({
            actions: ["lambda:InvokeFunction"],
            resources: [dispatcher.functionArn],
          }),
        ],
      }),
    },
  });
  const schedule = new Schedule(scope, "Schedule", {
    description: "mail-ingest: poll every mailbox",
    schedule: ScheduleExpression.rate(rate),
    target: new InvokeExactly(dispatcher, schedulerRole, deadLetterQueue),
  });
  return { schedule, role: schedulerRole };
}
