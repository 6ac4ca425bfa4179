/**
 * Hostile MIME: every case must resolve (never throw), read the whole source, stay bounded in
 * time, flag what it cut, and keep every stored key inside the parts prefix.
 */
import { describe, expect, it } from "vitest";
import { buildQueueMessage } from "../../../lambdas/message/schema.ts";
import { type ParseLimits, parseMessage } from "../../../lambdas/mime/parse.ts";
import { MemoryObjectStore } from "./memory-store.ts";
import { base64Lines, CRLF, countingSource, multipartMessage, pieces, sha256 } from "./messages.ts";
import { tnefStream } from "./tnef-writer.ts";
import { schemaErrors, validateQueueBody } from "./validator.ts";

const PREFIX = "parts/support/0123456789abcdef0123456789abcdef/";

async function parseHostile(raw: Buffer, limits?: Partial<ParseLimits>) {
  const store = new MemoryObjectStore();
  const source = countingSource(() => pieces(raw, 64 * 1024));
  const started = performance.now();
  const parsed = await parseMessage(source.stream, store, PREFIX, limits);
  const ms = performance.now() - started;
  expect(source.ended()).toBe(true);
  for (const key of store.putKeys) {
    expect(key.startsWith(PREFIX)).toBe(true);
    expect(key).not.toContain("..");
    expect(key.slice(PREFIX.length)).toMatch(
      /^(body\.(txt|html)|attachments\/\d{4,}-[A-Za-z0-9._-]+)$/,
    );
  }
  const message = buildQueueMessage({
    id: "0123456789abcdef0123456789abcdef",
    mailbox: "support",
    source: { protocol: "pop3", uidl: "u1" },
    ingestedAt: new Date(),
    size: raw.length,
    sha256: sha256(raw),
    raw: { key: "raw/support/x.eml", uri: "file:///tmp/raw/support/x.eml" },
    parsed,
  });
  expect(validateQueueBody(message), schemaErrors()).toBe(true);
  return { parsed, store, ms };
}

/** `depth` nested multipart/mixed levels around one leaf part. */
function nestedMessage(depth: number): Buffer {
  let head = `From: a@example.com${CRLF}Content-Type: multipart/mixed; boundary=b0${CRLF}${CRLF}`;
  for (let i = 1; i < depth; i++) {
    head += `--b${i - 1}${CRLF}Content-Type: multipart/mixed; boundary=b${i}${CRLF}${CRLF}`;
  }
  let tail = `--b${depth - 1}${CRLF}Content-Type: application/pdf${CRLF}${CRLF}leaf${CRLF}--b${depth - 1}--${CRLF}`;
  for (let i = depth - 2; i >= 0; i--) tail += `--b${i}--${CRLF}`;
  return Buffer.from(head + tail);
}

