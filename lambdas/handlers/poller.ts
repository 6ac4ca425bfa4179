/**
 * The poller Lambda: consumes the SQS FIFO jobs queue and runs one mailbox session per job. A batch
 * holds jobs of up to `mailboxesPerInvocation` mailboxes (the event source's batch size), and
 * their sessions run at once (fifo-batch.ts: one mailbox's jobs in order, mailboxes side by
 * side), each with its own logger and metrics, all within one memory bound (fetch-gate.ts): an
 * idle poll mostly waits on the network, so ten cost about what one does. Each job's fate is
 * decided from its session's error code:
 *
 * - no error, mail left over (cap or deadline) → success, and a continuation job is enqueued;
 * - `IN_USE` / `LOGIN_DELAY` (RFC 2449 §8.1, RFC 3206) → success with a warning and a `BackOffs`
 *   metric. FIFO queues have no per-message DelaySeconds, so the back-off *is* the schedule: the
 *   next tick polls again, by when the other session or the login delay has passed;
 * - `AUTH_FAILED` / `OAUTH_FAILED` / `INVALID_CREDENTIAL` → success with an error log and an
 *   `AuthFailures` metric: retrying a wrong password at once only risks a lockout, so the next
 *   tick retries (no retry storm) and the metric's alarm pages someone;
 * - a message the deadline stopped in two consecutive runs of a chain (the continuation job
 *   carries the ids) → a warning and a `DeadlineStalls` metric;
 * - the mailbox lock is held by another run (a report with `lockedBy`, not an error) → success
 *   with a warning and a `BackOffs` metric, like `IN_USE`. The pollers share one lease per
 *   mailbox (see {@link FLEET_LEASE_KEEP_MS}), so a timed-out invocation never blocks the next
 *   poller; a CLI's lease blocks them until it is released or lapses;
 * - the server could not be reached or stopped answering (connect failures and timeouts, a
 *   dropped connection) → success with a warning and a `PollFailures` metric, like `IN_USE`: a
 *   failed record would keep the jobs queue's visibility timeout (30 min) and hold the mailbox's
 *   FIFO group that long, while the next tick (one period) is the soonest useful retry anyway;
 * - anything else (`SYS_TEMP`, storage or queue failures, a bug) → a batch item failure, so SQS
 *   redelivers it and moves it to the DLQ after `maxReceiveCount`.
 *
 * Before any of that, a scheduled job older than one schedule period (`SCHEDULE_PERIOD_SECONDS`)
 * is dropped with a `StaleJobsDropped` metric: a newer tick's job for the same mailbox is already
 * queued behind it, so running both would only poll twice while the queue is behind.
 * Continuations are never dropped: they carry on a chain that is making progress.
 *
 * Metrics have only the `service` dimension unless `PER_MAILBOX_METRICS=true`, which adds a
 * second set, `[service, mailbox]`, beside it; the mailbox is an EMF property of every blob either way, so Logs Insights can find one mailbox's figures.
 */
import { createHash } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { getParameter } from "@aws-lambda-powertools/parameters/ssm";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { EventBridgeFanout } from "../adapters/eventbridge-fanout.ts";
import { type Adapters, createAdapters } from "../adapters/index.ts";
import {
  type AppConfig,
  booleanEnv,
  createConfigLoader,
  EnvDefaults,
  integerEnv,
  LambdaEnv,
  outputMaxMessageBytesEnv,
  PollerMetric,
  requireEnv,
  storageFromEnv,
} from "../config/index.ts";
import {
  ErrorCode as Codes,
  describeError,
  isMailIngestError,
  MailIngestError,
} from "../errors.ts";
import { FetchGate } from "../ingest/fetch-gate.ts";
import { pollMailbox } from "../ingest/poll-mailbox.ts";
import { runMailbox } from "../ingest/session.ts";
import type { MailboxReport } from "../ingest/types.ts";
import {
  credentialDeps,
  type ResolveCredentialsDeps,
  resolveCredentials,
} from "../secrets/credentials.ts";
import { secretsManagerStore } from "../secrets/secrets-manager.ts";
import { ssmSecretStore } from "../secrets/ssm.ts";
import { processFifoBatch } from "./fifo-batch.ts";
import {
  jobScheduledAt,
  MAX_STALLED_IDS,
  type PollJob,
  parseJob,
  type SendMessageBatch,
  sendJobs,
} from "./jobs.ts";
import { lazy, sessionLogger } from "./runtime.ts";

