import { createHash } from "node:crypto";
import { simpleParser } from "mailparser";
import { describe, expect, it } from "vitest";
import {
  generateLargeMessage,
  generateMessage,
  largeMessageAttachments,
  largeMessageSize,
} from "./messages.ts";

/** True when every LF is preceded by CR and every CR followed by LF (RFC 5322 §2.3). */
function crlfOnly(data: Uint8Array): boolean {
  const text = Buffer.from(data).toString("latin1");
  return !/\r(?!\n)|(?<!\r)\n/.test(text);
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

describe("generateMessage", () => {
  it("is deterministic per index and seed, and varies with either", () => {
    expect(sha256(generateMessage(42))).toBe(sha256(generateMessage(42)));
    expect(sha256(generateMessage(42))).not.toBe(sha256(generateMessage(43)));
    expect(sha256(generateMessage(42, { seed: 2 }))).not.toBe(sha256(generateMessage(42)));
  });

  it("uses CRLF only, unique Message-IDs, and attaches a file to about 40% of messages", () => {
    const messages = Array.from({ length: 400 }, (_, i) => generateMessage(i));
    expect(messages.every(crlfOnly)).toBe(true);
    const ids = messages.map((m) => /^Message-ID: (.+)$/m.exec(m.toString("latin1"))?.[1]);
    expect(new Set(ids).size).toBe(messages.length);
    const withAttachment = messages.filter((m) => m.includes("Content-Disposition: attachment"));
    expect(withAttachment.length / messages.length).toBeGreaterThan(0.3);
    expect(withAttachment.length / messages.length).toBeLessThan(0.5);
  });

  it("sizes the attachment by attachmentBytes and forces it with withAttachment", async () => {
    const forced = await simpleParser(
      generateMessage(5, { attachmentBytes: 12_345, withAttachment: true }),
    );
    expect(forced.attachments.map((a) => a.size)).toEqual([12_345]);
    const none = await simpleParser(generateMessage(5, { withAttachment: false }));
    expect(none.attachments).toEqual([]);
  });

  it("puts dot-leading lines in every 7th message, for byte-stuffing coverage", () => {
    expect(generateMessage(14).includes("\r\n.\r\n")).toBe(true);
    expect(generateMessage(15).includes("\r\n.")).toBe(false);
  });
});

describe("generateLargeMessage", () => {
  it("streams in small chunks exactly largeMessageSize bytes whose attachments hash as predicted", async () => {
    const total = 3 * 1024 * 1024;
    const chunks: Buffer[] = [];
    for await (const chunk of generateLargeMessage(total, 3)) chunks.push(chunk as Buffer);
    const message = Buffer.concat(chunks);
    expect(message.length).toBe(largeMessageSize(total, 3));
    expect(Math.abs(message.length - total)).toBeLessThan(total * 0.01);
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThan(256 * 1024);
    expect(crlfOnly(message)).toBe(true);

    const parsed = await simpleParser(message);
    const expected = largeMessageAttachments(total, 3);
    expect(
      parsed.attachments.map((a) => ({
        filename: a.filename,
        size: a.size,
        sha256: sha256(a.content),
      })),
    ).toEqual(expected);
    // Distinct contents: a generator repeating one attachment would still pass the hash check.
    expect(new Set(expected.map((a) => a.sha256)).size).toBe(3);
  });
});
