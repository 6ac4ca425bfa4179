import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { isMailIngestError } from "../../../lambdas/errors.ts";
import {
  buildQueueMessage,
  type ParsedMessage,
  QUEUE_BODY_MARGIN_BYTES,
  type QueueMessageInput,
  type QueueMessageV2,
  toPointer,
  toQueueBody,
} from "../../../lambdas/message/schema.ts";
import { emptyHeaders, parseMessage } from "../../../lambdas/mime/parse.ts";
import { MemoryObjectStore } from "../mime/memory-store.ts";
import { multipartMessage, sha256 } from "../mime/messages.ts";
import { schemaErrors, validateQueueBody } from "../mime/validator.ts";

/** SQS's largest message body (bytes). */
const SQS_MAX_BODY = 1024 * 1024;
const ID = "0123456789abcdef0123456789abcdef";
const META = { key: `meta/support/${ID}.json`, uri: `s3://mail-bucket/meta/support/${ID}.json` };

function input(parsed: ParsedMessage): QueueMessageInput {
  return {
    id: ID,
    mailbox: "support",
    source: { protocol: "pop3", uidl: "UID-0001" },
    ingestedAt: new Date("2024-05-01T12:00:00Z"),
    size: 1234,
    sha256: sha256("raw"),
    raw: {
      key: `raw/support/${ID}.eml`,
      uri: `s3://mail-bucket/raw/support/${ID}.eml`,
      bucket: "mail-bucket",
    },
    parsed,
  };
}

/** A message using every optional field of the full form. */
function maximal(): QueueMessageV2 {
  return buildQueueMessage(
    input({
      headers: {
        ...emptyHeaders(),
        messageId: "<m@example.com>",
        date: "2024-05-01T11:59:00.000Z",
        subject: "hi",
        from: [{ name: "A", address: "a@example.com" }],
        references: ["<r@example.com>"],
        listId: "list.example.com",
        autoSubmitted: "auto-replied",
        deliveredTo: ["support@example.com"],
      },
      text: { size: 2, charset: "utf-8", content: "hi" },
      html: { size: 70_000, charset: "iso-8859-1", ref: `parts/support/${ID}/body.html` },
      textPreview: "hi",
      textReply: "hi",
      attachments: [
        {
          index: 0,
          filename: null,
          contentType: "image/png",
          size: 3,
          sha256: sha256("png"),
          contentId: "cid1@example.com",
          disposition: "inline",
          ref: `parts/support/${ID}/attachments/0000-attachment.bin`,
        },
      ],
      authResults: { spf: "pass", dkim: "fail" },
      security: { signed: "smime", encrypted: "pgp" },
      spam: { score: -0.5, flag: false, scl: -1 },
      headerList: [{ name: "Subject", value: "hi" }],
      headerListTruncated: true,
      parseError: "MIME_LIMIT: too many parts",
      truncated: true,
    }),
  );
}

