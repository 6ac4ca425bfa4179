/** Builders for raw test messages and instrumented sources. */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";

export const CRLF = "\r\n";

export interface TestPart {
  /** Header lines without CRLF. */
  readonly headers: readonly string[];
  readonly body: string | Buffer;
}

/** A multipart/mixed message (RFC 2046 §5.1) with the given parts. */
export function multipartMessage(
  parts: readonly TestPart[],
  extraHeaders: readonly string[] = [],
): Buffer {
  const boundary = "=_test_boundary_7f3a";
  const chunks: Buffer[] = [
    Buffer.from(
      [
        "From: Sender <sender@example.com>",
        "To: rcpt@example.com",
        "Subject: test message",
        "Date: Tue, 01 Jul 2003 10:52:37 +0200",
        "Message-ID: <test@example.com>",
        ...extraHeaders,
        "MIME-Version: 1.0",
        `Content-Type: multipart/mixed; boundary="${boundary}"`,
        "",
        "preamble",
        "",
      ].join(CRLF),
    ),
  ];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}${CRLF}${part.headers.join(CRLF)}${CRLF}${CRLF}`));
    chunks.push(typeof part.body === "string" ? Buffer.from(part.body, "latin1") : part.body);
    chunks.push(Buffer.from(CRLF));
  }
  chunks.push(Buffer.from(`--${boundary}--${CRLF}`));
  return Buffer.concat(chunks);
}

/** A simple single-part text/plain message. */
export function plainMessage(body: string, extraHeaders: readonly string[] = []): Buffer {
  return Buffer.from(
    [
      "From: a@example.com",
      "To: b@example.com",
      "Subject: plain",
      ...extraHeaders,
      'Content-Type: text/plain; charset="utf-8"',
      "Content-Transfer-Encoding: 8bit",
      "",
      body,
    ].join(CRLF),
  );
}

/** Base64 with 76-character lines (RFC 2045 §6.8). */
export function base64Lines(bytes: Buffer): string {
  return (bytes.toString("base64").match(/.{1,76}/g) ?? []).join(CRLF);
}

/** Quoted-printable (RFC 2045 §6.7) of arbitrary bytes, soft line breaks at 76 characters. */
export function quotedPrintable(bytes: Buffer): string {
  const lines: string[] = [];
  let line = "";
  for (const byte of bytes) {
    const safe = byte >= 33 && byte <= 126 && byte !== 61;
    const encoded = safe
      ? String.fromCharCode(byte)
      : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    if (line.length + encoded.length > 75) {
      lines.push(`${line}=`);
      line = "";
    }
    line += encoded;
  }
  lines.push(line);
  return lines.join(CRLF);
}

export function sha256(bytes: Buffer | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export interface CountingSource {
  readonly stream: Readable;
  /** Bytes the consumer has pulled so far. */
  pulled(): number;
  /** True once every byte was pulled. */
  ended(): boolean;
}

/** Serves `chunks()` lazily, counting what is pulled; nothing is read ahead beyond one chunk. */
export function countingSource(chunks: () => Iterable<Buffer>): CountingSource {
  let pulled = 0;
  let ended = false;
  const iterator = chunks()[Symbol.iterator]();
  const stream = new Readable({
    highWaterMark: 0,
    read() {
      const next = iterator.next();
      if (next.done) {
        ended = true;
        this.push(null);
        return;
      }
      pulled += next.value.length;
      this.push(next.value);
    },
  });
  return { stream, pulled: () => pulled, ended: () => ended };
}

/** `buf` in pieces of `size` bytes. */
export function* pieces(buf: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}