/**
 * How long a poller's mailbox lease must at least outlive the invocation's timeout, ms: the
 * shared lease is renewed when it would lapse sooner, so it never lapses under a running
 * session, and the margin absorbs clock skew between the hosts that judge the expiry.
 */
export const LEASE_MARGIN_MS = 10_000;

/**
 * How long the pollers' shared mailbox lease is kept past its last renewal, ms. The pollers of
 * one jobs queue are exclusive per mailbox already (one FIFO message group per mailbox runs one
 * job at a time), so they share the lease ({@link fleetLeaseOwner}): an idle poll reads it and
 * writes nothing, and it is renewed (one PUT) only when it would lapse before an invocation's
 * timeout, i.e. about once an hour. The price: a CLI run on a mailbox the fleet polls waits up to
 * this long after the fleet's last poll.
 */
export const FLEET_LEASE_KEEP_MS = 60 * 60 * 1000;

/** The lease owner shared by the pollers of one jobs queue (one deployment): a digest of its URL. */
export function fleetLeaseOwner(jobsQueueUrl: string): string {
  return `fleet-${createHash("sha256").update(jobsQueueUrl).digest("hex").slice(0, 32)}`;
}

export interface PollerDeps {
  readonly loadConfig: () => Promise<AppConfig>;
  /** Store, output queue and state; built once per container. */
  readonly adapters: () => Adapters | Promise<Adapters>;
  readonly sendMessageBatch: SendMessageBatch;
  /** Where continuation jobs go: the jobs queue this poller consumes. */
  readonly jobsQueueUrl: string;
  /** Secrets Manager lookups, the OAuth2 token provider and `{env}` sources ({@link credentialDeps}). */
  readonly credentials: ResolveCredentialsDeps;
  readonly runMailbox: typeof runMailbox;
  /** The invocation's logger; each job logs through a child of it with the job's keys. */
  readonly logger: Logger;
  /** A fresh metrics instance for one job: jobs run concurrently, so they never share one. */
  readonly createMetrics: () => Metrics;
  readonly safetyMarginMs: number;
  /** Add a `mailbox` dimension to every metric (`PER_MAILBOX_METRICS`). @default false */
  readonly perMailboxMetrics?: boolean;
  /**
   * The dispatch schedule's period, s (`SCHEDULE_PERIOD_SECONDS`): a scheduled job older than this
   * is dropped. @default EnvDefaults.schedulePeriodSeconds
   */
  readonly schedulePeriodSeconds?: number;
  /** Epoch ms. */
  readonly now?: () => number;
}

/** What one job logs and counts through. */
interface JobScope {
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export function createPoller(deps: PollerDeps) {
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    deps.logger.addContext(context);
    // One memory bound for every session of this invocation, however many mailboxes it polls.
    const fetchGate = new FetchGate();
    // FIFO-aware: a failed job fails the later jobs of the same mailbox in the batch too, so a
    // group's jobs never run out of order; other mailboxes' jobs still run. Failures are always
    // reported per item, even when the whole batch failed; PollFailures counts them for alarms.
    const batchItemFailures = await processFifoBatch(event.Records, (record) =>
      processRecord(deps, record, context, fetchGate),
    );
    return { batchItemFailures };
  };
}