describe("hostile MIME", () => {
  it("stops at maxDepth on 1000 nested multiparts, flagging MIME_LIMIT", async () => {
    // maxParts raised so the depth check, not the part count, is what stops it.
    const { parsed, ms } = await parseHostile(nestedMessage(1000), { maxParts: 5000 });
    expect(parsed.parseError).toMatch(/^MIME_LIMIT: MIME nesting deeper than 32 levels/);
    expect(parsed.truncated).toBe(true);
    expect(parsed.attachments).toEqual([]);
    expect(ms).toBeLessThan(5000);
  });

  it("accepts nesting up to maxDepth", async () => {
    const { parsed } = await parseHostile(nestedMessage(30));
    expect(parsed.parseError).toBeUndefined();
    expect(parsed.attachments).toHaveLength(1);
  });

  it("stops a 100k-part bomb at maxParts, keeping the attachments stored before it", async () => {
    const parts = Array.from({ length: 100_000 }, () => ({
      headers: ["Content-Type: application/octet-stream"],
      body: "x",
    }));
    const { parsed, store, ms } = await parseHostile(multipartMessage(parts));
    expect(parsed.parseError).toMatch(/^MIME_LIMIT: /);
    expect(parsed.truncated).toBe(true);
    expect(parsed.attachments.length).toBeGreaterThan(0);
    expect(parsed.attachments.length).toBeLessThanOrEqual(1000);
    for (const attachment of parsed.attachments) {
      expect(store.objects.get(attachment.ref)?.sha256).toBe(attachment.sha256);
    }
    expect(ms).toBeLessThan(20_000);
  });

  it("flags a 5 MB header line instead of buffering it", async () => {
    const raw = Buffer.from(
      `Subject: ${"a".repeat(5 * 1024 * 1024)}${CRLF}From: a@example.com${CRLF}${CRLF}body${CRLF}`,
    );
    const { parsed, ms } = await parseHostile(raw);
    expect(parsed.parseError).toMatch(/^MIME_LIMIT: .*header/i);
    expect(parsed.truncated).toBe(true);
    expect(parsed.headers.subject).toBeNull();
    expect(ms).toBeLessThan(5000);
  });

  it("flags a 5 MB header inside a part, keeping the parts before it", async () => {
    const raw = multipartMessage([
      { headers: ["Content-Type: application/pdf"], body: "first" },
      { headers: [`Content-Type: application/pdf; x="${"b".repeat(5 * 1024 * 1024)}"`], body: "2" },
    ]);
    const { parsed } = await parseHostile(raw);
    expect(parsed.parseError).toMatch(/^MIME_LIMIT: /);
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.headers.subject).toBe("test message");
  });

  it("sanitises traversal, NUL, control-character, RFC 2231 and 5000-character filenames", async () => {
    const longName = `${"n".repeat(5000)}.pdf`;
    const dispositions = [
      'attachment; filename="../../etc/passwd"',
      'attachment; filename="evil\0name\x01.exe"',
      "attachment; filename*=utf-8''%2e%2e%2f%2e%2e%2fetc%2fshadow",
      'attachment; filename="..\\\\..\\\\windows\\\\win.ini"',
      `attachment; filename="${longName}"`,
      'attachment; filename=".."',
      'attachment; filename="=?utf-8?q?=2E=2E=2Fencoded=2Eexe?="',
      "attachment",
    ];
    const raw = multipartMessage(
      dispositions.map((d) => ({
        headers: ["Content-Type: application/octet-stream", `Content-Disposition: ${d}`],
        body: "payload",
      })),
    );
    const { parsed } = await parseHostile(raw);
    expect(parsed.parseError).toBeUndefined();
    expect(parsed.attachments.map((a) => a.filename)).toEqual([
      "../../etc/passwd",
      "evil\0name\x01.exe",
      "../../etc/shadow",
      "..\\..\\windows\\win.ini",
      longName,
      "..",
      "../encoded.exe",
      null,
    ]);
    const names = parsed.attachments.map((a) => a.ref.slice(`${PREFIX}attachments/`.length));
    expect(names).toEqual([
      "0000-passwd",
      "0001-evil_name_.exe",
      "0002-shadow",
      "0003-win.ini",
      `0004-${"n".repeat(96)}.pdf`,
      "0005-attachment.bin",
      "0006-encoded.exe",
      "0007-attachment.bin",
    ]);
  });

  it("does not let header names pollute prototypes", async () => {
    const raw = Buffer.from(
      [
        "From: a@example.com",
        "__proto__: polluted",
        "List-__proto__: <mailto:x@example.com>",
        "constructor: x",
        "",
        "body",
      ].join(CRLF),
    );
    const { parsed } = await parseHostile(raw);
    expect(parsed.parseError).toBeUndefined();
    expect(Reflect.get({}, "polluted")).toBeUndefined();
    expect(parsed.headers.from).toEqual([{ address: "a@example.com" }]);
  });
});

/** A message that forwards a message that forwards ... `depth` levels, a PDF at the bottom. */
function forwardChain(depth: number): Buffer {
  let inner = `From: z@example.com${CRLF}Content-Type: application/pdf${CRLF}${CRLF}%PDF-1.7 leaf${CRLF}`;
  for (let level = depth; level >= 1; level--) {
    const b = `fw${level}`;
    inner = [
      `From: level${level}@example.com`,
      `Subject: Fwd ${level}`,
      `Content-Type: multipart/mixed; boundary="${b}"`,
      "",
      `--${b}`,
      "Content-Type: text/plain",
      "",
      `forwarding ${level}`,
      `--${b}`,
      "Content-Type: message/rfc822",
      "",
      inner,
      `--${b}--`,
      "",
    ].join(CRLF);
  }
  return Buffer.from(inner);
}

