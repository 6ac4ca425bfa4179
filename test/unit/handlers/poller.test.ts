import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import type { SendMessageBatchCommandInput } from "@aws-sdk/client-sqs";
import type { SQSEvent, SQSRecord } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FsQueue } from "../../../lambdas/adapters/fs-queue.ts";
import { FsStateStore } from "../../../lambdas/adapters/fs-state.ts";
import { FsObjectStore } from "../../../lambdas/adapters/fs-store.ts";
import type { MailboxConfig } from "../../../lambdas/config/index.ts";
import { createConfigLoader } from "../../../lambdas/config/index.ts";
import { ErrorCode as Codes, type ErrorCode } from "../../../lambdas/errors.ts";
import type { PollJob } from "../../../lambdas/handlers/jobs.ts";
import {
  createPoller,
  defaultPollerDeps,
  FLEET_LEASE_KEEP_MS,
  fleetLeaseOwner,
  LEASE_MARGIN_MS,
  type PollerDeps,
} from "../../../lambdas/handlers/poller.ts";
import type { MailboxReport, SessionDeps, SessionOptions } from "../../../lambdas/ingest/types.ts";
import { type ResolveCredentialsDeps, TokenProvider } from "../../../lambdas/secrets/index.ts";
import { jobRecord } from "../../helpers/lambda.ts";
import { type Captured, captureOutput, lambdaContext } from "./capture.ts";

const PASSWORD = "hunter2-SECRET-pw";
const REFRESH = "rt-SECRET-refresh";
const CLIENT_SECRET = "cs-SECRET-client";
const ACCESS = "at-SECRET-access";
const JOBS = "https://sqs.us-east-1.amazonaws.com/000000000000/jobs.fifo";
const TICK = "20240501T1005Z";

const CONFIG = JSON.stringify({
  mailboxes: [
    { id: "alpha", host: "pop.example.com", username: "a", password: { secretId: "s/alpha" } },
    { id: "beta", host: "pop.example.com", username: "b", password: { secretId: "s/beta" } },
    {
      id: "oauth",
      host: "outlook.office365.com",
      username: "o@example.com",
      auth: "xoauth2",
      password: { secretId: "s/oauth" },
    },
  ],
});

const SECRETS: Record<string, string> = {
  "s/alpha": PASSWORD,
  "s/beta": JSON.stringify({ password: PASSWORD }),
  "s/oauth": JSON.stringify({
    clientId: "cid",
    clientSecret: CLIENT_SECRET,
    refreshToken: REFRESH,
    tokenUrl: "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
    scope: "https://outlook.office365.com/POP.AccessAsUser.All offline_access",
  }),
};

function report(id: string, overrides: Partial<MailboxReport> = {}): MailboxReport {
  return {
    id,
    listed: 5,
    new: 5,
    ingested: 5,
    skipped: 0,
    failed: 0,
    deleted: 0,
    bytes: 1234,
    durationMs: 321,
    remaining: 0,
    warnings: [],
    ...overrides,
  };
}

function sqsRecord(job: PollJob | string, messageId = `msg-${Math.random()}`): SQSRecord {
  const body = typeof job === "string" ? job : JSON.stringify(job);
  return jobRecord(body, typeof job === "string" ? "x" : job.mailboxId, messageId);
}

function event(...records: SQSRecord[]): SQSEvent {
  return { Records: records };
}

interface Harness {
  readonly deps: PollerDeps;
  readonly sessions: Array<{ mailbox: MailboxConfig; deps: SessionDeps; options: SessionOptions }>;
  readonly sent: SendMessageBatchCommandInput[];
  readonly output: Captured;
}

let dir: string;
let output: Captured | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "poller-unit-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  output?.restore();
  output = undefined;
});

/**
 * Real logger, metrics, config loader, job sender and adapters (fs); the session is the fake,
 * scripted per mailbox, because these tests are about what the poller decides from a report.
 */
