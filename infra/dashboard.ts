/**
 * One CloudWatch dashboard for the deployment: what was ingested, what failed, how far behind the
 * queues are, and the functions' health. Fleet numbers come from the service-level metrics; the
 * per-mailbox view is a Logs Insights query over the poller's logs, so it costs nothing until
 * someone opens the dashboard (CloudWatch Logs Insights bills per GB scanned).
 */
import { Duration } from "aws-cdk-lib";
import {
  Dashboard,
  GraphWidget,
  type IMetric,
  LogQueryVisualizationType,
  LogQueryWidget,
} from "aws-cdk-lib/aws-cloudwatch";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import type { ILogGroup } from "aws-cdk-lib/aws-logs";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { type MonitoredResources, redriveArrivals, sentArrivals, serviceMetric } from "./alarms.ts";
import { Metrics } from "./contract.ts";

export interface DashboardOptions extends MonitoredResources {
  readonly pollerLogGroup: ILogGroup;
}

/**
 * The per-mailbox failure state, from the poller's structured logs (Powertools keys `level`,
 * `message`, `mailbox`): every mailbox with a warning or an error in the dashboard's time range,
 * the worst first, with its latest message.
 */
export const MAILBOX_FAILURES_QUERY = [
  "fields @timestamp, mailbox, level, message",
  'filter ispresent(mailbox) and level in ["ERROR", "WARN"]',
  "stats count(*) as problems, latest(level) as lastLevel, latest(message) as lastMessage, max(@timestamp) as lastSeen by mailbox",
  "sort problems desc",
  "limit 100",
];

const sum = (metricName: string) => serviceMetric(metricName, "Sum");

export function createDashboard(scope: Construct, options: DashboardOptions): Dashboard {
  const graph = (title: string, left: IMetric[], width = 8) =>
    new GraphWidget({ title, left, width, height: 6 });
  const age = (queue: IQueue, label: string) =>
    queue.metricApproximateAgeOfOldestMessage({ statistic: "Maximum", label });
  const lambda = (fn: IFunction, name: string) => [
    fn.metricErrors({ statistic: "Sum", label: `${name} errors` }),
    fn.metricThrottles({ statistic: "Sum", label: `${name} throttles` }),
  ];
  const dlqs: IMetric[] = [
    redriveArrivals(options.jobsDlq, "jobs"),
    ...(options.outputDlq ? [redriveArrivals(options.outputDlq, "output")] : []),
    sentArrivals(options.dispatchDlq, "dispatch DLQ arrivals"),
  ];

  const dashboard = new Dashboard(scope, "Dashboard", {
    defaultInterval: Duration.hours(24),
  });
  dashboard.addWidgets(
    graph("Ingested messages", [sum(Metrics.messagesIngested)]),
    graph("Ingested bytes", [sum(Metrics.bytesIngested)]),
    graph("Poll failures, auth failures, back-offs", [
      sum(Metrics.pollFailures),
      sum(Metrics.authFailures),
      sum(Metrics.backOffs),
    ]),
  );
  dashboard.addWidgets(
    graph("Oldest message age, s", [
      age(options.jobsQueue, "jobs"),
      age(options.outputQueue, "output"),
    ]),
    graph("DLQ arrivals", dlqs),
    graph("Lambda errors and throttles", [
      ...lambda(options.poller, "poller"),
      ...lambda(options.dispatcher, "dispatcher"),
    ]),
  );
  dashboard.addWidgets(
    graph(
      "Lambda duration, ms",
      [
        options.poller.metricDuration({ statistic: "p50", label: "poller p50" }),
        options.poller.metricDuration({ statistic: "p99", label: "poller p99" }),
        options.dispatcher.metricDuration({ statistic: "Maximum", label: "dispatcher max" }),
      ],
      8,
    ),
    new LogQueryWidget({
      title: "Mailboxes with warnings or errors (poller logs)",
      logGroupNames: [options.pollerLogGroup.logGroupName],
      queryLines: MAILBOX_FAILURES_QUERY,
      view: LogQueryVisualizationType.TABLE,
      width: 16,
      height: 6,
    }),
  );
  return dashboard;
}
