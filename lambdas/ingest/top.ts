/** Reads the Message-ID from a `TOP n 0` response (headers only) without keeping the body. */
import type { Readable } from "node:stream";

/** Headers are read up to this many bytes; a Message-ID past it is treated as absent. */
const MAX_HEADER_BYTES = 256 * 1024;

/**
 * Returns the Message-ID (with angle brackets, as in the header) or undefined. Always consumes
 * the stream to its end so the connection stays in step. Header bytes are decoded as latin1,
 * which maps bytes 1:1: Message-IDs are ASCII (RFC 5322 §3.6.4).
 */
export async function readMessageIdHeader(stream: Readable): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let kept = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (kept < MAX_HEADER_BYTES) {
      chunks.push(chunk);
      kept += chunk.length;
    }
  }
  const text = Buffer.concat(chunks).subarray(0, MAX_HEADER_BYTES).toString("latin1");
  const headerEnd = text.search(/\r?\n\r?\n/);
  // RFC 5322 §2.2.3: unfold continuation lines before matching.
  const headers = (headerEnd >= 0 ? text.slice(0, headerEnd) : text).replace(/\r?\n[ \t]+/g, " ");
  const match = /^message-id:[ \t]*(<[^>\r\n]{1,998}>)/im.exec(headers);
  return match?.[1];
}