describe("queue message schema v2", () => {
  it("accepts a built message with every optional field, and the TS shape matches the schema", () => {
    const message = maximal();
    expect(validateQueueBody(message), schemaErrors()).toBe(true);
    expect(Object.keys(message).sort()).toEqual(
      [
        "schemaVersion",
        "id",
        "mailbox",
        "source",
        "ingestedAt",
        "size",
        "sha256",
        "raw",
        "headers",
        "text",
        "html",
        "textPreview",
        "textReply",
        "attachments",
        "authResults",
        "security",
        "spam",
        "headerList",
        "headerListTruncated",
        "parseError",
        "truncated",
      ].sort(),
    );
  });

  it("carries an IMAP source with exactly the schema's fields, in the full and the pointer form", () => {
    const origin = {
      protocol: "imap" as const,
      folder: "INBOX/Invoices",
      uidValidity: 1700000000,
      uid: 42,
    };
    // Anything else the source's object carries stays out of the message.
    const carried = { ...origin, internal: "x" };
    const message = buildQueueMessage({
      ...input({ headers: emptyHeaders(), attachments: [], headerList: [] }),
      source: carried,
    });
    expect(message.source).toEqual(origin);
    expect(validateQueueBody(message), schemaErrors()).toBe(true);
    const pointer = toPointer(message, META);
    expect(pointer.source).toEqual(origin);
    expect(validateQueueBody(pointer), schemaErrors()).toBe(true);
  });

  it("accepts a minimal built message without undefined-valued keys", () => {
    const message = buildQueueMessage(
      input({ headers: emptyHeaders(), attachments: [], headerList: [] }),
    );
    expect(validateQueueBody(message), schemaErrors()).toBe(true);
    expect(Object.values(message)).not.toContain(undefined);
    expect(message.ingestedAt).toBe("2024-05-01T12:00:00.000Z");
  });

  it.each<[string, (m: QueueMessageV2) => unknown]>([
    ["an upper-case sha256", (m) => ({ ...m, sha256: "A".repeat(64) })],
    ["a missing headers object", ({ headers: _, ...m }) => m],
    ["an unknown top-level field", (m) => ({ ...m, extra: 1 })],
    ["a v1 schemaVersion", (m) => ({ ...m, schemaVersion: 1 })],
    ["a v1 top-level uidl", ({ source: _, ...m }) => ({ ...m, uidl: "UID-0001" })],
    ["a POP3 source without uidl", (m) => ({ ...m, source: { protocol: "pop3" } })],
    [
      "an IMAP source with a zero UID",
      (m) => ({ ...m, source: { protocol: "imap", folder: "INBOX", uidValidity: 7, uid: 0 } }),
    ],
    [
      "a source mixing both protocols",
      (m) => ({ ...m, source: { protocol: "pop3", uidl: "u", folder: "INBOX" } }),
    ],
    [
      "an address without address",
      (m) => ({ ...m, headers: { ...m.headers, from: [{ name: "x" }] } }),
    ],
    ["a pointer flag on the full form", (m) => ({ ...m, pointer: true })],
    ["an http raw uri", (m) => ({ ...m, raw: { ...m.raw, uri: "http://x/y" } })],
    [
      "a bad disposition",
      (m) => ({ ...m, attachments: m.attachments.map((a) => ({ ...a, disposition: "evil" })) }),
    ],
    ["a 2 KB textPreview", (m) => ({ ...m, textPreview: "x".repeat(2048) })],
    ["a non-ISO date", (m) => ({ ...m, headers: { ...m.headers, date: "Tue, 1 Jul 2003" } })],
    ["an unknown auth result", (m) => ({ ...m, authResults: { spf: "maybe" } })],
    ["a body with both content and ref", (m) => ({ ...m, text: { ...m.text, ref: "k" } })],
    ["a body with neither content nor ref", (m) => ({ ...m, text: { size: 2 } })],
    ["a v1 body reference", (m) => ({ ...m, text: { ref: "k", size: 2, extra: 1 } })],
    [
      "inline content over 64 KiB",
      (m) => ({ ...m, text: { size: 70_000, content: "x".repeat(65_537) } }),
    ],
    ["a 17 KB textReply", (m) => ({ ...m, textReply: "x".repeat(17_000) })],
    ["an empty textReply", (m) => ({ ...m, textReply: "" })],
    ["an unknown security kind", (m) => ({ ...m, security: { signed: "dkim" } })],
    ["an SCL of 10", (m) => ({ ...m, spam: { scl: 10 } })],
    ["a string spam score", (m) => ({ ...m, spam: { score: "7.3" } })],
    ["a missing headerList", ({ headerList: _, ...m }) => m],
    ["a header without value", (m) => ({ ...m, headerList: [{ name: "X" }] })],
    ["headerListTruncated false", (m) => ({ ...m, headerListTruncated: false })],
    [
      "headers without deliveredTo",
      (m) => ({ ...m, headers: { ...m.headers, deliveredTo: undefined } }),
    ],
  ])("rejects a message with %s", (_name, breakIt) => {
    const message = maximal();
    expect(validateQueueBody(message)).toBe(true);
    expect(validateQueueBody(breakIt(message))).toBe(false);
  });

  it("sends the full form when it fits under the limit less the margin", () => {
    const message = maximal();
    const body = toQueueBody(message, SQS_MAX_BODY, META);
    expect(JSON.parse(body)).toEqual(message);
  });

  it("falls back to the pointer form at exactly the margin boundary", () => {
    const message = maximal();
    const size = Buffer.byteLength(JSON.stringify(message));
    expect(
      JSON.parse(toQueueBody(message, size + QUEUE_BODY_MARGIN_BYTES, META)).pointer,
    ).toBeUndefined();
    expect(JSON.parse(toQueueBody(message, size + QUEUE_BODY_MARGIN_BYTES - 1, META)).pointer).toBe(
      true,
    );
  });

  it("sends the schema-valid pointer form for a parsed message with 5000 attachments", async () => {
    const parts = Array.from({ length: 5000 }, (_, i) => ({
      headers: [
        "Content-Type: application/pdf",
        `Content-Disposition: attachment; filename="invoice-${i}-with-a-fairly-long-name.pdf"`,
      ],
      body: `attachment ${i}`,
    }));
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(
      Readable.from([multipartMessage(parts)]),
      store,
      `parts/support/${ID}/`,
      { maxParts: 6000, maxAttachments: 6000 },
    );
    expect(parsed.parseError).toBeUndefined();
    expect(parsed.attachments).toHaveLength(5000);
    const message = buildQueueMessage(input(parsed));
    expect(validateQueueBody(message), schemaErrors()).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(message))).toBeGreaterThan(SQS_MAX_BODY);

    const body = toQueueBody(message, SQS_MAX_BODY, META);
    expect(Buffer.byteLength(body)).toBeLessThan(SQS_MAX_BODY - QUEUE_BODY_MARGIN_BYTES);
    const pointer: unknown = JSON.parse(body);
    expect(validateQueueBody(pointer), schemaErrors()).toBe(true);
    expect(pointer).toEqual({
      schemaVersion: 2,
      id: ID,
      mailbox: "support",
      source: { protocol: "pop3", uidl: "UID-0001" },
      ingestedAt: "2024-05-01T12:00:00.000Z",
      size: 1234,
      sha256: sha256("raw"),
      raw: message.raw,
      pointer: true,
      meta: META,
    });
  });

  it("rejects a pointer form carrying full-form fields", () => {
    const pointer = toPointer(maximal(), META);
    expect(validateQueueBody(pointer), schemaErrors()).toBe(true);
    expect(validateQueueBody({ ...pointer, attachments: [] })).toBe(false);
    expect(validateQueueBody({ ...pointer, meta: { key: META.key } })).toBe(false);
  });

  it("throws MESSAGE_TOO_LARGE when even the pointer exceeds the limit", () => {
    let error: unknown;
    try {
      toQueueBody(maximal(), 0, META);
    } catch (err) {
      error = err;
    }
    expect(isMailIngestError(error, "MESSAGE_TOO_LARGE")).toBe(true);
  });
});