/** A winmail.dat whose embedded message embeds a message ... `depth` levels. */
function tnefChain(depth: number): Buffer {
  let tnef = tnefStream({ files: [{ title: "leaf.pdf", data: Buffer.from("%PDF leaf") }] });
  for (let level = depth; level >= 1; level--) {
    tnef = tnefStream({ files: [{ displayName: `level ${level}`, embedded: tnef }] });
  }
  return tnef;
}

function winmailMessage(tnef: Buffer): Buffer {
  return multipartMessage([
    {
      headers: [
        "Content-Type: application/ms-tnef; name=winmail.dat",
        "Content-Transfer-Encoding: base64",
      ],
      body: base64Lines(tnef),
    },
  ]);
}

describe("nesting bombs through attachments", () => {
  it("opens a 100-deep forward chain only 8 containers deep, flagging the 9th", async () => {
    const raw = forwardChain(100);
    const { parsed, store } = await parseHostile(raw);
    expect(parsed.attachments).toHaveLength(9);
    parsed.attachments.forEach((entry, i) => {
      expect(entry.contentType).toBe("message/rfc822");
      expect(entry.extractedFrom).toEqual(
        i === 0 ? undefined : { index: i - 1, kind: "message/rfc822" },
      );
      // The 9th is stored but not opened, so its headers are not read either.
      expect(entry.message?.subject).toBe(i === 8 ? undefined : `Fwd ${i + 2}`);
      expect(entry.truncated).toBe(i === 8 ? true : undefined);
      expect(store.objects.get(entry.ref)?.sha256).toBe(entry.sha256);
    });
    expect(parsed.truncated).toBe(true);
    // Each level re-stores what it holds: at most 9 copies of the message, never more.
    expect(store.bytesRead).toBeLessThan(10 * raw.length);
  });

  it("honours a lower maxNesting", async () => {
    const { parsed } = await parseHostile(forwardChain(5), { maxNesting: 2 });
    expect(parsed.attachments).toHaveLength(3);
    expect(parsed.attachments[2]?.truncated).toBe(true);
  });

  it("opens a 100-deep TNEF embedded-message chain only 8 containers deep", async () => {
    const { parsed } = await parseHostile(winmailMessage(tnefChain(100)));
    expect(parsed.attachments).toHaveLength(9);
    parsed.attachments.slice(1).forEach((entry, i) => {
      expect(entry.contentType).toBe("application/ms-tnef");
      expect(entry.extractedFrom).toEqual({ index: i, kind: "tnef" });
    });
    expect(parsed.attachments[8]?.truncated).toBe(true);
    expect(parsed.truncated).toBe(true);
  });

  it("caps all levels together at maxAttachments: 25 forwards of 50 files each", async () => {
    const forward = (n: number) =>
      multipartMessage(
        Array.from({ length: 50 }, (_, i) => ({
          headers: [`Content-Type: application/octet-stream; name=f${n}-${i}.bin`],
          body: `${n}-${i}`,
        })),
      )
        .toString("latin1")
        .replaceAll("=_test_boundary_7f3a", `=_inner_${n}`);
    const raw = multipartMessage(
      Array.from({ length: 25 }, (_, n) => ({
        headers: ["Content-Type: message/rfc822"],
        body: forward(n),
      })),
    );
    const { parsed } = await parseHostile(raw);
    expect(parsed.attachments).toHaveLength(1000);
    expect(parsed.truncated).toBe(true);
    // The forward whose files ran past the cap says so; the ones after it are not opened.
    const cut = parsed.attachments.filter((a) => a.contentType === "message/rfc822" && a.truncated);
    expect(cut.length).toBeGreaterThan(0);
  });

  it("caps a TNEF carrying 5000 files at maxAttachments", async () => {
    const files = Array.from({ length: 5000 }, (_, i) => ({
      title: `${i}.txt`,
      data: Buffer.from([i & 0xff]),
    }));
    const { parsed } = await parseHostile(winmailMessage(tnefStream({ files })));
    expect(parsed.attachments).toHaveLength(1000);
    expect(parsed.attachments[0]?.truncated).toBe(true);
    expect(parsed.truncated).toBe(true);
  });
});
