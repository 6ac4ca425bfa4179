/**
 * Attachments inside attachments through the whole pipeline (issue 13): a forwarded invoice, an
 * Outlook winmail.dat and an opaque-signed S/MIME message go through a real Dovecot, POP3 over
 * TLS and the fs adapters; every file extracted from them is read back from the store and its
 * bytes checked by sha256 against the file that was put in.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import type { AttachmentMeta } from "../../lambdas/mime/parsed.ts";
import {
  type DovecotHandle,
  describeDovecot,
  implicitTlsMailbox,
  startDovecot,
} from "../helpers/dovecot.ts";
import { startFauxqs } from "../helpers/fauxqs.ts";
import { type FsWorld, fsWorld, s3World, sha256 } from "../helpers/pipeline.ts";
import { makeSigner, SIGN, type SmimeSigner } from "../helpers/smime.ts";
import { base64Lines, CRLF, multipartMessage } from "../unit/mime/messages.ts";
import { validateQueueBody } from "../unit/mime/validator.ts";

const WINMAIL = path.resolve(import.meta.dirname, "../fixtures/tnef/attachments.dat");
/** Digests from Debian's tnef 1.4.18 (see test/fixtures/tnef/README.md). */
const WINMAIL_DIGESTS = {
  "zappa_av1.jpg": "bea844f30e0fcc20fad419a0d11032a6465da93c1da185a1196949955994409a",
  "bookmark.htm": "1e08d6e23c75ff80ac992eebc24c2943c7843b7dfee235966b37de5eb4362599",
  "body.rtf": "5dcd1bdee036cc1c7639bca7f7e96355d80a18f9e366b3be672a3112019d4356",
};

function invoicePdf(seed: number): Buffer {
  const body = Buffer.alloc(40_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 131 + seed) & 0xff;
  return Buffer.concat([Buffer.from("%PDF-1.7\n"), body, Buffer.from("\n%%EOF\n")]);
}

/** `raw` with multipartMessage's fixed subject replaced. */
function subject(raw: Buffer, value: string): Buffer {
  return Buffer.from(
    raw.toString("latin1").replace("Subject: test message", `Subject: ${value}`),
    "latin1",
  );
}

function pdfPart(pdf: Buffer, name: string) {
  return {
    headers: [
      `Content-Type: application/pdf; name="${name}"`,
      "Content-Transfer-Encoding: base64",
      `Content-Disposition: attachment; filename="${name}"`,
    ],
    body: base64Lines(pdf),
  };
}

