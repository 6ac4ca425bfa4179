/**
 * Attachments inside attachments (issue 13): forwarded messages, bounces, TNEF and S/MIME, each
 * extracted file's stored bytes checked by sha256 against the original, every message validated
 * against the v2 JSON Schema.
 */
import { createReadStream, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isMailIngestError } from "../../../lambdas/errors.ts";
import { buildQueueMessage } from "../../../lambdas/message/schema.ts";
import { type ParseLimits, parseMessage } from "../../../lambdas/mime/parse.ts";
import type { AttachmentMeta, ParsedMessage } from "../../../lambdas/mime/parsed.ts";
import { CORPUS_DIR } from "../../helpers/corpus.ts";
import { makeSigner, SIGN, type SmimeSigner } from "../../helpers/smime.ts";
import { MemoryObjectStore, type MemoryObjectStore as Store } from "./memory-store.ts";
import { base64Lines, CRLF, countingSource, multipartMessage, pieces, sha256 } from "./messages.ts";
import { tnefStream } from "./tnef-writer.ts";
import { schemaErrors, validateQueueBody } from "./validator.ts";

const PREFIX = "parts/docs/0123456789abcdef0123456789abcdef/";
const WINMAIL = readFileSync(new URL("../../fixtures/tnef/attachments.dat", import.meta.url));
/** Digests from Debian's tnef 1.4.18 (see test/fixtures/tnef/README.md). */
const WINMAIL_FILES = [
  ["zappa_av1.jpg", "bea844f30e0fcc20fad419a0d11032a6465da93c1da185a1196949955994409a"],
  ["bookmark.htm", "1e08d6e23c75ff80ac992eebc24c2943c7843b7dfee235966b37de5eb4362599"],
] as const;
const WINMAIL_RTF = "5dcd1bdee036cc1c7639bca7f7e96355d80a18f9e366b3be672a3112019d4356";

/** Parses `raw` in 1000-byte pieces, checks every stored entry and the v2 schema. */
async function parseNested(
  raw: Buffer,
  limits?: Partial<ParseLimits>,
  store: Store = new MemoryObjectStore(),
): Promise<{ parsed: ParsedMessage; store: Store }> {
  const source = countingSource(() => pieces(raw, 1000));
  const parsed = await parseMessage(source.stream, store, PREFIX, limits);
  expect(source.ended()).toBe(true);
  checkEntries(parsed, store);
  return { parsed, store };
}

/** Every entry's stored bytes hash to its sha256; indexes are positions; containers come first. */
function checkEntries(parsed: ParsedMessage, store: Store): void {
  parsed.attachments.forEach((entry, position) => {
    expect(entry.index).toBe(position);
    const stored = store.objects.get(entry.ref);
    expect(stored?.sha256, entry.ref).toBe(entry.sha256);
    expect(stored?.size).toBe(entry.size);
    if (entry.extractedFrom !== undefined) {
      expect(entry.extractedFrom.index).toBeLessThan(entry.index);
    }
  });
  const message = buildQueueMessage({
    id: "0123456789abcdef0123456789abcdef",
    mailbox: "docs",
    source: { protocol: "pop3", uidl: "u1" },
    ingestedAt: new Date(),
    size: 1,
    sha256: sha256(""),
    raw: { key: "raw/docs/x.eml", uri: "file:///tmp/raw/docs/x.eml" },
    parsed,
  });
  expect(validateQueueBody(message), schemaErrors()).toBe(true);
}

function bytesOf(store: Store, entry: AttachmentMeta | undefined): Buffer {
  const bytes = entry === undefined ? undefined : store.objects.get(entry.ref)?.bytes;
  if (bytes === undefined) throw new Error("entry not stored");
  return bytes;
}

/** A fake PDF with enough binary content that a transfer-decoding slip changes its digest. */
function pdf(seed: number, size = 5000): Buffer {
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = (i * 31 + seed * 7) & 0xff;
  return Buffer.concat([Buffer.from("%PDF-1.7\n"), body, Buffer.from("\n%%EOF\n")]);
}

/** An inner message (what a forward or a bounce carries) with a text part and a PDF. */
function innerMessage(subject: string, file: Buffer, name = "invoice.pdf"): string {
  return (
    multipartMessage(
      [
        {
          headers: ["Content-Type: text/plain"],
          body: "Inner text that must not join the outer body.",
        },
        {
          headers: [
            `Content-Type: application/pdf; name="${name}"`,
            "Content-Transfer-Encoding: base64",
            `Content-Disposition: attachment; filename="${name}"`,
          ],
          body: base64Lines(file),
        },
      ],
      [],
    )
      .toString("latin1")
      // Its own boundary: the outer message uses multipartMessage's default one.
      .replaceAll("=_test_boundary_7f3a", "=_inner_boundary_c41d")
      .replace("Subject: test message", `Subject: ${subject}`)
      .replace("Message-ID: <test@example.com>", "Message-ID: <inner@example.com>")
      .replace("From: Sender <sender@example.com>", "From: Supplier <billing@supplier.example>")
  );
}

