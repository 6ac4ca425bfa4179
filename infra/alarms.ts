/**
 * The alarms. Each one fires on a change that needs a person, and returns to OK by itself once the
 * cause is gone: DLQs alarm on arrivals, not on depth, so one old message cannot hold an alarm in
 * ALARM for the queue's whole retention and hide the failures after it. Poller metrics are read at
 * service level (no `mailbox` dimension), so one alarm covers the whole fleet at no per-mailbox
 * cost; which mailbox failed is in the logs (the dashboard's Logs Insights widget).
 */
import { Duration } from "aws-cdk-lib";
import {
  Alarm,
  type AlarmProps,
  ComparisonOperator,
  type IAlarm,
  type IMetric,
  MathExpression,
  Metric,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import type { ITopic } from "aws-cdk-lib/aws-sns";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { ConfigError } from "../lambdas/config/index.ts";
import { Metrics } from "./contract.ts";

/** The construct's alarms; each notifies `alarmTopic` when given. README "Alarms" says what to do. */
export interface MailIngestionAlarms {
  /** A job was dead-lettered after `maxReceiveCount` receives: a mailbox is not being polled. */
  readonly jobsDlqArrivals: IAlarm;
  /** A consumer gave up on a message (only when the construct created the output queue). */
  readonly outputDlqArrivals?: IAlarm;
  /** A tick never ran: the scheduler could not invoke the dispatcher, or the dispatcher failed twice. */
  readonly dispatchDlqArrivals: IAlarm;
  /** The oldest job waited longer than one schedule period: the pollers are not keeping up. */
  readonly jobsQueueAge: IAlarm;
  /** The oldest output message waited longer than `outputQueueAgeAlarmAfter`: nobody is consuming. */
  readonly outputQueueAge: IAlarm;
  /** The poller crashed or timed out (not per-message failures, which are reported in-batch). */
  readonly pollerErrors: IAlarm;
  /** The dispatcher failed, so no mailbox was scheduled this tick. */
  readonly dispatcherErrors: IAlarm;
  /** The dispatcher did not run for two schedule periods. */
  readonly dispatcherHeartbeat: IAlarm;
  /** A mail server rejected credentials: fix the secret or parameter. */
  readonly authFailures: IAlarm;
  /** Some mailbox kept mail on the server for `backlogAlarmAfter`: ingestion is not keeping up. */
  readonly backlog: IAlarm;
}

/** The construct's queues and functions that the alarms and the dashboard watch. */
export interface MonitoredResources {
  readonly jobsQueue: IQueue;
  readonly jobsDlq: IQueue;
  readonly outputQueue: IQueue;
  /** Only when the construct created the output queue. */
  readonly outputDlq?: IQueue;
  readonly dispatchDlq: IQueue;
  readonly poller: IFunction;
  readonly dispatcher: IFunction;
}

export interface AlarmsOptions extends MonitoredResources {
  readonly alarmTopic?: ITopic;
  readonly backlogAlarmAfter?: Duration;
  readonly outputQueueAgeAlarmAfter: Duration;
  readonly schedulePeriod: Duration;
}

const FIVE_MINUTES = Duration.minutes(5);

/** A poller metric at service level: one series for the whole fleet. */
export function serviceMetric(
  metricName: string,
  statistic: string,
  period = FIVE_MINUTES,
): Metric {
  return new Metric({
    namespace: Metrics.namespace,
    metricName,
    dimensionsMap: { [Metrics.serviceDimension]: Metrics.serviceName },
    statistic,
    period,
  });
}

/**
 * Messages newly moved into a redrive DLQ. SQS does not count redriven messages in the DLQ's
 * `NumberOfMessagesSent` (SQS developer guide, "Available CloudWatch metrics"), so this is the
 * rise of its visible count from one period to the next. An idle, empty queue publishes no data
 * points; FILL makes those periods 0 so the first arrival still shows as a rise.
 */
export function redriveArrivals(queue: IQueue, name: string): IMetric {
  // Metric ids must be unique within one graph, so each queue's input is named after it.
  const id = `${name}Visible`;
  return new MathExpression({
    expression: `DIFF(FILL(${id}, 0))`,
    usingMetrics: {
      [id]: queue.metricApproximateNumberOfMessagesVisible({
        period: FIVE_MINUTES,
        statistic: "Maximum",
      }),
    },
    period: FIVE_MINUTES,
    label: `${name} DLQ arrivals`,
  });
}

/** Messages sent straight to a DLQ (by the scheduler or a Lambda destination, not by redrive). */
export function sentArrivals(queue: IQueue, label?: string): IMetric {
  return queue.metricNumberOfMessagesSent({ period: FIVE_MINUTES, statistic: "Sum", label });
}

export function createAlarms(scope: Construct, options: AlarmsOptions): MailIngestionAlarms {
  const action = options.alarmTopic ? new SnsAction(options.alarmTopic) : undefined;
  const alarm = (id: string, what: string, props: Omit<AlarmProps, "alarmDescription">) => {
    const created = new Alarm(scope, id, {
      treatMissingData: TreatMissingData.NOT_BREACHING,
      ...props,
      alarmDescription: `mail-ingest: ${what}`,
    });
    if (action) created.addAlarmAction(action);
    return created;
  };
  const above = (metric: IMetric, threshold: number) => ({
    metric,
    threshold,
    comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
  });
  const queueAge = (queue: IQueue) =>
    queue.metricApproximateAgeOfOldestMessage({ period: FIVE_MINUTES, statistic: "Maximum" });

  const backlogAfter = options.backlogAlarmAfter ?? Duration.hours(2);
  const backlogPeriods = Math.max(1, Math.ceil(backlogAfter.toMinutes() / 15));
  if (backlogPeriods * 15 > 24 * 60) {
    // CloudWatch evaluates alarms with periods under an hour over at most one day.
    throw new ConfigError("backlogAlarmAfter", "must be at most 24 hours");
  }
  const outputAge = options.outputQueueAgeAlarmAfter.toSeconds();
  if (outputAge < 300 || outputAge >= 14 * 24 * 3600) {
    throw new ConfigError(
      "outputQueueAgeAlarmAfter",
      "must be between 5 minutes and 14 days (SQS's longest retention)",
    );
  }
  const period = options.schedulePeriod.toSeconds();

  return {
    jobsDlqArrivals: alarm(
      "JobsDlqArrivals",
      "a mailbox job was dead-lettered after repeated failures",
      above(redriveArrivals(options.jobsDlq, "jobs"), 0),
    ),
    outputDlqArrivals: options.outputDlq
      ? alarm(
          "OutputDlqArrivals",
          "a consumer gave up on an output message",
          above(redriveArrivals(options.outputDlq, "output"), 0),
        )
      : undefined,
    dispatchDlqArrivals: alarm(
      "DispatchDlqArrivals",
      "a schedule tick was not delivered or the dispatcher failed it",
      above(sentArrivals(options.dispatchDlq), 0),
    ),
    jobsQueueAge: alarm(
      "JobsQueueAge",
      `a mailbox job waited longer than one schedule period (${period} s)`,
      above(queueAge(options.jobsQueue), period),
    ),
    outputQueueAge: alarm(
      "OutputQueueAge",
      `an output message waited longer than ${outputAge} s: its consumer is not reading`,
      above(queueAge(options.outputQueue), outputAge),
    ),
    pollerErrors: alarm(
      "PollerErrors",
      "poller invocations crashed",
      above(options.poller.metricErrors({ period: FIVE_MINUTES, statistic: "Sum" }), 0),
    ),
    dispatcherErrors: alarm(
      "DispatcherErrors",
      "dispatcher failed",
      above(options.dispatcher.metricErrors({ period: FIVE_MINUTES, statistic: "Sum" }), 0),
    ),
    dispatcherHeartbeat: alarm(
      "DispatcherHeartbeat",
      "the dispatcher has not run for two schedule periods",
      {
        metric: options.dispatcher.metricInvocations({
          period: options.schedulePeriod,
          statistic: "Sum",
        }),
        threshold: 1,
        comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 2,
        // No invocation publishes no data point: silence is exactly what this alarm is for.
        treatMissingData: TreatMissingData.BREACHING,
      },
    ),
    authFailures: alarm(
      "AuthFailures",
      "a mail server rejected a mailbox's credentials",
      above(serviceMetric(Metrics.authFailures, "Sum"), 0),
    ),
    backlog: alarm(
      "Backlog",
      `a mailbox kept mail on the server for ${backlogPeriods * 15} minutes`,
      {
        // Maximum over the fleet's one series: above zero in every period means some mailbox
        // never drained.
        metric: serviceMetric(Metrics.backlog, "Maximum", Duration.minutes(15)),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: backlogPeriods,
        datapointsToAlarm: backlogPeriods,
      },
    ),
  };
}
