/**
 * Deterministic test mail for tests and the benchmark: a bulk generator (`generateMessage`) and a
 * streaming generator of very large messages. Not runtime code: the CLI ships only the demo's
 * samples (`lambdas/demo/messages.ts`). Everything comes from a seeded PRNG, so every run (and
 * every client in a benchmark) sees byte-identical messages, with CRLF line endings as on the
 * POP3 wire (RFC 1939 §3).
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { base64Lines, crlf, DATE, fillRandom, prng } from "../../lambdas/demo/messages.ts";

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
