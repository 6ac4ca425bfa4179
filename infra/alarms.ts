/** The alarms: DLQ depths, function errors, and the poller's auth-failure and backlog metrics. */
import { Duration } from "aws-cdk-lib";
import {
  Alarm,
  ComparisonOperator,
  type IAlarm,
  MathExpression,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import type { ITopic } from "aws-cdk-lib/aws-sns";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { ConfigError } from "../lambdas/config/index.ts";
import { Metrics } from "./contract.ts";

/** The construct's alarms; each notifies `alarmTopic` when given. */
export interface MailIngestionAlarms {
  /** Jobs that failed `maxReceiveCount` times: a mailbox is not being polled. */
  readonly jobsDlqDepth: IAlarm;
  /** Metadata a consumer could not process (only when the construct created the output queue). */
  readonly outputDlqDepth?: IAlarm;
  /** The poller crashed or timed out (not per-message failures, which are reported in-batch). */
  readonly pollerErrors: IAlarm;
  /** The dispatcher failed, so no mailbox was scheduled this tick. */
  readonly dispatcherErrors: IAlarm;
  /** A POP3 server rejected credentials: fix the secret. */
  readonly authFailures: IAlarm;
  /** Some mailbox kept mail on the server for `backlogAlarmAfter`: ingestion is not keeping up. */
  readonly backlog: IAlarm;
}

export interface AlarmsOptions {
  readonly jobsDlq: IQueue;
  /** Only when the construct created the output queue. */
  readonly outputDlq?: IQueue;
  readonly poller: IFunction;
  readonly dispatcher: IFunction;
  readonly alarmTopic?: ITopic;
  readonly backlogAlarmAfter?: Duration;
}

export function createAlarms(scope: Construct, options: AlarmsOptions): MailIngestionAlarms {
  const action = options.alarmTopic ? new SnsAction(options.alarmTopic) : undefined;
  const alarm = (id: string, alarmProps: ConstructorParameters<typeof Alarm>[2]) => {
    const created = new Alarm(scope, id, alarmProps);
    if (action) created.addAlarmAction(action);
    return created;
  };
  const fiveMinutes = Duration.minutes(5);
  const dlqAlarm = (id: string, queue: IQueue, what: string) =>
    alarm(id, {
      alarmDescription: `mail-ingest: ${what}`,
      metric: queue.metricApproximateNumberOfMessagesVisible({
        period: fiveMinutes,
        statistic: "Maximum",
      }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  const errorsAlarm = (id: string, fn: IFunction, what: string) =>
    alarm(id, {
      alarmDescription: `mail-ingest: ${what}`,
      metric: fn.metricErrors({ period: fiveMinutes, statistic: "Sum" }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  // Metrics Insights over the whole namespace: whatever dimensions the poller adds (service,
  // mailbox), every series is included, so no per-mailbox alarm is needed.
  const insights = (query: string, period: Duration) =>
    new MathExpression({ expression: query, usingMetrics: {}, period });

  const backlogAfter = options.backlogAlarmAfter ?? Duration.hours(2);
  const backlogPeriod = Duration.minutes(15);
  const backlogPeriods = Math.max(1, Math.ceil(backlogAfter.toMinutes() / 15));
  if (backlogPeriods * 15 > 180) {
    // Metrics Insights alarms evaluate at most the last 3 hours.
    throw new ConfigError("backlogAlarmAfter", "must be at most 3 hours");
  }

  return {
    jobsDlqDepth: dlqAlarm("JobsDlqDepth", options.jobsDlq, "mailbox jobs failed repeatedly"),
    outputDlqDepth: options.outputDlq
      ? dlqAlarm(
          "OutputDlqDepth",
          options.outputDlq,
          "output messages a consumer could not process",
        )
      : undefined,
    pollerErrors: errorsAlarm("PollerErrors", options.poller, "poller invocations crashed"),
    dispatcherErrors: errorsAlarm("DispatcherErrors", options.dispatcher, "dispatcher failed"),
    authFailures: alarm("AuthFailures", {
      alarmDescription: "mail-ingest: a POP3 server rejected a mailbox's credentials",
      metric: insights(
        `SELECT SUM(${Metrics.authFailures}) FROM "${Metrics.namespace}"`,
        fiveMinutes,
      ),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    }),
    backlog: alarm("Backlog", {
      alarmDescription: `mail-ingest: a mailbox kept mail on the server for ${backlogPeriods * 15} minutes`,
      // MAX over every mailbox: above zero in every period means some mailbox never drained.
      metric: insights(`SELECT MAX(${Metrics.backlog}) FROM "${Metrics.namespace}"`, backlogPeriod),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: backlogPeriods,
      datapointsToAlarm: backlogPeriods,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    }),
  };
}