function withWrapper(parts: Parameters<typeof multipartMessage>[0]): Buffer {
  return multipartMessage(parts);
}

describe("message/rfc822: forwarded messages", () => {
  it("lists a forwarded .eml then the PDF inside it, byte-exact, with the inner headers", async () => {
    const invoice = pdf(1);
    const inner = Buffer.from(innerMessage("Invoice 42", invoice), "latin1");
    const raw = withWrapper([
      { headers: ["Content-Type: text/plain"], body: "FYI, see the forwarded invoice." },
      {
        headers: [
          "Content-Type: message/rfc822",
          'Content-Disposition: attachment; filename="Invoice 42.eml"',
        ],
        body: inner,
      },
    ]);
    const { parsed, store } = await parseNested(raw);
    expect(parsed.attachments).toHaveLength(2);
    const [eml, file] = parsed.attachments;
    expect(eml).toMatchObject({
      index: 0,
      filename: "Invoice 42.eml",
      contentType: "message/rfc822",
      message: {
        subject: "Invoice 42",
        from: [{ name: "Supplier", address: "billing@supplier.example" }],
        date: "2003-07-01T08:52:37.000Z",
        messageId: "<inner@example.com>",
      },
    });
    expect(eml?.ref).toBe(`${PREFIX}attachments/0000-Invoice_42.eml`);
    expect(eml?.extractedFrom).toBeUndefined();
    // The .eml is the inner message as it was sent (mailsplit keeps the part's own CRLF).
    expect(sha256(bytesOf(store, eml))).toBe(sha256(inner));
    expect(file).toMatchObject({
      index: 1,
      filename: "invoice.pdf",
      contentType: "application/pdf",
      extractedFrom: { index: 0, kind: "message/rfc822" },
    });
    expect(sha256(bytesOf(store, file))).toBe(sha256(invoice));
    expect(parsed.truncated).toBeUndefined();
  });

  it("opens an inline-disposition forward too, and keeps its text out of the outer body", async () => {
    const invoice = pdf(2);
    const raw = withWrapper([
      { headers: ["Content-Type: text/plain"], body: "Outer text." },
      {
        headers: ["Content-Type: message/rfc822", "Content-Disposition: inline"],
        body: innerMessage("Inline forward", invoice),
      },
    ]);
    const { parsed, store } = await parseNested(raw);
    expect(parsed.attachments.map((a) => a.contentType)).toEqual([
      "message/rfc822",
      "application/pdf",
    ]);
    expect(parsed.attachments[0]?.ref).toBe(`${PREFIX}attachments/0000-message.eml`);
    expect(sha256(bytesOf(store, parsed.attachments[1]))).toBe(sha256(invoice));
    // A small body is carried inline (schema v2).
    const text = parsed.text?.content ?? "";
    expect(text).toContain("Outer text.");
    expect(text).not.toContain("Inner text");
  });

  it("does not buffer an inner message's text: it counts against no text limit", async () => {
    const inner = innerMessage("Long text", pdf(9)).replace(
      "Inner text that must not join the outer body.",
      "x".repeat(5000),
    );
    const raw = withWrapper([
      { headers: ["Content-Type: text/plain"], body: "short" },
      { headers: ["Content-Type: message/rfc822"], body: inner },
    ]);
    // 5000 inner text bytes against a 1000-byte text cap: kept, they would trip it.
    const { parsed } = await parseNested(raw, { maxTextBytes: 1000 });
    expect(parsed.truncated).toBeUndefined();
    expect(parsed.attachments[0]?.truncated).toBeUndefined();
    expect(parsed.attachments).toHaveLength(2);
  });

  it("keeps document order: a container's contents come before the next outer attachment", async () => {
    const raw = withWrapper([
      { headers: ["Content-Type: application/octet-stream; name=a.bin"], body: "A" },
      { headers: ["Content-Type: message/rfc822"], body: innerMessage("one", pdf(3), "one.pdf") },
      { headers: ["Content-Type: application/octet-stream; name=b.bin"], body: "B" },
      { headers: ["Content-Type: message/rfc822"], body: innerMessage("two", pdf(4), "two.pdf") },
    ]);
    const { parsed } = await parseNested(raw);
    expect(
      parsed.attachments.map((a) => [a.filename ?? a.contentType, a.extractedFrom?.index]),
    ).toEqual([
      ["a.bin", undefined],
      ["message/rfc822", undefined],
      ["one.pdf", 1],
      ["b.bin", undefined],
      ["message/rfc822", undefined],
      ["two.pdf", 4],
    ]);
  });

  it("extracts the PDF from the real forwarded message of the mikel-mail corpus", async () => {
    const file = `${CORPUS_DIR}/attachment_emails/attachment_message_rfc822.eml`;
    const raw = readFileSync(file);
    // The PDF's bytes, decoded here from the fixture's base64 block independently of the parser.
    const text = raw.toString("latin1");
    const start = text.indexOf("\n", text.indexOf('filename="broken.pdf"')) + 1;
    const block = text.slice(start, text.indexOf("------=_Part", start));
    const expected = Buffer.from(block.replace(/\s+/g, ""), "base64");
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(createReadStream(file), store, PREFIX);
    checkEntries(parsed, store);
    const [eml, pdfEntry] = parsed.attachments;
    expect(eml?.message?.subject).toBe("Another PDF");
    expect(pdfEntry?.extractedFrom).toEqual({ index: 0, kind: "message/rfc822" });
    expect(pdfEntry?.size).toBe(expected.length);
    expect(pdfEntry?.sha256).toBe(sha256(expected));
  });
});