async function processRecord(
  deps: PollerDeps,
  record: SQSRecord,
  context: Context,
  fetchGate: FetchGate,
): Promise<void> {
  // The children carry the invocation's Lambda context; the job's keys stay on the child.
  const scope: JobScope = { logger: deps.logger.createChild(), metrics: deps.createMetrics() };
  const { logger, metrics } = scope;
  let job: PollJob;
  try {
    job = parseJob(record.body);
  } catch (err) {
    logger.error("malformed poll job; it will reach the DLQ", {
      messageId: record.messageId,
      error: describeError(err),
    });
    throw err;
  }
  logger.appendKeys({
    mailbox: job.mailboxId,
    tick: job.tick,
    continuation: job.continuation ?? 0,
  });
  // Per-mailbox dimensions are a custom metric per mailbox (billed each); the property alone
  // costs nothing and still lets Logs Insights filter one mailbox's blobs. Opted in, the blob
  // carries both dimension sets, [service] and [service, mailbox]: the construct's alarms and
  // dashboard read the [service] series, which a mailbox dimension alone would leave empty.
  // `addDimensions` adds a set beside the default one (Powertools v2); an empty set publishes as
  // the default dimensions only, i.e. [service].
  if (deps.perMailboxMetrics) {
    metrics.addDimensions({});
    metrics.addDimensions({ mailbox: job.mailboxId });
  } else metrics.addMetadata("mailbox", job.mailboxId);
  try {
    if (isStale(deps, scope, job)) return;
    await runJob(deps, scope, job, context, fetchGate);
  } catch (err) {
    metrics.addMetric(PollerMetric.PollFailures, MetricUnit.Count, 1);
    logger.error("poll job failed; SQS will redeliver it", {
      code: isMailIngestError(err) ? err.code : undefined,
      error: describeError(err),
    });
    throw err;
  } finally {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  }
}

/**
 * Whether a scheduled job is older than one schedule period, and so dropped (logged, counted).
 * By then the next tick has queued a job for the same mailbox behind it (FIFO group), so this one
 * is superseded; without the drop a queue that fell behind would poll each mailbox once per
 * queued tick and never catch up.
 */
function isStale(deps: PollerDeps, scope: JobScope, job: PollJob): boolean {
  if (job.continuation !== undefined) return false;
  const periodMs = (deps.schedulePeriodSeconds ?? EnvDefaults.schedulePeriodSeconds) * 1000;
  const ageMs = (deps.now ?? Date.now)() - jobScheduledAt(job);
  if (!(ageMs > periodMs)) return false;
  scope.metrics.addMetric(PollerMetric.StaleJobsDropped, MetricUnit.Count, 1);
  scope.logger.warn(
    "scheduled job is older than one schedule period; dropped, a newer tick polls the mailbox",
    {
      ageSeconds: Math.round(ageMs / 1000),
      periodSeconds: periodMs / 1000,
    },
  );
  return true;
}

