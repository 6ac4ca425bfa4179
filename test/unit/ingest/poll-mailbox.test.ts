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

  describe("a refused login and the secret cache", () => {
    const refused = (m: MailboxConfig): MailboxReport => ({
      ...emptyReport(m.id),
      error: "mailbox box: -ERR [AUTH] Authentication failed.",
      errorCode: ErrorCode.AUTH_FAILED,
    });

    it("logs in again once with a fresh read when the secret changed while it was cached", async () => {
      const reads: boolean[] = [];
      const sent: unknown[] = [];
      const { report, outcome } = await pollMailbox(await mailbox(), deps, {
        credentials: async (_m, fresh) => {
          reads.push(fresh === true);
          return { password: fresh ? "new-pw" : "old-pw" };
        },
        run: async (m, _d, options) => {
          sent.push(options.credentials.password);
          return options.credentials.password === "new-pw"
            ? { ...emptyReport(m.id), ingested: 2 }
            : refused(m);
        },
      });
      expect(reads).toEqual([false, true]);
      expect(sent).toEqual(["old-pw", "new-pw"]);
      expect(outcome).toBe("done");
      expect(report.ingested).toBe(2);
      expect(report.warnings[0]).toMatch(/secret had changed/);
    });

    it("never sends the same refused password twice (no lockout): the refusal is reported", async () => {
      const reads: boolean[] = [];
      let sessions = 0;
      const { report, outcome } = await pollMailbox(await mailbox(), deps, {
        credentials: async (_m, fresh) => {
          reads.push(fresh === true);
          return { password: "same-pw" };
        },
        run: async (m) => {
          sessions++;
          return refused(m);
        },
      });
      expect(reads).toEqual([false, true]);
      expect(sessions).toBe(1);
      expect(outcome).toBe("auth-failed");
      expect(report.error).toMatch(/Authentication failed/);
    });

    it("reports the refusal when the fresh read itself fails", async () => {
      let sessions = 0;
      const { report, outcome } = await pollMailbox(await mailbox(), deps, {
        credentials: async (_m, fresh) => {
          if (fresh) throw new MailIngestError(ErrorCode.SECRET_UNRESOLVED, "throttled");
          return { password: "pw" };
        },
        run: async (m) => {
          sessions++;
          return refused(m);
        },
      });
      expect(sessions).toBe(1);
      expect(outcome).toBe("auth-failed");
      expect(report.errorCode).toBe(ErrorCode.AUTH_FAILED);
    });

    it.each([ErrorCode.CONNECT_FAILED, ErrorCode.IN_USE, ErrorCode.STORE_FAILED])(
      "reads nothing again after a %s failure: only a refused login means the secret may be stale",
      async (code) => {
        const reads: boolean[] = [];
        await pollMailbox(await mailbox(), deps, {
          credentials: async (_m, fresh) => {
            reads.push(fresh === true);
            return { password: "pw" };
          },
          run: async (m) => ({ ...emptyReport(m.id), error: "x", errorCode: code }),
        });
        expect(reads).toEqual([false]);
      },
    );
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