describeDovecot("nested attachments through Dovecot and the fs pipeline", () => {
  let dovecot: DovecotHandle;
  let world: FsWorld;
  let signer: SmimeSigner;

  beforeAll(async () => {
    signer = makeSigner();
    dovecot = await startDovecot({ users: [{ user: "docs", password: "pw-docs" }] });
    world = await fsWorld({ id: "box", ...implicitTlsMailbox(dovecot, "docs") }, "pw-docs");
  });
  afterAll(async () => {
    await dovecot?.stop();
    await world?.cleanup();
    signer?.close();
  });

  async function stored(entry: AttachmentMeta): Promise<Buffer> {
    return readFile(path.join(world.dir, "mail-ingest-data", entry.ref));
  }

  it("extracts a forwarded PDF, a winmail.dat's files and an S/MIME-signed PDF byte-exact", async () => {
    const forwardedPdf = invoicePdf(1);
    const forwarded = multipartMessage(
      [
        { headers: ["Content-Type: text/plain"], body: "Invoice attached." },
        pdfPart(forwardedPdf, "invoice-42.pdf"),
      ],
      [],
    )
      .toString("latin1")
      .replaceAll("=_test_boundary_7f3a", "=_fwd_inner")
      .replace("Subject: test message", "Subject: Invoice 42");
    const forward = subject(
      multipartMessage([
        { headers: ["Content-Type: text/plain"], body: "Please book this." },
        { headers: ["Content-Type: message/rfc822"], body: forwarded },
      ]),
      "Fwd: Invoice 42",
    );

    const winmail = await readFile(WINMAIL);
    const outlook = subject(
      multipartMessage([
        { headers: ["Content-Type: text/plain"], body: "Casdasdf" },
        {
          headers: [
            "Content-Type: application/ms-tnef; name=winmail.dat",
            "Content-Transfer-Encoding: base64",
          ],
          body: base64Lines(winmail),
        },
      ]),
      "From Outlook",
    );

    const signedPdf = invoicePdf(2);
    const entity = Buffer.from(
      [
        'Content-Type: multipart/mixed; boundary="signed_b"',
        "",
        "--signed_b",
        "Content-Type: text/plain",
        "",
        "Signed.",
        "--signed_b",
        'Content-Type: application/pdf; name="signed.pdf"',
        "Content-Transfer-Encoding: base64",
        "",
        base64Lines(signedPdf),
        "--signed_b--",
        "",
      ].join(CRLF),
    );
    const signed = Buffer.concat([
      Buffer.from(`From: signer@example.com${CRLF}Subject: signed${CRLF}`),
      signer.run(["smime", ...SIGN, "-nodetach"], entity),
    ]);

    await dovecot.deliver("docs", [forward, outlook, signed]);
    const report = await world.poll();
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ ingested: 3, failed: 0 });

    const queued = await world.queue();
    expect(queued).toHaveLength(3);
    for (const q of queued) expect(validateQueueBody(q)).toBe(true);
    const bySubject = new Map(
      queued.map((q) => [
        (q.headers as { subject: string }).subject,
        q.attachments as AttachmentMeta[],
      ]),
    );

    // Every listed entry's stored bytes match its sha256, whatever the container.
    for (const entries of bySubject.values()) {
      for (const entry of entries) {
        const bytes = await stored(entry);
        expect(sha256(bytes), entry.ref).toBe(entry.sha256);
        expect(bytes.length).toBe(entry.size);
      }
    }

    const fwd = bySubject.get("Fwd: Invoice 42") ?? [];
    expect(fwd.map((e) => [e.filename, e.extractedFrom])).toEqual([
      [null, undefined],
      ["invoice-42.pdf", { index: 0, kind: "message/rfc822" }],
    ]);
    expect(fwd[0]?.message?.subject).toBe("Invoice 42");
    expect(sha256(await stored(fwd[1] as AttachmentMeta))).toBe(sha256(forwardedPdf));

    const tnef = bySubject.get("From Outlook") ?? [];
    expect(tnef[0]?.filename).toBe("winmail.dat");
    expect(sha256(await stored(tnef[0] as AttachmentMeta))).toBe(sha256(winmail));
    for (const [name, digest] of Object.entries(WINMAIL_DIGESTS)) {
      const entry = tnef.find((e) => e.filename === name);
      expect(entry?.extractedFrom?.kind, name).toBe("tnef");
      expect(sha256(await stored(entry as AttachmentMeta))).toBe(digest);
    }

    const signedEntries = bySubject.get("signed") ?? [];
    expect(signedEntries.map((e) => e.extractedFrom?.kind)).toEqual([
      undefined,
      "smime",
      "message/rfc822",
    ]);
    expect(sha256(await stored(signedEntries[1] as AttachmentMeta))).toBe(sha256(entity));
    expect(sha256(await stored(signedEntries[2] as AttachmentMeta))).toBe(sha256(signedPdf));
  });
});

describe("nested attachments with S3 and SQS (fauxqs)", () => {
  it("streams a forwarded message back from S3 into the nested parse, and opens a winmail.dat", async () => {
    const fauxqs = await startFauxqs();
    const pdf = invoicePdf(3);
    const winmail = await readFile(WINMAIL);
    const inner = multipartMessage([pdfPart(pdf, "from-s3.pdf")])
      .toString("latin1")
      .replaceAll("=_test_boundary_7f3a", "=_s3_inner");
    const raw = subject(
      multipartMessage([
        { headers: ["Content-Type: message/rfc822"], body: inner },
        {
          headers: [
            "Content-Type: application/ms-tnef; name=winmail.dat",
            "Content-Transfer-Encoding: base64",
          ],
          body: base64Lines(winmail),
        },
      ]),
      "to S3",
    );
    const server = await startPop3TestServer({
      users: { u: { password: "p", messages: [{ uidl: "n1", data: raw }] } },
    });
    try {
      const { bucket, queueUrl, poll } = await s3World(fauxqs, server);
      const report = await poll();
      expect(report.error).toBeUndefined();
      expect(report.ingested).toBe(1);
      const [message] = await fauxqs.receiveAll(queueUrl);
      const body = JSON.parse(message?.Body ?? "{}");
      expect(validateQueueBody(body)).toBe(true);
      const entries = body.attachments as AttachmentMeta[];
      expect(entries.map((e) => [e.filename, e.extractedFrom?.kind])).toEqual([
        [null, undefined],
        ["from-s3.pdf", "message/rfc822"],
        ["winmail.dat", undefined],
        ["zappa_av1.jpg", "tnef"],
        ["bookmark.htm", "tnef"],
        ["body.rtf", "tnef"],
      ]);
      const digests: string[] = [];
      for (const entry of entries) {
        const object = await fauxqs.s3.send(
          new GetObjectCommand({ Bucket: bucket, Key: `mail/${entry.ref}` }),
        );
        const bytes = await object.Body?.transformToByteArray();
        digests.push(sha256(bytes ?? new Uint8Array()));
      }
      expect(digests).toEqual(entries.map((e) => e.sha256));
      expect(digests[1]).toBe(sha256(pdf));
      expect(digests[2]).toBe(sha256(winmail));
      expect(digests.slice(3)).toEqual(Object.values(WINMAIL_DIGESTS));
    } finally {
      await server.close();
      await fauxqs.stop();
    }
  });
});
