import { createHash } from "node:crypto";
import { simpleParser } from "mailparser";
import { describe, expect, it } from "vitest";
import { sampleMessages } from "../../../lambdas/demo/messages.ts";

/** True when every LF is preceded by CR and every CR followed by LF (RFC 5322 §2.3). */
function crlfOnly(data: Uint8Array): boolean {
  const text = Buffer.from(data).toString("latin1");
  return !/\r(?!\n)|(?<!\r)\n/.test(text);
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

describe("sampleMessages", () => {
  it("is about twenty CRLF messages, the same on every call, with unique UIDLs and Message-IDs", async () => {
    const samples = sampleMessages();
    expect(samples.length).toBeGreaterThanOrEqual(18);
    expect(new Set(samples.map((s) => s.uidl)).size).toBe(samples.length);
    expect(samples.every((s) => crlfOnly(s.data))).toBe(true);
    // The demo's second poll must find the same mail: every sample byte-identical on every call.
    const again = sampleMessages();
    expect(again.map((s) => sha256(s.data))).toEqual(samples.map((s) => sha256(s.data)));
    const ids = samples.map(
      (s) => /^Message-ID: (.+)\r$/m.exec(Buffer.from(s.data).toString("latin1"))?.[1],
    );
    expect(ids.every((id) => id !== undefined)).toBe(true);
    expect(new Set(ids).size).toBe(samples.length);
  });

  it("covers encoded-words, RFC 2231 names, inline images, PDFs and attached messages", async () => {
    const parsed = await Promise.all(
      sampleMessages().map((s) => simpleParser(Buffer.from(s.data))),
    );
    const bySubject = (text: string) => parsed.find((p) => p.subject?.includes(text));
    expect(bySubject("Grüße aus Zürich")?.from?.value[0]?.name).toBe("André Müller");
    expect(bySubject("Your CV")?.attachments[0]?.filename).toBe("résumé.txt");
    expect(bySubject("Invoice")?.attachments[0]?.contentType).toBe("application/pdf");
    expect(bySubject("Photo")?.attachments[0]?.cid).toBe("pixel-04@example.net");
    expect(bySubject("Fwd:")?.attachments.some((a) => a.contentType === "message/rfc822")).toBe(
      true,
    );
    expect(bySubject("Re: Lunch")?.inReplyTo).toBe("<sample-01@example.com>");
    expect(bySubject("Automatic reply")?.headers.get("auto-submitted")).toBe("auto-replied");
    expect(String(bySubject("statement is ready")?.headers.get("authentication-results"))).toMatch(
      /spf=pass.*dkim=pass.*dmarc=pass/s,
    );
  });
});
