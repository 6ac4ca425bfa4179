import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../../lambdas/config/index.ts";

const base = {
  id: "intake",
  host: "imap.example.com",
  username: "intake@example.com",
  password: { env: "INTAKE_PASSWORD" },
};

async function mailboxOf(fields: Record<string, unknown>) {
  const config = await parseConfig({ mailboxes: [{ ...base, ...fields }] }, "/base");
  return config.mailboxes[0];
}

async function problem(fields: Record<string, unknown>): Promise<ConfigError> {
  try {
    await mailboxOf(fields);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("config was accepted");
}

describe("IMAP mailbox config", () => {
  it("defaults: POP3 with no folders; IMAP reads INBOX, changes nothing on the server, port 993 or 143", async () => {
    expect(await mailboxOf({})).toMatchObject({ protocol: "pop3", port: 995, folders: [] });
    expect(await mailboxOf({ protocol: "imap" })).toMatchObject({
      protocol: "imap",
      port: 993,
      folders: ["INBOX"],
      afterIngest: "none",
      delete: "never",
    });
    expect(await mailboxOf({ protocol: "imap", tls: "starttls" })).toMatchObject({ port: 143 });
    expect(await mailboxOf({ protocol: "imap", tls: "none" })).toMatchObject({ port: 143 });
  });

  it("an afterIngest action marks messages done after ingest; its form is kept for the source", async () => {
    expect(await mailboxOf({ protocol: "imap", afterIngest: "markSeen" })).toMatchObject({
      afterIngest: "markSeen",
      delete: "after-ingest",
    });
    expect(
      await mailboxOf({ protocol: "imap", afterIngest: { moveTo: "Processed" } }),
    ).toMatchObject({ afterIngest: { moveTo: "Processed", create: false } });
    expect(await mailboxOf({ protocol: "imap", afterIngest: { flag: "$Ingested" } })).toMatchObject(
      { afterIngest: { flag: "$Ingested" } },
    );
  });

  it("delete on an IMAP mailbox keeps its POP3 meaning: the action is delete", async () => {
    expect(await mailboxOf({ protocol: "imap", delete: { afterDays: 3 } })).toMatchObject({
      afterIngest: "delete",
      delete: { afterDays: 3 },
    });
  });

  it("rejects delete together with afterIngest, naming afterIngest", async () => {
    const err = await problem({
      protocol: "imap",
      delete: "after-ingest",
      afterIngest: "markSeen",
    });
    expect(err.field).toBe("mailboxes[0].afterIngest");
    expect(err.message).toMatch(/together with "delete"/);
  });

  it("rejects IMAP-only fields on a POP3 mailbox", async () => {
    expect((await problem({ folders: ["INBOX"] })).field).toBe("mailboxes[0].folders");
    expect((await problem({ afterIngest: "markSeen" })).field).toBe("mailboxes[0].afterIngest");
  });

  it("rejects a flag that is not a keyword atom, an unknown action, and bad folder lists", async () => {
    for (const flag of ["\\Seen", "two words", "a(b"]) {
      expect((await problem({ protocol: "imap", afterIngest: { flag } })).field).toBe(
        "mailboxes[0].afterIngest.flag",
      );
    }
    expect((await problem({ protocol: "imap", afterIngest: "expunge" })).field).toBe(
      "mailboxes[0].afterIngest",
    );
    expect((await problem({ protocol: "imap", afterIngest: { moveTo: "X", y: 1 } })).field).toBe(
      "mailboxes[0].afterIngest.y",
    );
    for (const folders of [[], ["INBOX", "INBOX"], [""], "INBOX", ["a\r\nb"]]) {
      expect((await problem({ protocol: "imap", folders })).field).toBe("mailboxes[0].folders");
    }
  });

  it("rejects POP3-only auth methods for IMAP", async () => {
    expect((await problem({ protocol: "imap", auth: "apop" })).field).toBe("mailboxes[0].auth");
  });
});
