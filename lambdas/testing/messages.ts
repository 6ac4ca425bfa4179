/**
 * Deterministic test mail: a hand-written sample set for the demo, a bulk generator for tests and
 * the benchmark, and a streaming generator of very large messages. Everything comes from a seeded
 * PRNG, so every run (and every client in a benchmark) sees byte-identical messages. All output
 * uses CRLF line endings, as on the POP3 wire (RFC 1939 §3).
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import type { TestMessage } from "./pop3-server.ts";

/** mulberry32: tiny, fast, and good enough for test data; never used for anything secret. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fillRandom(bytes: Buffer, next: () => number): Buffer {
  for (let i = 0; i < bytes.length; i += 4) {
    const word = Math.floor(next() * 4294967296);
    bytes[i] = word & 0xff;
    if (i + 1 < bytes.length) bytes[i + 1] = (word >>> 8) & 0xff;
    if (i + 2 < bytes.length) bytes[i + 2] = (word >>> 16) & 0xff;
    if (i + 3 < bytes.length) bytes[i + 3] = (word >>> 24) & 0xff;
  }
  return bytes;
}

/** RFC 2045 §6.8: base64 in lines of at most 76 characters. */
function base64Lines(bytes: Uint8Array): string {
  const encoded = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < encoded.length; i += 76) lines.push(encoded.slice(i, i + 76));
  return lines.join("\r\n");
}

/** Joins header and body lines with CRLF and ends the message with CRLF. */
function crlf(lines: string[]): Buffer {
  return Buffer.from(`${lines.join("\r\n")}\r\n`, "utf8");
}

const DATE = "Tue, 03 Nov 2026 09:15:00 +0000";

/** Smallest well-formed PDF-looking bytes; enough for content sniffing and a size. */
const FAKE_PDF = Buffer.from(
  "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
  "latin1",
);
/** A real 1x1 PNG. */
const PIXEL_PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);

