import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
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

const execFileAsync = promisify(execFile);
const MODULE = fileURLToPath(new URL("./messages.ts", import.meta.url));
const REPO = path.resolve(path.dirname(MODULE), "../..");

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

describe("generateMessage", () => {
  it("is byte-identical across calls, call orders and processes, per index and seed", async () => {
    // The bench's clients and servers run in separate processes and must see the same corpus, so
    // state shared between calls (a module-level PRNG) or taken from the process (the clock,
    // Math.random, a seed chosen at import) would break it. Forward order, then reverse order with
    // the seeds interleaved, then a fresh process must all produce the same bytes.
    const keys = Array.from({ length: 60 }, (_, i) => ({ i, seed: 1 + (i % 3) }));
    const forward = keys.map(({ i, seed }) => generateMessage(i, { seed }));
    const backward = [...keys].reverse().map(({ i, seed }) => generateMessage(i, { seed }));
    backward.reverse();
    expect(keys.filter((_, k) => !backward[k]?.equals(forward[k] as Buffer))).toEqual([]);

    const script = `const { generateMessage } = await import(${JSON.stringify(MODULE)});
      const { createHash } = await import("node:crypto");
      const keys = ${JSON.stringify(keys)};
      console.log(JSON.stringify(keys.map(({ i, seed }) =>
        createHash("sha256").update(generateMessage(i, { seed })).digest("hex"))));`;
    const { stdout } = await execFileAsync(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { cwd: REPO },
    );
    expect(JSON.parse(stdout)).toEqual(forward.map(sha256));
  });

  it("gives every index and seed its own Message-ID and its own body", () => {
    // Message-IDs are what consumers dedupe on; distinct bodies show the PRNG is seeded from both
    // the index and the seed, not just from the one that also appears in the headers.
    const messages = [1, 2].flatMap((seed) =>
      Array.from({ length: 400 }, (_, i) => generateMessage(i, { seed, withAttachment: false })),
    );
    const ids = messages.map((m) => /^Message-ID: (.+)\r$/m.exec(m.toString("latin1"))?.[1]);
    expect(ids.every((id) => id !== undefined)).toBe(true);
    expect(new Set(ids).size).toBe(messages.length);
    const bodies = messages.map((m) => sha256(m.subarray(m.indexOf("\r\n\r\n"))));
    expect(new Set(bodies).size).toBe(messages.length);
  });

  it("uses CRLF only and attaches a file to about 40% of messages", () => {
    const messages = Array.from({ length: 400 }, (_, i) => generateMessage(i));
    expect(messages.every(crlfOnly)).toBe(true);
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
