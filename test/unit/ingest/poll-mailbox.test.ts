import { describe, expect, it } from "vitest";
import { type MailboxConfig, parseConfig } from "../../../lambdas/config/index.ts";
import { ErrorCode, MailIngestError } from "../../../lambdas/errors.ts";
import { pollMailbox } from "../../../lambdas/ingest/poll-mailbox.ts";
import { emptyReport } from "../../../lambdas/ingest/session.ts";
import type { MailboxReport, SessionDeps } from "../../../lambdas/ingest/types.ts";

async function mailbox(): Promise<MailboxConfig> {
  const config = await parseConfig(
    { mailboxes: [{ id: "box", host: "pop.example.com", username: "u", password: "pw" }] },
    "/tmp",
  );
  return config.mailboxes[0] as MailboxConfig;
}

const deps = {} as SessionDeps;

describe("pollMailbox", () => {
  it("runs the session with the resolved credentials and reports done", async () => {
    const seen: unknown[] = [];
    const { report, outcome } = await pollMailbox(await mailbox(), deps, {
      credentials: async () => ({ password: "resolved" }),
      run: async (m, _d, options) => {
        seen.push(options.credentials);
        return { ...emptyReport(m.id), ingested: 3 };
      },
    });
    expect(seen).toEqual([{ password: "resolved" }]);
    expect(report.ingested).toBe(3);
    expect(outcome).toBe("done");
  });

  it("turns a credentials failure into a report naming the mailbox once, without running the session", async () => {
    let ran = false;
    const { report, outcome } = await pollMailbox(await mailbox(), deps, {
      credentials: async () => {
        throw new MailIngestError(
          ErrorCode.OAUTH_FAILED,
          "mailbox box: token endpoint said invalid_grant",
        );
      },
      run: async (m) => {
        ran = true;
        return emptyReport(m.id);
      },
    });
    expect(ran).toBe(false);
    expect(report.error).toBe("mailbox box: token endpoint said invalid_grant");
    expect(outcome).toBe("auth-failed");
  });

  it.each<[Partial<MailboxReport>, string]>([
    [{ lockedBy: { pid: 1, host: "h", startedAt: "t" } }, "locked"],
    [{ error: "x", errorCode: ErrorCode.IN_USE }, "back-off"],
    [{ error: "x", errorCode: ErrorCode.LOGIN_DELAY }, "back-off"],
    [{ error: "x", errorCode: ErrorCode.AUTH_FAILED }, "auth-failed"],
    [{ error: "x", errorCode: ErrorCode.INVALID_CREDENTIAL }, "auth-failed"],
    [{ error: "x", errorCode: ErrorCode.CONNECT_FAILED }, "unreachable"],
    [{ error: "x", errorCode: ErrorCode.CONNECT_TIMEOUT }, "unreachable"],
    [{ error: "x", errorCode: ErrorCode.TIMEOUT }, "unreachable"],
    [{ error: "x", errorCode: ErrorCode.CONNECTION_CLOSED }, "unreachable"],
    [{ error: "x", errorCode: ErrorCode.TLS_FAILED }, "retry"],
    [{ error: "x", errorCode: ErrorCode.SYS_TEMP }, "retry"],
    [{ error: "x", errorCode: ErrorCode.STORE_FAILED }, "retry"],
    [{ error: "x" }, "retry"],
  ])("a session report %o means %s", async (fields, expected) => {
    const { outcome } = await pollMailbox(await mailbox(), deps, {
      credentials: async () => ({ password: "pw" }),
      run: async (m) => ({ ...emptyReport(m.id), ...fields }),
    });
    expect(outcome).toBe(expected);
  });
});