function harness(
  script: (mailbox: MailboxConfig, deps: SessionDeps) => MailboxReport | Promise<MailboxReport>,
  overrides: Partial<PollerDeps> & Pick<ResolveCredentialsDeps, "getSecret" | "tokenProvider"> = {},
): Harness {
  const { getSecret, tokenProvider, ...rest } = overrides;
  output = captureOutput();
  const sessions: Harness["sessions"] = [];
  const sent: SendMessageBatchCommandInput[] = [];
  const adapters = {
    store: new FsObjectStore({ dir }),
    queue: new FsQueue({ dir: path.join(dir, "q") }),
    state: new FsStateStore({ dir: path.join(dir, "state") }),
  };
  const deps: PollerDeps = {
    loadConfig: createConfigLoader({ MAIL_INGEST_CONFIG: CONFIG }, async () => undefined),
    adapters: () => adapters,
    sendMessageBatch: async (input) => {
      sent.push(input);
      return { Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id })) };
    },
    jobsQueueUrl: JOBS,
    credentials: {
      getSecret:
        getSecret ??
        (async (id) => {
          const value = SECRETS[id];
          if (value === undefined) throw new Error(`no secret ${id}`);
          return value;
        }),
      tokenProvider:
        tokenProvider ??
        new TokenProvider({
          // The token endpoint itself is exercised over real HTTP in test/unit/secrets/oauth.test.ts.
          fetch: async () =>
            new Response(JSON.stringify({ access_token: ACCESS, expires_in: 3600 }), {
              status: 200,
            }),
          persistRefreshToken: async () => {},
        }),
    },
    runMailbox: async (mailbox, sessionDeps, options) => {
      sessions.push({ mailbox, deps: sessionDeps, options });
      return script(mailbox, sessionDeps);
    },
    logger: new Logger({ serviceName: "test" }),
    createMetrics: () => new Metrics({ namespace: "MailIngest", serviceName: "test" }),
    safetyMarginMs: 30_000,
    now: () => 1_000_000,
    ...rest,
  };
  return { deps, sessions, sent, output };
}

const ctx = lambdaContext(() => 900_000);

/** The value of `name` in the EMF blob for `mailbox`, or undefined if none was published. */
function metric(h: Harness, mailbox: string, name: string): unknown {
  const blob = h.output.emf().find((o) => o.mailbox === mailbox && name in o);
  return blob?.[name];
}