async function runJob(
  deps: PollerDeps,
  scope: JobScope,
  job: PollJob,
  context: Context,
  fetchGate: FetchGate,
): Promise<void> {
  const { logger, metrics } = scope;
  const now = deps.now ?? Date.now;
  const config = await deps.loadConfig();
  const mailbox = config.mailboxes.find((m) => m.id === job.mailboxId);
  if (!mailbox) {
    // The config changed between dispatch and poll: no retry can ever succeed.
    logger.warn("poll job names a mailbox that is not configured; dropped");
    return;
  }

  const remainingMs = context.getRemainingTimeInMillis();
  const { report, outcome } = await pollMailbox(
    mailbox,
    { ...(await deps.adapters()), log: sessionLogger(logger) },
    {
      credentials: (m, fresh) => resolveCredentials(m, deps.credentials, fresh),
      deadline: now() + remainingMs - deps.safetyMarginMs,
      fetchGate,
      lockExpiresAt: now() + remainingMs + LEASE_MARGIN_MS,
      lockShared: { owner: fleetLeaseOwner(deps.jobsQueueUrl), keepMs: FLEET_LEASE_KEEP_MS },
      run: deps.runMailbox,
    },
  );
  recordReportMetrics(metrics, report);
  const summary = {
    listed: report.listed,
    ingested: report.ingested,
    skipped: report.skipped,
    failed: report.failed,
    deleted: report.deleted,
    bytes: report.bytes,
    remaining: report.remaining,
    durationMs: report.durationMs,
  };

  switch (outcome) {
    case "locked":
      metrics.addMetric(PollerMetric.BackOffs, MetricUnit.Count, 1);
      logger.warn("mailbox is locked by another run; the next scheduled tick retries", {
        holder: report.lockedBy,
      });
      return;
    case "back-off":
      metrics.addMetric(PollerMetric.BackOffs, MetricUnit.Count, 1);
      logger.warn("server asked us to back off; the next scheduled tick retries", {
        code: report.errorCode,
        error: report.error,
      });
      return;
    case "unreachable":
      // Counted as a failure (the alarm and dashboard see it), but the record succeeds: see the
      // module comment for why a failed record would hold the mailbox for 30 minutes.
      metrics.addMetric(PollerMetric.PollFailures, MetricUnit.Count, 1);
      logger.warn("could not reach the server; the next scheduled tick retries", {
        code: report.errorCode,
        error: report.error,
      });
      return;
    case "auth-failed":
      metrics.addMetric(PollerMetric.AuthFailures, MetricUnit.Count, 1);
      logger.error("login rejected; not retrying before the next scheduled tick", {
        code: report.errorCode,
        error: report.error,
      });
      return;
    case "retry":
      throw new MailIngestError(
        report.errorCode ?? Codes.SYS_TEMP,
        report.error ?? "session failed",
      );
    case "done":
      break;
  }

  // An idle poll (nothing new, nothing left) is what a fleet does 8,640 times per mailbox a
  // month: its figures are in the EMF blob already, and a second line would nearly double what
  // CloudWatch Logs bills (issue 9). LOG_LEVEL=DEBUG shows it.
  const idle =
    report.ingested + report.skipped + report.failed + report.deleted + report.remaining === 0;
  if (idle) logger.debug("mailbox polled", summary);
  else logger.info("mailbox polled", summary);
  // A message that hits the deadline twice in a row will likely never fit in one invocation: it
  // would restart from zero every run while the mailbox looks merely slow. Say so, once per chain.
  const stalledAgain = (report.stalled ?? []).filter((id) => job.stalled?.includes(id));
  if (stalledAgain.length > 0) {
    metrics.addMetric(PollerMetric.DeadlineStalls, MetricUnit.Count, stalledAgain.length);
    logger.warn(
      "message(s) could not be downloaded before the deadline in two consecutive runs: raise the poller's timeout, or fetch them once with `mail-ingest poll`",
      { ids: stalledAgain },
    );
  }
  if (report.remaining === 0) return;
  if (report.ingested + report.skipped === 0 && job.continuation !== undefined) {
    // A continuation that fetched nothing ends the chain: otherwise a deadline that never leaves
    // room for a message (a timeout no larger than the safety margin) would loop forever. One
    // empty run is forgiven (a slow connect), the next tick starts a new chain.
    logger.warn(
      "mail left over but this continuation made no progress; waiting for the next tick",
      summary,
    );
    return;
  }
  const stalled = report.stalled?.slice(0, MAX_STALLED_IDS);
  const next: PollJob = {
    mailboxId: job.mailboxId,
    tick: job.tick,
    continuation: (job.continuation ?? 0) + 1,
    ...(stalled && stalled.length > 0 ? { stalled } : {}),
  };
  await sendJobs(deps.sendMessageBatch, deps.jobsQueueUrl, [next]);
  metrics.addMetric(PollerMetric.Continuations, MetricUnit.Count, 1);
  logger.info("enqueued a continuation job", {
    next: next.continuation,
    remaining: report.remaining,
  });
}

/** The EMF metrics of one session (the mailbox property or dimension is already set). */
function recordReportMetrics(metrics: Metrics, report: MailboxReport): void {
  metrics.addMetric(PollerMetric.MessagesIngested, MetricUnit.Count, report.ingested);
  metrics.addMetric(PollerMetric.BytesIngested, MetricUnit.Bytes, report.bytes);
  metrics.addMetric(PollerMetric.MessagesFailed, MetricUnit.Count, report.failed);
  metrics.addMetric(PollerMetric.MessagesSkipped, MetricUnit.Count, report.skipped);
  metrics.addMetric(PollerMetric.SessionDuration, MetricUnit.Milliseconds, report.durationMs);
  // Only a completed session knows what is left on the server; a failed one would report a false 0
  // and hide a backlog that is not shrinking. Skipped messages (permanently refused among them)
  // are not backlog, so it can return to zero.
  if (report.error === undefined && report.lockedBy === undefined) {
    metrics.addMetric(PollerMetric.Backlog, MetricUnit.Count, report.remaining + report.failed);
  }
}