/** About twenty varied, realistic messages for the demo and pipeline tests. */
export function sampleMessages(): TestMessage[] {
  const messages: Buffer[] = [
    crlf([
      "From: Alice Example <alice@example.com>",
      "To: Bob Example <bob@example.org>",
      "Subject: Lunch on Thursday?",
      `Date: ${DATE}`,
      "Message-ID: <sample-01@example.com>",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Hi Bob,",
      "",
      "Are you free for lunch on Thursday? The usual place at 12:30.",
      "",
      "Alice",
    ]),
    crlf([
      "From: Newsletter <news@shop.example>",
      "To: bob@example.org",
      "Subject: Your November offers",
      `Date: ${DATE}`,
      "Message-ID: <sample-02@shop.example>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/alternative; boundary="alt-02"',
      "",
      "--alt-02",
      "Content-Type: text/plain; charset=utf-8",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      "This month: 20% off all umbrellas. Offer valid until the end of the mont=",
      "h.",
      "--alt-02",
      "Content-Type: text/html; charset=utf-8",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      '<html><body><h1>November offers</h1><p style=3D"color:#333">20% off all umbr=',
      "ellas.</p></body></html>",
      "--alt-02--",
    ]),
    crlf([
      "From: Accounts <billing@supplier.example>",
      "To: bob@example.org",
      "Subject: Invoice 2026-1103",
      `Date: ${DATE}`,
      "Message-ID: <sample-03@supplier.example>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="mixed-03"',
      "",
      "This is a multi-part message in MIME format.",
      "--mixed-03",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Please find this month's invoice attached.",
      "--mixed-03",
      'Content-Type: application/pdf; name="invoice-2026-1103.pdf"',
      'Content-Disposition: attachment; filename="invoice-2026-1103.pdf"',
      "Content-Transfer-Encoding: base64",
      "",
      base64Lines(FAKE_PDF),
      "--mixed-03--",
    ]),
    crlf([
      "From: Carol <carol@example.net>",
      "To: bob@example.org",
      "Subject: Photo from the trip",
      `Date: ${DATE}`,
      "Message-ID: <sample-04@example.net>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/related; boundary="rel-04"; type="text/html"',
      "",
      "--rel-04",
      "Content-Type: text/html; charset=utf-8",
      "",
      '<html><body><p>Look at this:</p><img src="cid:pixel-04@example.net" alt="photo"></body></html>',
      "--rel-04",
      "Content-Type: image/png",
      "Content-ID: <pixel-04@example.net>",
      'Content-Disposition: inline; filename="pixel.png"',
      "Content-Transfer-Encoding: base64",
      "",
      base64Lines(PIXEL_PNG),
      "--rel-04--",
    ]),
    crlf([
      // RFC 2047 encoded-words: UTF-8 subject (B), ISO-8859-1 display name (Q).
      "From: =?ISO-8859-1?Q?Andr=E9_M=FCller?= <andre@example.de>",
      "To: bob@example.org",
      "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgWsO8cmljaCDwn4+U?=",
      `Date: ${DATE}`,
      "Message-ID: <sample-05@example.de>",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=utf-8",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      "Sch=C3=B6ne Gr=C3=BC=C3=9Fe aus Z=C3=BCrich!",
    ]),
    crlf([
      "From: HR <hr@company.example>",
      "To: bob@example.org",
      "Subject: Your CV",
      `Date: ${DATE}`,
      "Message-ID: <sample-06@company.example>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="mixed-06"',
      "",
      "--mixed-06",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Attached is the CV you sent us, for your records.",
      "--mixed-06",
      // RFC 2231 §4: charset and percent-encoded value for a non-ASCII file name.
      "Content-Type: text/plain; charset=utf-8; name*=UTF-8''r%C3%A9sum%C3%A9.txt",
      "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
      "Content-Transfer-Encoding: base64",
      "",
      base64Lines(Buffer.from("Bob Example\nExperience: 10 years of résumé writing.\n", "utf8")),
      "--mixed-06--",
    ]),
    crlf([
      "From: Bob Example <bob@example.org>",
      "To: Alice Example <alice@example.com>",
      "Subject: Re: Lunch on Thursday?",
      `Date: ${DATE}`,
      "Message-ID: <sample-07@example.org>",
      "In-Reply-To: <sample-01@example.com>",
      "References: <sample-01@example.com>",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Thursday works. See you there.",
      "",
      "> Are you free for lunch on Thursday? The usual place at 12:30.",
    ]),
    crlf([
      "From: Dev List <dev@lists.example.org>",
      "To: dev@lists.example.org",
      "Subject: [dev] Release 2.4 planning",
      `Date: ${DATE}`,
      "Message-ID: <sample-08@lists.example.org>",
      "List-Id: Developers <dev.lists.example.org>",
      "List-Unsubscribe: <mailto:dev-leave@lists.example.org>, <https://lists.example.org/u/dev>",
      "List-Post: <mailto:dev@lists.example.org>",
      "Precedence: list",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Proposed freeze date for 2.4 is the 20th. Objections?",
    ]),
    crlf([
      "From: Dave <dave@example.com>",
      "To: bob@example.org",
      "Subject: Automatic reply: Invoice 2026-1103",
      `Date: ${DATE}`,
      "Message-ID: <sample-09@example.com>",
      // RFC 3834 §5: marks the message as machine-generated.
      "Auto-Submitted: auto-replied",
      "X-Autoreply: yes",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "I am out of the office until Monday and will reply on my return.",
    ]),
    crlf([
      "Return-Path: <alerts@bank.example>",
      // RFC 8601 results as a receiving MTA would add them.
      "Authentication-Results: mx.example.org;",
      " spf=pass smtp.mailfrom=bank.example;",
      " dkim=pass header.d=bank.example header.s=sel1;",
      " dmarc=pass header.from=bank.example",
      "DKIM-Signature: v=1; a=rsa-sha256; d=bank.example; s=sel1; h=from:to:subject:date;",
      " bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==",
      "From: Bank <alerts@bank.example>",
      "To: bob@example.org",
      "Subject: Your statement is ready",
      `Date: ${DATE}`,
      "Message-ID: <sample-10@bank.example>",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Your November statement is available in online banking.",
    ]),
    crlf([
      "From: Eve <eve@example.jp>",
      "To: bob@example.org",
      "Subject: 8bit body",
      `Date: ${DATE}`,
      "Message-ID: <sample-11@example.jp>",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=utf-8",
      "Content-Transfer-Encoding: 8bit",
      "",
      "Raw UTF-8 in the body: こんにちは, naïve café, Ελληνικά, ✓.",
    ]),
    crlf([
      "From: Alice Example <alice@example.com>",
      "To: bob@example.org",
      "Subject: Invitation: Project kickoff",
      `Date: ${DATE}`,
      "Message-ID: <sample-12@example.com>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/alternative; boundary="alt-12"',
      "",
      "--alt-12",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "Project kickoff, 10 November 2026 10:00-11:00 UTC, room 4.",
      "--alt-12",
      'Content-Type: text/calendar; charset=utf-8; method=REQUEST; name="invite.ics"',
      "",
      "BEGIN:VCALENDAR",
      "VERSION:2.0",
      "PRODID:-//mail-ingest//test//EN",
      "METHOD:REQUEST",
      "BEGIN:VEVENT",
      "UID:kickoff-20261110@example.com",
      "DTSTAMP:20261103T091500Z",
      "DTSTART:20261110T100000Z",
      "DTEND:20261110T110000Z",
      "SUMMARY:Project kickoff",
      "ORGANIZER:mailto:alice@example.com",
      "ATTENDEE;RSVP=TRUE:mailto:bob@example.org",
      "END:VEVENT",
      "END:VCALENDAR",
      "--alt-12--",
    ]),
    crlf([
      "From: Frank <frank@example.com>",
      "To: bob@example.org",
      "Subject: Fwd: Your statement is ready",
      `Date: ${DATE}`,
      "Message-ID: <sample-13@example.com>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="outer-13"',
      "",
      "--outer-13",
      'Content-Type: multipart/alternative; boundary="inner-13"',
      "",
      "--inner-13",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Forwarding this, see the attached message.",
      "--inner-13",
      "Content-Type: text/html; charset=us-ascii",
      "",
      "<p>Forwarding this, see the attached message.</p>",
      "--inner-13--",
      "--outer-13",
      "Content-Type: message/rfc822",
      'Content-Disposition: attachment; filename="forwarded.eml"',
      "",
      "From: Bank <alerts@bank.example>",
      "To: frank@example.com",
      "Subject: Your statement is ready",
      `Date: ${DATE}`,
      "Message-ID: <inner-13@bank.example>",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Your November statement is available in online banking.",
      "--outer-13--",
    ]),
    crlf([
      "From: Broken Mailer <broken@example.com>",
      "To: bob@example.org",
      "Subject: Malformed multipart",
      `Date: ${DATE}`,
      "Message-ID: <sample-14@example.com>",
      "MIME-Version: 1.0",
      // The declared boundary never appears and the closing delimiter is missing.
      'Content-Type: multipart/mixed; boundary="declared-14"',
      "",
      "--actual-14",
      "Content-Type: text/plain",
      "",
      "This part uses a boundary that was never declared.",
      "--actual-14",
      "Content-Type: application/octet-stream",
      "Content-Transfer-Encoding: base64",
      "",
      "bm90IHJlYWxseSBiYXNlNjQ=!!",
    ]),
    crlf([
      "From: Gina <gina@example.com>",
      "To: bob@example.org",
      "Subject: Lines that start with dots",
      `Date: ${DATE}`,
      "Message-ID: <sample-15@example.com>",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      ".this line starts with a dot",
      "..and this one with two",
      ".",
      "The line above is a single dot, which POP3 must byte-stuff (RFC 1939 section 3).",
      "From the start of a line, too.",
    ]),
    crlf([
      "From: Reports <reports@metrics.example>",
      "To: bob@example.org",
      "Subject: Weekly numbers",
      `Date: ${DATE}`,
      "Message-ID: <sample-16@metrics.example>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="mixed-16"',
      "",
      "--mixed-16",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Numbers attached as CSV.",
      "--mixed-16",
      'Content-Type: text/csv; charset=utf-8; name="week-45.csv"',
      'Content-Disposition: attachment; filename="week-45.csv"',
      "",
      "day,visits,signups",
      "mon,1200,31",
      "tue,1350,40",
      "wed,990,22",
      "--mixed-16--",
    ]),
    crlf([
      "From: Hank <hank@example.com>",
      "To: bob@example.org, Carol <carol@example.net>,",
      " Dave <dave@example.com>, Eve <eve@example.jp>",
      "Cc: Frank <frank@example.com>",
      "Subject: A subject long enough that the sending client decided to fold it over",
      " more than one line, as RFC 5322 section 2.2.3 allows",
      `Date: ${DATE}`,
      "Message-ID: <sample-17@example.com>",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Folded headers above.",
    ]),
    crlf([
      "From: Ivan <ivan@example.com>",
      "To: bob@example.org",
      "Subject: (empty body)",
      `Date: ${DATE}`,
      "Message-ID: <sample-18@example.com>",
      "",
    ]),
    crlf([
      "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>",
      "To: bob@example.org",
      "Subject: Undelivered Mail Returned to Sender",
      `Date: ${DATE}`,
      "Message-ID: <sample-19@mx.example.org>",
      "Auto-Submitted: auto-replied",
      "MIME-Version: 1.0",
      'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-19"',
      "",
      "--dsn-19",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Your message could not be delivered to nobody@nowhere.example.",
      "--dsn-19",
      "Content-Type: message/delivery-status",
      "",
      "Reporting-MTA: dns; mx.example.org",
      "",
      "Final-Recipient: rfc822; nobody@nowhere.example",
      "Action: failed",
      "Status: 5.1.1",
      "--dsn-19--",
    ]),
    crlf([
      "From: Jill <jill@example.com>",
      "To: bob@example.org",
      "Subject: Spreadsheet and picture",
      `Date: ${DATE}`,
      "Message-ID: <sample-20@example.com>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="mixed-20"',
      "",
      "--mixed-20",
      "Content-Type: text/plain; charset=us-ascii",
      "",
      "Two attachments.",
      "--mixed-20",
      'Content-Type: application/octet-stream; name="data.bin"',
      'Content-Disposition: attachment; filename="data.bin"',
      "Content-Transfer-Encoding: base64",
      "",
      base64Lines(fillRandom(Buffer.alloc(3000), prng(20))),
      "--mixed-20",
      'Content-Type: image/png; name="pixel.png"',
      'Content-Disposition: attachment; filename="pixel.png"',
      "Content-Transfer-Encoding: base64",
      "",
      base64Lines(PIXEL_PNG),
      "--mixed-20--",
    ]),
  ];
  return messages.map((data, i) => ({ uidl: `sample-${String(i + 1).padStart(2, "0")}`, data }));
}