describe("poller", () => {
  it("runs the session with the secret's password and a deadline of remaining time minus the margin", async () => {
    const h = harness((m) => report(m.id));
    const result = await createPoller(h.deps)(
      event(sqsRecord({ mailboxId: "alpha", tick: TICK })),
      ctx,
    );
    expect(result).toEqual({ batchItemFailures: [] });
    expect(h.sessions).toHaveLength(1);
    expect(h.sessions[0]?.mailbox.id).toBe("alpha");
    expect(h.sessions[0]?.options.credentials).toEqual({ password: PASSWORD });
    expect(h.sessions[0]?.options.deadline).toBe(1_000_000 + 900_000 - 30_000);
  });

  it("reads a JSON {password} secret", async () => {
    const h = harness((m) => report(m.id));
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "beta", tick: TICK })), ctx);
    expect(h.sessions[0]?.options.credentials).toEqual({ password: PASSWORD });
  });

  it("logs in an OAuth2 mailbox with an access token from the refresh token", async () => {
    const h = harness((m) => report(m.id));
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "oauth", tick: TICK })), ctx);
    expect(h.sessions[0]?.options.credentials).toEqual({ accessToken: ACCESS });
  });

  it("enqueues a continuation in the same group when mail is left over", async () => {
    const h = harness((m) => report(m.id, { ingested: 3, remaining: 40 }));
    const result = await createPoller(h.deps)(
      event(sqsRecord({ mailboxId: "alpha", tick: TICK, continuation: 2 })),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([]);
    const entries = h.sent.flatMap((c) => c.Entries ?? []);
    expect(h.sent[0]?.QueueUrl).toBe(JOBS);
    expect(entries).toHaveLength(1);
    expect(entries[0]?.MessageGroupId).toBe("alpha");
    expect(entries[0]?.MessageDeduplicationId).toBe(`alpha:${TICK}:c3`);
    expect(JSON.parse(entries[0]?.MessageBody ?? "")).toEqual({
      mailboxId: "alpha",
      tick: TICK,
      continuation: 3,
    });
    expect(metric(h, "alpha", "Continuations")).toBe(1);
  });

  it("carries the ids the deadline stalled into the continuation, and stays quiet about a first stall", async () => {
    const stalled = ["a".repeat(32)];
    const h = harness((m) => report(m.id, { ingested: 3, remaining: 40, stalled }));
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    const body = JSON.parse(h.sent.flatMap((c) => c.Entries ?? [])[0]?.MessageBody ?? "");
    expect(body).toEqual({ mailboxId: "alpha", tick: TICK, continuation: 1, stalled });
    expect(metric(h, "alpha", "DeadlineStalls")).toBeUndefined();
  });

  it("warns and counts DeadlineStalls when a message hits the deadline in two consecutive runs", async () => {
    const again = "b".repeat(32);
    const h = harness((m) =>
      report(m.id, { ingested: 2, remaining: 1, stalled: [again, "c".repeat(32)] }),
    );
    await createPoller(h.deps)(
      event(
        sqsRecord({
          mailboxId: "alpha",
          tick: TICK,
          continuation: 1,
          stalled: [again, "d".repeat(32)],
        }),
      ),
      ctx,
    );
    expect(metric(h, "alpha", "DeadlineStalls")).toBe(1);
    const warning = h.output.logs().find((l) => /two consecutive runs/.test(String(l.message)));
    expect(warning).toMatchObject({ level: "WARN", ids: [again] });
  });

  it("enqueues nothing when the mailbox is drained", async () => {
    const h = harness((m) => report(m.id));
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    expect(h.sent).toEqual([]);
  });

  it("ends the chain when a continuation makes no progress, so a too-short deadline cannot loop", async () => {
    const h = harness((m) => report(m.id, { ingested: 0, remaining: 40 }));
    const result = await createPoller(h.deps)(
      event(sqsRecord({ mailboxId: "alpha", tick: TICK, continuation: 1 })),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([]);
    expect(h.sent).toEqual([]);
  });

  it("forgives one empty run: a scheduled job that fetched nothing still gets a continuation", async () => {
    const h = harness((m) => report(m.id, { ingested: 0, remaining: 40 }));
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    const entries = h.sent.flatMap((c) => c.Entries ?? []);
    expect(entries.map((e) => e.MessageDeduplicationId)).toEqual([`alpha:${TICK}:c1`]);
  });

  it.each([Codes.IN_USE, Codes.LOGIN_DELAY])(
    "backs off on %s: no batch failure, no continuation, a warning and a BackOffs metric",
    async (code) => {
      const h = harness((m) =>
        report(m.id, {
          ingested: 0,
          remaining: 9,
          error: `mailbox ${m.id}: [${code}]`,
          errorCode: code,
        }),
      );
      const result = await createPoller(h.deps)(
        event(sqsRecord({ mailboxId: "alpha", tick: TICK })),
        ctx,
      );
      expect(result.batchItemFailures).toEqual([]);
      expect(h.sent).toEqual([]);
      expect(metric(h, "alpha", "BackOffs")).toBe(1);
      expect(h.output.logs().some((l) => l.level === "WARN" && l.mailbox === "alpha")).toBe(true);
    },
  );

  it("backs off when another run holds the mailbox lock: no batch failure, no continuation, BackOffs, no Backlog", async () => {
    const holder = { pid: 7, host: "169.254.1.1", startedAt: "2026-11-24T07:00:00.000Z" };
    const h = harness((m) => report(m.id, { ingested: 0, remaining: 0, lockedBy: holder }));
    const result = await createPoller(h.deps)(
      event(sqsRecord({ mailboxId: "alpha", tick: TICK, continuation: 2 })),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([]);
    expect(h.sent).toEqual([]);
    expect(metric(h, "alpha", "BackOffs")).toBe(1);
    // A skipped run knows nothing of the backlog; a 0 would hide one that is not shrinking.
    expect(metric(h, "alpha", "Backlog")).toBeUndefined();
    expect(
      h.output
        .logs()
        .some((l) => l.level === "WARN" && /locked by another run/.test(String(l.message))),
    ).toBe(true);
  });

  it("gives the session a lock expiry of the invocation's remaining time plus a margin, so a timed-out poller's lease lapses soon after", async () => {
    const h = harness((m) => report(m.id));
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    expect(h.sessions[0]?.options.lockExpiresAt).toBe(1_000_000 + 900_000 + LEASE_MARGIN_MS);
    expect(LEASE_MARGIN_MS).toBeLessThanOrEqual(60_000);
  });

  it("shares the mailbox lease among the pollers of one jobs queue, and only theirs", async () => {
    const h = harness((m) => report(m.id));
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    expect(h.sessions[0]?.options.lockShared).toEqual({
      owner: fleetLeaseOwner(h.deps.jobsQueueUrl),
      keepMs: FLEET_LEASE_KEEP_MS,
    });
    // Another deployment (another jobs queue) on the same bucket must not share it.
    expect(fleetLeaseOwner("https://sqs.example/1/a.fifo")).not.toBe(
      fleetLeaseOwner("https://sqs.example/1/b.fifo"),
    );
  });

  it("counts AUTH_FAILED in AuthFailures for the mailbox and does not fail the record", async () => {
    const h = harness((m) =>
      report(m.id, {
        ingested: 0,
        error: `mailbox ${m.id}: login rejected`,
        errorCode: Codes.AUTH_FAILED,
      }),
    );
    const result = await createPoller(h.deps)(
      event(sqsRecord({ mailboxId: "alpha", tick: TICK })),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([]);
    expect(metric(h, "alpha", "AuthFailures")).toBe(1);
    expect(h.output.logs().some((l) => l.level === "ERROR" && l.mailbox === "alpha")).toBe(true);
  });

  it("counts a refused OAuth refresh token in AuthFailures without running the session", async () => {
    const h = harness((m) => report(m.id), {
      tokenProvider: new TokenProvider({
        fetch: async () =>
          new Response(JSON.stringify({ error: "invalid_grant", error_description: "expired" }), {
            status: 400,
          }),
        persistRefreshToken: async () => {},
      }),
    });
    const result = await createPoller(h.deps)(
      event(sqsRecord({ mailboxId: "oauth", tick: TICK })),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([]);
    expect(h.sessions).toEqual([]);
    expect(metric(h, "oauth", "AuthFailures")).toBe(1);
  });

  it.each<ErrorCode>([
    Codes.CONNECT_FAILED,
    Codes.CONNECT_TIMEOUT,
    Codes.TIMEOUT,
    Codes.CONNECTION_CLOSED,
  ])(
    "waits for the next tick on a connection failure (%s): the record succeeds, so the mailbox is not held for the 30-minute visibility timeout",
    async (code) => {
      const h = harness((m) =>
        report(m.id, {
          ingested: 2,
          remaining: 7,
          error: `mailbox ${m.id}: down`,
          errorCode: code,
        }),
      );
      const result = await createPoller(h.deps)(
        event(sqsRecord({ mailboxId: "alpha", tick: TICK, continuation: 1 }, "m-1")),
        ctx,
      );
      expect(result.batchItemFailures).toEqual([]);
      // Still a failure for the alarm, and no continuation: the chain ends, the next tick retries.
      expect(metric(h, "alpha", "PollFailures")).toBe(1);
      expect(h.sent).toEqual([]);
      const warning = h.output.logs().find((l) => /next scheduled tick/.test(String(l.message)));
      expect(warning).toMatchObject({ level: "WARN", mailbox: "alpha", code });
    },
  );

  it.each<ErrorCode | undefined>([
    Codes.SYS_TEMP,
    Codes.TLS_FAILED,
    Codes.STORE_FAILED,
    Codes.QUEUE_FAILED,
    undefined,
  ])("fails the record on any other error (%s) so SQS redrives it", async (code) => {
    const h = harness((m) => report(m.id, { ingested: 0, error: "boom", errorCode: code }));
    const result = await createPoller(h.deps)(
      event(sqsRecord({ mailboxId: "alpha", tick: TICK }, "m-1")),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: "m-1" }]);
    expect(metric(h, "alpha", "PollFailures")).toBe(1);
    expect(h.sent).toEqual([]);
  });

  it("fails the record when the secret cannot be read", async () => {
    const h = harness((m) => report(m.id), {
      getSecret: async () => {
        throw new Error("AccessDeniedException");
      },
    });
    const result = await createPoller(h.deps)(
      event(sqsRecord({ mailboxId: "alpha", tick: TICK }, "m-2")),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: "m-2" }]);
  });

  it("fails only the failing mailbox's record in a batch of several", async () => {
    const h = harness((m) =>
      m.id === "alpha"
        ? report(m.id, { error: "store down", errorCode: Codes.STORE_FAILED })
        : report(m.id),
    );
    const result = await createPoller(h.deps)(
      event(
        sqsRecord({ mailboxId: "alpha", tick: TICK }, "a-1"),
        sqsRecord({ mailboxId: "beta", tick: TICK }, "b-1"),
      ),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: "a-1" }]);
    expect(h.sessions.map((s) => s.mailbox.id)).toEqual(["alpha", "beta"]);
    expect(metric(h, "beta", "MessagesIngested")).toBe(5);
  });

  describe("a batch of several mailboxes (mailboxesPerInvocation)", () => {
    /**
     * Resolves once `count` calls have arrived, or after 5 s so that sequential jobs cannot hang
     * the test; `met` says whether all arrived before that.
     */
    function barrier(count: number) {
      let arrived = 0;
      let timedOut = false;
      let open!: () => void;
      const opened = new Promise<void>((resolve) => {
        open = resolve;
      });
      const guard = setTimeout(() => {
        timedOut = true;
        open();
      }, 5_000);
      const state = {
        met: false,
        async arrive() {
          if (++arrived === count && !timedOut) {
            state.met = true;
            clearTimeout(guard);
            open();
          }
          await opened;
        },
      };
      return state;
    }

    it("polls the mailboxes at once, each job with its own log keys and its own metrics", async () => {
      const together = barrier(2);
      const h = harness(async (m, d) => {
        // Each session waits for the other to start: only concurrent jobs both get past this.
        await together.arrive();
        d.log?.info("inside the session");
        return report(m.id, { ingested: m.id === "alpha" ? 4 : 7 });
      });
      const result = await createPoller(h.deps)(
        event(
          sqsRecord({ mailboxId: "alpha", tick: TICK }),
          sqsRecord({ mailboxId: "beta", tick: TICK }),
        ),
        ctx,
      );
      expect(result).toEqual({ batchItemFailures: [] });
      expect(together.met).toBe(true);
      const inside = h.output.logs().filter((l) => l.message === "inside the session");
      expect(inside.map((l) => l.mailbox).sort()).toEqual(["alpha", "beta"]);
      for (const line of h.output.logs().filter((l) => l.message === "mailbox polled")) {
        expect(line.ingested).toBe(line.mailbox === "alpha" ? 4 : 7);
      }
      expect(metric(h, "alpha", "MessagesIngested")).toBe(4);
      expect(metric(h, "beta", "MessagesIngested")).toBe(7);
      expect(h.output.emf()).toHaveLength(2);
      // Both sessions of one invocation share a single memory bound.
      const [first, second] = h.sessions;
      expect(first?.options.fetchGate).toBeDefined();
      expect(first?.options.fetchGate).toBe(second?.options.fetchGate);
    });

    it("runs one mailbox's jobs in order, and fails the rest of its group after a failure while the others run", async () => {
      const events: string[] = [];
      const h = harness(async (m) => {
        events.push(`${m.id} start`);
        await new Promise((resolve) => setImmediate(resolve));
        events.push(`${m.id} end`);
        return m.id === "beta"
          ? report(m.id, { error: "store down", errorCode: Codes.STORE_FAILED })
          : report(m.id);
      });
      const result = await createPoller(h.deps)(
        event(
          sqsRecord({ mailboxId: "alpha", tick: TICK }, "a-1"),
          sqsRecord({ mailboxId: "beta", tick: TICK }, "b-1"),
          sqsRecord({ mailboxId: "alpha", tick: TICK, continuation: 1 }, "a-2"),
          sqsRecord({ mailboxId: "beta", tick: TICK, continuation: 1 }, "b-2"),
        ),
        ctx,
      );
      // b-2 never ran: running it after b-1 failed would take the group out of order.
      expect(result.batchItemFailures).toEqual([
        { itemIdentifier: "b-1" },
        { itemIdentifier: "b-2" },
      ]);
      expect(h.sessions.map((x) => x.mailbox.id).sort()).toEqual(["alpha", "alpha", "beta"]);
      // alpha's second job started only after its first ended.
      const alpha = events.filter((e) => e.startsWith("alpha"));
      expect(alpha).toEqual(["alpha start", "alpha end", "alpha start", "alpha end"]);
      // ...while beta ran beside alpha's first job.
      expect(events.indexOf("beta start")).toBeLessThan(events.indexOf("alpha end"));
    });
  });

  it("fails a malformed job and drops a job for a mailbox no longer configured", async () => {
    const h = harness((m) => report(m.id));
    const result = await createPoller(h.deps)(
      event(
        sqsRecord("{not json", "bad-1"),
        sqsRecord({ mailboxId: "gone", tick: TICK }, "gone-1"),
        // Stalled ids become log fields: only message ids (32 hex) are accepted.
        sqsRecord(
          JSON.stringify({ mailboxId: "beta", tick: TICK, continuation: 1, stalled: ["../x"] }),
          "bad-2",
        ),
      ),
      ctx,
    );
    expect(result.batchItemFailures).toEqual([
      { itemIdentifier: "bad-1" },
      { itemIdentifier: "bad-2" },
    ]);
    expect(h.sessions).toEqual([]);
  });

  /** The namespace and dimension sets of an EMF blob. */
  function emfDirective(blob: Record<string, unknown> | undefined) {
    const aws = blob?._aws as {
      CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][] }>;
    };
    return aws.CloudWatchMetrics[0];
  }

  it("publishes EMF metrics with service-level dimensions only, and the mailbox as a property", async () => {
    const h = harness((m) =>
      report(m.id, { ingested: 4, failed: 1, skipped: 2, remaining: 0, bytes: 999 }),
    );
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    const blobs = h.output.emf();
    expect(blobs).toHaveLength(1);
    const blob = blobs[0];
    // The property is what Logs Insights filters on: `filter mailbox = "alpha"`.
    expect(blob).toMatchObject({
      mailbox: "alpha",
      MessagesIngested: 4,
      BytesIngested: 999,
      MessagesFailed: 1,
      // Skipped (too large, permanently refused) is not backlog: Backlog can return to zero.
      MessagesSkipped: 2,
      SessionDuration: 321,
      Backlog: 1,
    });
    const directive = emfDirective(blob);
    expect(directive?.Namespace).toBe("MailIngest");
    // One custom metric per name for the whole fleet, not one per mailbox (issue: $4.5k+/month).
    expect(directive?.Dimensions).toEqual([["service"]]);
  });

  it("adds a [service, mailbox] dimension set beside [service] when per-mailbox metrics are opted in", async () => {
    const h = harness((m) => report(m.id), { perMailboxMetrics: true });
    await createPoller(h.deps)(
      event(
        sqsRecord({ mailboxId: "alpha", tick: TICK }),
        sqsRecord({ mailboxId: "beta", tick: TICK }),
      ),
      ctx,
    );
    const blobs = h.output.emf();
    // Regression: the mailbox set used to replace [service], so opting in emptied the series the
    // construct's alarms read. Both sets, on every blob, and no set leaks into the next job.
    expect(blobs.map((b) => emfDirective(b)?.Dimensions)).toEqual([
      [["service"], ["service", "mailbox"]],
      [["service"], ["service", "mailbox"]],
    ]);
    expect(blobs.map((b) => b.mailbox)).toEqual(["alpha", "beta"]);
  });

  it("does not carry one job's mailbox property into the next job's metrics", async () => {
    const h = harness((m) => report(m.id));
    await createPoller(h.deps)(
      event(
        sqsRecord({ mailboxId: "alpha", tick: TICK }),
        sqsRecord({ mailboxId: "beta", tick: TICK }),
      ),
      ctx,
    );
    expect(h.output.emf().map((b) => b.mailbox)).toEqual(["alpha", "beta"]);
  });

  it("reads PER_MAILBOX_METRICS and SCHEDULE_PERIOD_SECONDS from the environment", () => {
    const deps = defaultPollerDeps({ PER_MAILBOX_METRICS: "true", SCHEDULE_PERIOD_SECONDS: "600" });
    expect(deps.perMailboxMetrics).toBe(true);
    expect(deps.schedulePeriodSeconds).toBe(600);
    const defaults = defaultPollerDeps({});
    expect(defaults.perMailboxMetrics).toBe(false);
    expect(defaults.schedulePeriodSeconds).toBe(300);
    expect(() => defaultPollerDeps({ PER_MAILBOX_METRICS: "yes" }).perMailboxMetrics).toThrow(
      /PER_MAILBOX_METRICS/,
    );
  });

  it("builds the output queue with OUTPUT_MAX_MESSAGE_BYTES as its body limit, so larger bodies go in pointer form", async () => {
    const env = {
      BUCKET_NAME: "b",
      OUTPUT_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/000000000000/out",
      OUTPUT_MAX_MESSAGE_BYTES: "262144",
    };
    expect((await defaultPollerDeps(env).adapters()).queue.maxBodyBytes).toBe(262_144);
    const { OUTPUT_MAX_MESSAGE_BYTES: _, ...unset } = env;
    expect((await defaultPollerDeps(unset).adapters()).queue.maxBodyBytes).toBe(1_048_576);
    expect(() =>
      defaultPollerDeps({ ...env, OUTPUT_MAX_MESSAGE_BYTES: "2000000" }).adapters(),
    ).toThrow(/OUTPUT_MAX_MESSAGE_BYTES must be between 1024 and 1048576/);
  });

  describe("stale scheduled jobs", () => {
    const SCHEDULED = Date.parse("2024-05-01T10:05:00.000Z");
    const scheduled = { mailboxId: "alpha", tick: TICK, scheduledAt: "2024-05-01T10:05:00.000Z" };

    it("drops a scheduled job older than one period, unrun, with a log line and a StaleJobsDropped metric", async () => {
      const h = harness((m) => report(m.id), {
        schedulePeriodSeconds: 300,
        now: () => SCHEDULED + 300_001,
      });
      const result = await createPoller(h.deps)(event(sqsRecord(scheduled)), ctx);
      expect(result.batchItemFailures).toEqual([]);
      expect(h.sessions).toEqual([]);
      expect(h.sent).toEqual([]);
      expect(metric(h, "alpha", "StaleJobsDropped")).toBe(1);
      const line = h.output
        .logs()
        .find((l) => /older than one schedule period/.test(String(l.message)));
      expect(line).toMatchObject({ level: "WARN", mailbox: "alpha", ageSeconds: 300 });
    });

    it("runs a scheduled job that is exactly one period old", async () => {
      const h = harness((m) => report(m.id), {
        schedulePeriodSeconds: 300,
        now: () => SCHEDULED + 300_000,
      });
      await createPoller(h.deps)(event(sqsRecord(scheduled)), ctx);
      expect(h.sessions).toHaveLength(1);
      expect(metric(h, "alpha", "StaleJobsDropped")).toBeUndefined();
    });

    it("keeps a continuation however old its chain's tick", async () => {
      const h = harness((m) => report(m.id), {
        schedulePeriodSeconds: 300,
        now: () => SCHEDULED + 3_600_000,
      });
      await createPoller(h.deps)(event(sqsRecord({ ...scheduled, continuation: 4 })), ctx);
      expect(h.sessions).toHaveLength(1);
    });

    it("judges a job without scheduledAt (an older dispatcher's) by its tick", async () => {
      const h = harness((m) => report(m.id), {
        schedulePeriodSeconds: 600,
        now: () => SCHEDULED + 600_001,
      });
      await createPoller(h.deps)(
        event(
          sqsRecord({ mailboxId: "alpha", tick: TICK }),
          sqsRecord({ mailboxId: "beta", tick: "20240501T1015Z" }),
        ),
        ctx,
      );
      expect(h.sessions.map((s) => s.mailbox.id)).toEqual(["beta"]);
    });
  });

  it("writes one log line for an idle poll (the EMF blob), and a summary line once something happened", async () => {
    const h = harness((m) =>
      m.id === "alpha"
        ? report(m.id, { new: 0, ingested: 0, remaining: 0, bytes: 0 })
        : report(m.id, { ingested: 2 }),
    );
    await createPoller(h.deps)(
      event(
        sqsRecord({ mailboxId: "alpha", tick: TICK }),
        sqsRecord({ mailboxId: "beta", tick: TICK }),
      ),
      ctx,
    );
    const polled = h.output.logs().filter((l) => l.message === "mailbox polled");
    expect(polled.map((l) => l.mailbox)).toEqual(["beta"]);
    // The idle poll's figures are still published, in its EMF blob.
    expect(metric(h, "alpha", "MessagesIngested")).toBe(0);
    expect(h.output.lines.filter((l) => l.includes('"alpha"'))).toHaveLength(1);
  });

  it("publishes no Backlog for a failed session, whose count of what is left is unknown", async () => {
    const h = harness((m) => report(m.id, { error: "down", errorCode: Codes.CONNECT_FAILED }));
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    expect(metric(h, "alpha", "MessagesIngested")).toBe(5);
    expect(metric(h, "alpha", "Backlog")).toBeUndefined();
  });

  it("correlates the session's log lines with mailbox, uidl and message id", async () => {
    const h = harness((m, d) => {
      d.log?.info("message ingested", { uidl: "UID-7", messageId: "<m7@example.com>" });
      return report(m.id);
    });
    await createPoller(h.deps)(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    const line = h.output.logs().find((l) => l.message === "message ingested");
    expect(line).toMatchObject({
      mailbox: "alpha",
      tick: TICK,
      uidl: "UID-7",
      messageId: "<m7@example.com>",
    });
    // Keys are removed after the job so the next record's lines do not inherit them.
    h.deps.logger.info("after the job");
    const after = h.output.logs().find((l) => l.message === "after the job");
    expect(after).toBeDefined();
    expect(after?.mailbox).toBeUndefined();
  });

  it("never writes a password, refresh token, client secret or access token to the logs", async () => {
    const h = harness((m, d) => {
      // A careless session log call must still not leak: secret-named fields are redacted.
      d.log?.error("login trace", { password: PASSWORD, accessToken: ACCESS });
      return m.id === "alpha"
        ? report(m.id, { error: "login rejected", errorCode: Codes.AUTH_FAILED })
        : report(m.id, { error: "down", errorCode: Codes.CONNECT_FAILED });
    });
    const poll = createPoller(h.deps);
    await poll(event(sqsRecord({ mailboxId: "alpha", tick: TICK })), ctx);
    await poll(event(sqsRecord({ mailboxId: "oauth", tick: TICK })), ctx);
    await poll(event(sqsRecord({ mailboxId: "beta", tick: TICK })), ctx);
    expect(h.output.logs().length).toBeGreaterThan(3);
    const all = h.output.lines.join("\n");
    for (const secret of [PASSWORD, REFRESH, CLIENT_SECRET, ACCESS])
      expect(all).not.toContain(secret);
    expect(all).toContain("login trace");
  });

  it("reads no environment until the first invocation", () => {
    const reads: PropertyKey[] = [];
    const env = new Proxy<NodeJS.ProcessEnv>(
      {},
      {
        get(_target, key) {
          reads.push(key);
          return undefined;
        },
      },
    );
    const handler = createPoller(defaultPollerDeps(env));
    expect(typeof handler).toBe("function");
    expect(reads).toEqual([]);
  });
});