/**
 * Production wiring. Nothing here runs at import: each piece reads the environment and builds its
 * client on first use, inside the first invocation (Powertools style), then reuses it.
 */
export function defaultPollerDeps(env: NodeJS.ProcessEnv = process.env): PollerDeps {
  const logger = lazy(
    () =>
      new Logger({
        serviceName: env[LambdaEnv.powertoolsServiceName] ?? EnvDefaults.serviceName,
      }),
  );
  const createMetrics = () =>
    new Metrics({
      namespace: env[LambdaEnv.powertoolsMetricsNamespace] ?? EnvDefaults.metricsNamespace,
      serviceName: env[LambdaEnv.powertoolsServiceName] ?? EnvDefaults.serviceName,
    });
  const sqs = lazy(() => new SQSClient({}));
  const credentials = lazy(() => {
    const cacheSeconds = integerEnv(
      env,
      LambdaEnv.secretCacheSeconds,
      EnvDefaults.secretCacheSeconds,
    );
    return credentialDeps({
      env,
      warn: (message) => logger().warn(message),
      store: secretsManagerStore({ cacheSeconds }),
      ssm: ssmSecretStore({ cacheSeconds }),
      // Issue 9: warm containers each rotate on every refresh; only an aged token is written back.
      writeBackAfterSeconds: integerEnv(
        env,
        LambdaEnv.tokenWriteBackAfterSeconds,
        EnvDefaults.tokenWriteBackAfterSeconds,
      ),
    });
  });
  const loadConfig = lazy(() =>
    createConfigLoader(env, (name, maxAge) => getParameter(name, { maxAge })),
  );
  // Not async: a missing variable throws here, uncached, rather than as a cached rejection.
  const adapters = lazy((): Promise<Adapters> => {
    const storage = storageFromEnv(env);
    const output = {
      type: "sqs",
      queueUrl: requireEnv(env, LambdaEnv.outputQueueUrl),
      // A passed-in queue may cap messages below 1 MiB; larger bodies then go in pointer form.
      maxMessageBytes: outputMaxMessageBytesEnv(env),
    } as const;
    const eventBusName = env[LambdaEnv.eventBusName];
    return createAdapters(storage, output).then((base) => {
      if (!eventBusName) return base;
      // Optional: every queue message is also published to the bus the construct was given.
      const queue = new EventBridgeFanout({
        queue: base.queue,
        client: new EventBridgeClient({}),
        eventBusName,
      });
      return { ...base, queue };
    });
  });
  const safetyMarginMs = lazy(() =>
    integerEnv(env, LambdaEnv.safetyMarginMs, EnvDefaults.safetyMarginMs),
  );
  const perMailboxMetrics = lazy(() => booleanEnv(env, LambdaEnv.perMailboxMetrics, false));
  const schedulePeriodSeconds = lazy(() =>
    integerEnv(env, LambdaEnv.schedulePeriodSeconds, EnvDefaults.schedulePeriodSeconds),
  );
  return {
    loadConfig: () => loadConfig()(),
    adapters,
    sendMessageBatch: (input) => sqs().send(new SendMessageBatchCommand(input)),
    get jobsQueueUrl() {
      return requireEnv(env, LambdaEnv.jobsQueueUrl);
    },
    get credentials() {
      return credentials();
    },
    runMailbox,
    get logger() {
      return logger();
    },
    createMetrics,
    get safetyMarginMs() {
      return safetyMarginMs();
    },
    get perMailboxMetrics() {
      return perMailboxMetrics();
    },
    get schedulePeriodSeconds() {
      return schedulePeriodSeconds();
    },
  };
}

export const handler = createPoller(defaultPollerDeps());
