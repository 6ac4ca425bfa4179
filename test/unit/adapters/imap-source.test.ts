import { describe, expect, it } from "vitest";
import {
  gapRanges,
  MAX_RECHECK,
  resolveFolders,
  restrictOAuthMechanism,
} from "../../../lambdas/adapters/imap-source.ts";
import type { MailboxConfig } from "../../../lambdas/config/index.ts";
import { ErrorCode } from "../../../lambdas/errors.ts";
import { imapKey, messageId, parseImapKey } from "../../../lambdas/ingest/keys.ts";

const known = (...uids: number[]) => new Map(uids.map((u) => [u, true]));

describe("gapRanges", () => {
  it("names the UIDs below the highest known that state does not know, as ranges", () => {
    expect(gapRanges(known(1, 2, 3), 3)).toBe("");
    expect(gapRanges(known(3, 4, 8), 8)).toBe("1:2,5:7");
    expect(gapRanges(known(1, 3, 5), 5)).toBe("2,4");
    expect(gapRanges(new Map(), 0)).toBe("");
  });

  it("keeps at most MAX_RECHECK ranges, the newest, however fragmented the folder", () => {
    const uids = Array.from({ length: 3 * MAX_RECHECK }, (_, i) => 2 * i + 2);
    const set = gapRanges(known(...uids), uids.at(-1) as number).split(",");
    expect(set).toHaveLength(MAX_RECHECK);
    expect(set.at(-1)).toBe(String(6 * MAX_RECHECK - 1));
  });
});

describe("IMAP keys", () => {
  it("round-trip folder, UIDVALIDITY and UID, even with a separator-like folder name", () => {
    const key = imapKey("Work/2024 Q1", 1_700_000_000, 42);
    expect(parseImapKey(key)).toEqual({
      folder: "Work/2024 Q1",
      uidValidity: 1_700_000_000,
      uid: 42,
    });
    expect(parseImapKey("0000000150000001")).toBeUndefined();
    expect(parseImapKey("a\nb\n0")).toBeUndefined();
  });

  it("the message id is the sha256 over mailbox, folder, UIDVALIDITY and UID", () => {
    expect(messageId("box", imapKey("INBOX", 7, 9))).not.toBe(
      messageId("box", imapKey("INBOX", 8, 9)),
    );
    expect(messageId("box", imapKey("INBOX", 7, 9))).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe("resolveFolders", () => {
  const mailbox = (folders: string[]) => ({ id: "m", folders }) as unknown as MailboxConfig;
  const listed = [
    { path: "INBOX", flags: new Set<string>() },
    { path: "Spam", specialUse: "\\Junk", flags: new Set(["\\Junk"]) },
    { path: "Entwürfe", flags: new Set<string>() },
  ] as never;

  it("maps special-use attributes, INBOX in any case, and names as imapflow decodes them", () => {
    expect(resolveFolders(mailbox(["inbox", "\\Junk", "Entwürfe"]), listed)).toEqual([
      { configured: "inbox", path: "INBOX" },
      { configured: "\\Junk", path: "Spam", specialUse: "\\Junk" },
      { configured: "Entwürfe", path: "Entwürfe" },
    ]);
  });

  it("a folder that does not exist is an error naming it", () => {
    expect(() => resolveFolders(mailbox(["INBOX", "\\Archive"]), listed)).toThrow(
      expect.objectContaining({
        code: ErrorCode.FOLDER_NOT_FOUND,
        message: expect.stringContaining('"\\\\Archive"'),
      }),
    );
  });
});

describe("restrictOAuthMechanism", () => {
  const caps = (...names: string[]) => new Map<string, unknown>(names.map((n) => [n, true]));

  it("leaves only the configured OAuth2 mechanism, so imapflow cannot prefer the other", () => {
    const both = caps("IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER");
    restrictOAuthMechanism(both, "xoauth2");
    expect([...both.keys()]).toEqual(["IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2"]);
    const again = caps("AUTH=XOAUTH2", "AUTH=OAUTHBEARER");
    restrictOAuthMechanism(again, "oauthbearer");
    expect([...again.keys()]).toEqual(["AUTH=OAUTHBEARER"]);
  });

  it("refuses, naming what the server offers, rather than fall back to the other mechanism", () => {
    expect(() => restrictOAuthMechanism(caps("AUTH=PLAIN", "AUTH=XOAUTH2"), "oauthbearer")).toThrow(
      expect.objectContaining({
        code: ErrorCode.AUTH_UNSUPPORTED,
        message: expect.stringContaining("AUTH=PLAIN AUTH=XOAUTH2"),
      }),
    );
    expect(() => restrictOAuthMechanism(caps("AUTH=OAUTHBEARER"), "xoauth2")).toThrow(
      expect.objectContaining({ code: ErrorCode.AUTH_UNSUPPORTED }),
    );
  });
});