describe("message/rfc822: bounces", () => {
  it("lists a bounce's original (multipart/report) and the attachment it carried", async () => {
    const original = pdf(5);
    const boundary = "report_b";
    const raw = Buffer.from(
      [
        "From: MAILER-DAEMON@mx.example",
        "To: sender@example.com",
        "Subject: Undelivered Mail Returned to Sender",
        "MIME-Version: 1.0",
        `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
        "",
        `--${boundary}`,
        "Content-Type: text/plain",
        "",
        "I'm sorry to have to inform you that your message could not be delivered.",
        `--${boundary}`,
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example",
        "",
        "Final-Recipient: rfc822; nobody@example.net",
        "Action: failed",
        "Status: 5.1.1",
        `--${boundary}`,
        "Content-Type: message/rfc822",
        "",
        innerMessage("Quarterly report", original, "report.pdf"),
        `--${boundary}--`,
        "",
      ].join(CRLF),
      "latin1",
    );
    const { parsed, store } = await parseNested(raw);
    expect(parsed.attachments).toHaveLength(2);
    expect(parsed.attachments[0]).toMatchObject({
      filename: null,
      contentType: "message/rfc822",
      message: { subject: "Quarterly report", messageId: "<inner@example.com>" },
    });
    expect(parsed.attachments[0]?.ref).toBe(`${PREFIX}attachments/0000-message.eml`);
    expect(parsed.attachments[1]?.extractedFrom).toEqual({ index: 0, kind: "message/rfc822" });
    expect(sha256(bytesOf(store, parsed.attachments[1]))).toBe(sha256(original));
  });

  it("reads the original's headers from a real bounce of the mikel-mail corpus", async () => {
    const file = `${CORPUS_DIR}/multipart_report_emails/multi_address_bounce1.eml`;
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(createReadStream(file), store, PREFIX);
    checkEntries(parsed, store);
    expect(parsed.attachments[0]?.message).toMatchObject({
      subject: "Test of bounce email",
      messageId: "<118707422.15521266992174819.JavaMail.root@lvmail01>",
    });
  });
});

function tnefMessage(tnef: Buffer, name = "winmail.dat", type = "application/ms-tnef"): Buffer {
  return withWrapper([
    { headers: ["Content-Type: text/plain"], body: "See attached." },
    {
      headers: [
        `Content-Type: ${type}; name="${name}"`,
        "Content-Transfer-Encoding: base64",
        `Content-Disposition: attachment; filename="${name}"`,
      ],
      body: base64Lines(tnef),
    },
  ]);
}

describe("TNEF (winmail.dat)", () => {
  it("extracts the files and the RTF body of a real Outlook winmail.dat", async () => {
    const { parsed, store } = await parseNested(tnefMessage(WINMAIL));
    const [container, ...inside] = parsed.attachments;
    expect(container).toMatchObject({
      index: 0,
      filename: "winmail.dat",
      contentType: "application/ms-tnef",
    });
    expect(container?.extractError).toBeUndefined();
    expect(sha256(bytesOf(store, container))).toBe(sha256(WINMAIL));
    expect(inside.map((e) => [e.filename, e.extractedFrom])).toEqual([
      ["zappa_av1.jpg", { index: 0, kind: "tnef" }],
      ["bookmark.htm", { index: 0, kind: "tnef" }],
      ["body.rtf", { index: 0, kind: "tnef" }],
    ]);
    inside.slice(0, 2).forEach((entry, i) => {
      expect(sha256(bytesOf(store, entry))).toBe(WINMAIL_FILES[i]?.[1]);
    });
    expect(inside[2]).toMatchObject({ contentType: "application/rtf", disposition: "inline" });
    expect(sha256(bytesOf(store, inside[2]))).toBe(WINMAIL_RTF);
  });

  it("recognises winmail.dat by name under application/octet-stream", async () => {
    const { parsed } = await parseNested(
      tnefMessage(WINMAIL, "WINMAIL.DAT", "application/octet-stream"),
    );
    expect(parsed.attachments.map((a) => a.extractedFrom?.kind)).toEqual([
      undefined,
      "tnef",
      "tnef",
      "tnef",
    ]);
  });

  it("gives a TNEF file its MIME tag, and opens a forwarded message and a TNEF embedded in it", async () => {
    const invoice = pdf(6);
    const innerEml = Buffer.from(innerMessage("Inside TNEF", pdf(7)), "latin1");
    const innerTnef = tnefStream({
      files: [{ title: "deep.pdf", mimeTag: "application/pdf", data: invoice }],
    });
    const tnef = tnefStream({
      files: [
        { longName: "Rechnung März.pdf", mimeTag: "application/pdf", data: invoice },
        { longName: "fwd.eml", mimeTag: "message/rfc822", data: innerEml },
        { displayName: "Embedded note", embedded: innerTnef },
      ],
    });
    const { parsed, store } = await parseNested(tnefMessage(tnef));
    expect(
      parsed.attachments.map((a) => [
        a.filename,
        a.contentType,
        a.extractedFrom?.index,
        a.extractedFrom?.kind,
      ]),
    ).toEqual([
      ["winmail.dat", "application/ms-tnef", undefined, undefined],
      ["Rechnung März.pdf", "application/pdf", 0, "tnef"],
      ["fwd.eml", "message/rfc822", 0, "tnef"],
      ["invoice.pdf", "application/pdf", 2, "message/rfc822"],
      ["Embedded note", "application/ms-tnef", 0, "tnef"],
      ["deep.pdf", "application/pdf", 4, "tnef"],
    ]);
    expect(sha256(bytesOf(store, parsed.attachments[1]))).toBe(sha256(invoice));
    expect(sha256(bytesOf(store, parsed.attachments[3]))).toBe(sha256(pdf(7)));
    expect(sha256(bytesOf(store, parsed.attachments[5]))).toBe(sha256(invoice));
    expect(parsed.attachments[2]?.message?.subject).toBe("Inside TNEF");
  });

  it("keeps hostile TNEF file names out of the keys", async () => {
    const tnef = tnefStream({
      files: [{ longName: "../../../etc/passwd\u0000.pdf", data: Buffer.from("x") }],
    });
    const { parsed } = await parseNested(tnefMessage(tnef));
    expect(parsed.attachments[1]?.filename).toBe("../../../etc/passwd");
    expect(parsed.attachments[1]?.ref).toBe(`${PREFIX}attachments/0001-passwd`);
  });

  it("reports a winmail.dat that is not TNEF in extractError, listing nothing inside", async () => {
    const { parsed } = await parseNested(tnefMessage(Buffer.from("PK\u0003\u0004 a zip, really")));
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]?.extractError).toMatch(/^PARSE_FAILED: not a TNEF stream/);
    expect(parsed.truncated).toBeUndefined();
  });

  it("lists what a damaged winmail.dat held before the damage, with extractError", async () => {
    // Cut inside bookmark.htm's data: zappa_av1.jpg and the RTF body (message attributes come
    // first) come out whole, the rest is reported.
    const cut = WINMAIL.subarray(0, WINMAIL.indexOf(Buffer.from("<!DOCTYPE NETSCAPE")) + 100);
    const { parsed, store } = await parseNested(tnefMessage(cut));
    expect(parsed.attachments.map((a) => a.filename)).toEqual([
      "winmail.dat",
      "zappa_av1.jpg",
      "body.rtf",
    ]);
    expect(sha256(bytesOf(store, parsed.attachments[1]))).toBe(WINMAIL_FILES[0][1]);
    expect(sha256(bytesOf(store, parsed.attachments[2]))).toBe(WINMAIL_RTF);
    expect(parsed.attachments[0]?.extractError).toMatch(/^PARSE_FAILED: attribute data runs past/);
    expect(parsed.attachments[0]?.truncated).toBeUndefined();
  });

  it("stores but does not open a TNEF larger than maxContainerBytes", async () => {
    const { parsed } = await parseNested(tnefMessage(WINMAIL), { maxContainerBytes: 50_000 });
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]?.truncated).toBe(true);
    expect(parsed.truncated).toBe(true);
  });
});

describe("S/MIME made with openssl", () => {
  let signer: SmimeSigner;
  beforeAll(() => {
    signer = makeSigner();
  });
  afterAll(() => signer.close());

  const invoice = pdf(8);
  /** The MIME entity a sender signs: text and a PDF. */
  const entity = Buffer.from(
    [
      'Content-Type: multipart/mixed; boundary="signed_b"',
      "",
      "--signed_b",
      "Content-Type: text/plain",
      "",
      "Signed invoice attached.",
      "--signed_b",
      'Content-Type: application/pdf; name="signed.pdf"',
      "Content-Transfer-Encoding: base64",
      'Content-Disposition: attachment; filename="signed.pdf"',
      "",
      base64Lines(invoice),
      "--signed_b--",
      "",
    ].join(CRLF),
  );
  const headers = Buffer.from(
    ["From: Signer <signer@example.com>", "To: docs@example.com", "Subject: signed", ""].join(CRLF),
  );

  it("unwraps opaque-signed smime.p7m and extracts the PDF it carries", async () => {
    // `openssl smime -sign -nodetach` writes the whole S/MIME message (RFC 8551 §3.5.2).
    const smime = signer.run(["smime", ...SIGN, "-nodetach"], entity);
    const { parsed, store } = await parseNested(Buffer.concat([headers, smime]));
    expect(
      parsed.attachments.map((a) => [
        a.filename,
        a.contentType,
        a.extractedFrom?.index,
        a.extractedFrom?.kind,
      ]),
    ).toEqual([
      ["smime.p7m", "application/x-pkcs7-mime", undefined, undefined],
      [null, "message/rfc822", 0, "smime"],
      ["signed.pdf", "application/pdf", 1, "message/rfc822"],
    ]);
    expect(parsed.attachments[1]?.ref).toBe(`${PREFIX}attachments/0001-signed-content.eml`);
    expect(sha256(bytesOf(store, parsed.attachments[1]))).toBe(sha256(entity));
    expect(sha256(bytesOf(store, parsed.attachments[2]))).toBe(sha256(invoice));
  });

  it("leaves detached-signed mail to the ordinary parse: the PDF is a plain attachment", async () => {
    const smime = signer.run(["smime", ...SIGN], entity);
    const { parsed, store } = await parseNested(Buffer.concat([headers, smime]));
    const pdfEntry = parsed.attachments.find((a) => a.filename === "signed.pdf");
    expect(pdfEntry?.extractedFrom).toBeUndefined();
    expect(sha256(bytesOf(store, pdfEntry))).toBe(sha256(invoice));
    expect(parsed.attachments.find((a) => a.filename === "smime.p7s")).toBeDefined();
    expect(parsed.attachments.every((a) => a.extractError === undefined)).toBe(true);
  });

  it("stores enveloped (encrypted) smime.p7m as it is, without opening it", async () => {
    const smime = signer.run(["cms", "-encrypt", "-aes256", "-recip", "signer.pem"], entity);
    const { parsed } = await parseNested(Buffer.concat([headers, smime]));
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]).toMatchObject({ filename: "smime.p7m" });
    expect(parsed.attachments[0]?.extractError).toBeUndefined();
    expect(parsed.attachments[0]?.truncated).toBeUndefined();
  });

  it("reports a damaged smime.p7m in extractError", async () => {
    const der = signer.run(["smime", ...SIGN, "-nodetach", "-binary", "-outform", "DER"], entity);
    const raw = withWrapper([
      {
        headers: [
          "Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m",
          "Content-Transfer-Encoding: base64",
        ],
        body: base64Lines(der.subarray(0, der.length - 40)),
      },
    ]);
    const { parsed } = await parseNested(raw);
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]?.extractError).toMatch(/^PARSE_FAILED: /);
  });
});

describe("store failures while extracting", () => {
  it("rejects with STORE_FAILED when a file extracted from TNEF cannot be stored", async () => {
    const store = new MemoryObjectStore({ failKey: (key) => key.includes("zappa") });
    const source = countingSource(() => pieces(tnefMessage(WINMAIL), 1000));
    const failure = await parseMessage(source.stream, store, PREFIX).catch((err: unknown) => err);
    expect(isMailIngestError(failure)).toBe(true);
    expect(String((failure as Error).message)).toMatch(/zappa/);
    expect(source.ended()).toBe(true);
  });
});