const WORDS = (
  "the quarterly report shows strong growth across all regions while costs remained flat " +
  "please review the attached figures before our meeting next week and send any questions " +
  "shipment delayed customs inspection expected friday invoice reference order number"
).split(" ");

function sentence(next: () => number, words: number): string {
  const out: string[] = [];
  for (let w = 0; w < words; w++) out.push(WORDS[Math.floor(next() * WORDS.length)] ?? "mail");
  const text = out.join(" ");
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

export interface GenerateOptions {
  /**
   * Decoded size of each attachment, in bytes. Which messages carry one is still the ~40% rule
   * unless `withAttachment` is set. @default random, 1-64 KiB
   */
  attachmentBytes?: number;
  /** Force an attachment on (true) or off (false). @default ~40% of messages, by the PRNG */
  withAttachment?: boolean;
  /** Varies the whole corpus. @default 1 */
  seed?: number;
}

/**
 * Message `i` of a deterministic bulk corpus: CRLF line endings, a unique Message-ID, a few
 * paragraphs, and in ~40% of messages a base64 attachment. Every 7th message has lines starting
 * with "." to exercise POP3 byte-stuffing.
 */
export function generateMessage(i: number, options: GenerateOptions = {}): Buffer {
  const seed = options.seed ?? 1;
  const next = prng(Math.imul(seed, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b));
  const sender = Math.floor(next() * 50);
  const hasAttachment = options.withAttachment ?? next() < 0.4;
  const minutes = i % 1_000_000;
  const date = new Date(Date.UTC(2026, 0, 1) + minutes * 60_000)
    .toUTCString()
    .replace("GMT", "+0000");
  const headers = [
    `From: Sender ${sender} <sender${sender}@example.com>`,
    "To: Bulk Recipient <bulk@example.org>",
    `Subject: Bulk message #${i}: ${sentence(next, 4)}`,
    `Date: ${date}`,
    `Message-ID: <bulk-${seed}-${i}@mail-ingest.test>`,
    "MIME-Version: 1.0",
  ];
  const paragraphs: string[] = [];
  const count = 1 + Math.floor(next() * 5);
  for (let p = 0; p < count; p++) paragraphs.push(sentence(next, 8 + Math.floor(next() * 40)), "");
  if (i % 7 === 0) paragraphs.push(".leading dot", "..two leading dots", ".", "");
  const text = paragraphs.map((line) => wrap(line)).join("\r\n");
  if (!hasAttachment) {
    return crlf([...headers, "Content-Type: text/plain; charset=us-ascii", "", text]);
  }
  const bytes = options.attachmentBytes ?? 1024 + Math.floor(next() * 63 * 1024);
  const attachment = fillRandom(Buffer.alloc(bytes), next);
  const boundary = `bulk-${seed}-${i}-boundary`;
  return crlf([
    ...headers,
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=us-ascii",
    "",
    text,
    `--${boundary}`,
    `Content-Type: application/octet-stream; name="attachment-${i}.bin"`,
    `Content-Disposition: attachment; filename="attachment-${i}.bin"`,
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(attachment),
    `--${boundary}--`,
  ]);
}

/** Folds prose at 72 columns so no line approaches RFC 5322's 998-octet limit. */
function wrap(line: string): string {
  const out: string[] = [];
  let current = "";
  for (const word of line.split(" ")) {
    if (current && current.length + word.length + 1 > 72) {
      out.push(current);
      current = word;
    } else {
      current = current ? `${current} ${word}` : word;
    }
  }
  out.push(current);
  return out.join("\r\n");
}

/** Decoded bytes per generated block: a multiple of 57, so each block is 1024 whole base64 lines. */
const BLOCK_BYTES = 57 * 1024;
/** One base64 line (76 characters) plus CRLF encodes 57 bytes. */
const LINE_BYTES = 78;
const LARGE_BOUNDARY = "large-message-boundary-7c1f";

export interface LargeAttachment {
  filename: string;
  /** Decoded size in bytes. */
  size: number;
  /** sha256 (hex) of the decoded bytes. */
  sha256: string;
}

interface LargeLayout {
  head: Buffer;
  partHeads: Buffer[];
  tail: Buffer;
  decodedSizes: number[];
}

function encodedSize(decoded: number): number {
  const full = Math.floor(decoded / 57);
  const rest = decoded % 57;
  return full * LINE_BYTES + (rest > 0 ? Math.ceil(rest / 3) * 4 + 2 : 0);
}

function largeLayout(totalBytes: number, attachments: number): LargeLayout {
  if (!Number.isSafeInteger(attachments) || attachments < 1) {
    throw new RangeError("attachments must be a positive integer");
  }
  const head = crlf([
    "From: Large Sender <large@example.com>",
    "To: bob@example.org",
    `Subject: Large message, ${attachments} attachments`,
    `Date: ${DATE}`,
    `Message-ID: <large-${totalBytes}-${attachments}@mail-ingest.test>`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed; boundary="${LARGE_BOUNDARY}"`,
    "",
    `--${LARGE_BOUNDARY}`,
    "Content-Type: text/plain; charset=us-ascii",
    "",
    `This message carries ${attachments} generated attachments.`,
  ]);
  const partHeads = Array.from({ length: attachments }, (_, j) =>
    crlf([
      `--${LARGE_BOUNDARY}`,
      `Content-Type: application/octet-stream; name="${largeFilename(j)}"`,
      `Content-Disposition: attachment; filename="${largeFilename(j)}"`,
      "Content-Transfer-Encoding: base64",
      "",
    ]),
  );
  const tail = crlf([`--${LARGE_BOUNDARY}--`]);
  const overhead = head.length + tail.length + partHeads.reduce((sum, h) => sum + h.length, 0);
  const perPart = Math.max(0, Math.floor((totalBytes - overhead) / attachments));
  const decoded = Math.max(57, Math.floor(perPart / LINE_BYTES) * 57);
  return {
    head,
    partHeads,
    tail,
    decodedSizes: Array.from({ length: attachments }, () => decoded),
  };
}

function largeFilename(j: number): string {
  return `blob-${j + 1}.bin`;
}

/**
 * Attachment `j`'s bytes, block by block: a PRNG-filled base block with the block number written
 * into its first four bytes, so a reordered, repeated or dropped block changes the hash.
 */
function* attachmentBlocks(j: number, size: number): Generator<Buffer> {
  const base = fillRandom(Buffer.alloc(BLOCK_BYTES), prng(0x5eed + j));
  for (let offset = 0, n = 0; offset < size; offset += BLOCK_BYTES, n++) {
    const block = Buffer.from(base.subarray(0, Math.min(BLOCK_BYTES, size - offset)));
    block.writeUInt32BE(n >>> 0, 0);
    yield block;
  }
}

/** base64 of one block, 76 characters plus CRLF per line. */
function encodeBlock(block: Buffer): Buffer {
  const out = Buffer.alloc(encodedSize(block.length));
  let at = 0;
  for (let from = 0; from < block.length; from += 57) {
    at += out.write(
      block.toString("base64", from, Math.min(block.length, from + 57)),
      at,
      "latin1",
    );
    out[at++] = 0x0d;
    out[at++] = 0x0a;
  }
  return out;
}

/**
 * A multipart message of about `totalBytes` with `attachments` base64 attachments, generated as
 * it is read (one ~76 KiB block at a time), so 300 MB messages cost no more memory than 3 MB.
 */
export function generateLargeMessage(totalBytes: number, attachments: number): Readable {
  const layout = largeLayout(totalBytes, attachments);
  return Readable.from(
    (function* () {
      yield layout.head;
      for (let j = 0; j < attachments; j++) {
        yield layout.partHeads[j] as Buffer;
        for (const block of attachmentBlocks(j, layout.decodedSizes[j] ?? 0)) {
          yield encodeBlock(block);
        }
      }
      yield layout.tail;
    })(),
    { objectMode: false },
  );
}

/** The exact byte length of `generateLargeMessage(totalBytes, attachments)`. */
export function largeMessageSize(totalBytes: number, attachments: number): number {
  const layout = largeLayout(totalBytes, attachments);
  return (
    layout.head.length +
    layout.tail.length +
    layout.partHeads.reduce((sum, h) => sum + h.length, 0) +
    layout.decodedSizes.reduce((sum, d) => sum + encodedSize(d), 0)
  );
}

/**
 * What a MIME parser must recover from `generateLargeMessage(totalBytes, attachments)`: each
 * attachment's file name, decoded size and sha256. Computed block by block, never materialised.
 */
export function largeMessageAttachments(
  totalBytes: number,
  attachments: number,
): LargeAttachment[] {
  const layout = largeLayout(totalBytes, attachments);
  return layout.decodedSizes.map((size, j) => {
    const hash = createHash("sha256");
    for (const block of attachmentBlocks(j, size)) hash.update(block);
    return { filename: largeFilename(j), size, sha256: hash.digest("hex") };
  });
}
