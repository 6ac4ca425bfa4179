/**
 * Attachments inside attachments. After the streaming parse stores an attachment, this opens it
 * when it is a container and lists what it holds as further attachments:
 *
 * - `message/rfc822` (a forwarded message, a bounce's original): streamed back from the store
 *   into a nested MIME parse, never held in memory; its headers go to `message` on the entry.
 * - TNEF (`application/ms-tnef`, `winmail.dat`): read back into memory, at most
 *   `maxContainerBytes`, and decoded by `tnef.ts`; the RTF body becomes `body.rtf`.
 * - opaque-signed S/MIME (`application/pkcs7-mime`, `*.p7m`): read back likewise, and the signed
 *   entity unwrapped by `smime.ts` (the signature is not verified) and listed as a message/rfc822
 *   entry, itself opened in turn. Enveloped (encrypted) data is left as stored.
 *
 * Every entry found gets `extractedFrom` pointing at its container. Entries are listed in
 * document order: a container, then (depth first) what it holds. Bounds: containers nest at most
 * `maxNesting` levels, all levels together share `maxAttachments`, and TNEF/S/MIME containers
 * above `maxContainerBytes` are stored but not opened; each sets `truncated` on the container
 * (and on the message). Content problems never throw: they land in the container's
 * `extractError`. Only the store's own failures propagate.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { ObjectStore } from "../ports.ts";
import { attachmentRef } from "./filename.ts";
import type { AttachmentMeta, ContainerKind, ExtractedFrom, ParsedMessage } from "./parsed.ts";
import { readCms, SmimeError } from "./smime.ts";
import { isTnef, readTnef, TnefError } from "./tnef.ts";

/** The bounds nested extraction needs (a subset of the parser's limits). */
export interface NestedLimits {
  maxAttachments: number;
  maxNesting: number;
  maxContainerBytes: number;
}

/** State shared by the whole extraction of one message, across every level. */
export interface Extraction {
  readonly store: ObjectStore;
  /** The message's parts prefix, ending in `/`. */
  readonly prefix: string;
  readonly limits: NestedLimits;
  /** The message's attachment list; every level appends to it. */
  readonly attachments: AttachmentMeta[];
  /** Next index to hand out. */
  next: number;
  /** Marks the message truncated. */
  readonly onTruncated: () => void;
  /**
   * Parses an inner message streamed from the store; its attachments are added at `depth` with
   * `extractedFrom` the container at `parent` (injected by parse.ts, which owns the MIME parse).
   */
  readonly parseInner: (source: Readable, depth: number, parent: number) => Promise<ParsedMessage>;
}

/** The next attachment index, or undefined (and the message flagged) when the count is spent. */
export function allocateIndex(ext: Extraction): number | undefined {
  if (ext.next >= ext.limits.maxAttachments) {
    ext.onTruncated();
    return undefined;
  }
  return ext.next++;
}

/** Inner messages (RFC 2046 §5.2.1; message/global is RFC 6532's UTF-8 form). */
export const RFC822_TYPES: ReadonlySet<string> = new Set(["message/rfc822", "message/global"]);
const TNEF_TYPES = new Set(["application/ms-tnef", "application/vnd.ms-tnef"]);
const PKCS7_MIME_TYPES = new Set(["application/pkcs7-mime", "application/x-pkcs7-mime"]);

/** How `entry` would be opened, if it is a container. */
export function containerKind(entry: AttachmentMeta): ContainerKind | undefined {
  const type = entry.contentType.toLowerCase();
  const name = (entry.filename ?? "").toLowerCase();
  if (RFC822_TYPES.has(type)) return "message/rfc822";
  if (TNEF_TYPES.has(type) || name === "winmail.dat" || name === "win.dat") return "tnef";
  if (PKCS7_MIME_TYPES.has(type) || name.endsWith(".p7m")) return "smime";
  return undefined;
}

/**
 * Opens `entry` (already stored and listed, at nesting `depth`: 0 for the message's own parts)
 * if it is a container, adding what it holds after it.
 */
export async function expandContainer(
  ext: Extraction,
  entry: AttachmentMeta,
  depth: number,
): Promise<void> {
  const kind = containerKind(entry);
  if (kind === undefined) return;
  const truncate = (): void => {
    entry.truncated = true;
    ext.onTruncated();
  };
  if (depth + 1 > ext.limits.maxNesting || ext.next >= ext.limits.maxAttachments) {
    truncate();
    return;
  }
  if (kind === "message/rfc822") {
    const inner = await ext.parseInner(await readBack(ext, entry), depth + 1, entry.index);
    entry.message = {
      subject: inner.headers.subject,
      from: inner.headers.from,
      date: inner.headers.date,
      messageId: inner.headers.messageId,
    };
    if (inner.truncated) truncate();
    if (inner.parseError !== undefined) entry.extractError = inner.parseError;
    return;
  }
  if (entry.size > ext.limits.maxContainerBytes) {
    truncate();
    return;
  }
  const bytes = await readAll(await readBack(ext, entry), ext.limits.maxContainerBytes);
  if (bytes === undefined) {
    truncate();
    return;
  }
  const from: ExtractedFrom = { index: entry.index, kind };
  try {
    if (kind === "tnef") await expandTnef(ext, entry, bytes, from, depth + 1, truncate);
    else await expandSmime(ext, bytes, from, depth + 1, truncate);
  } catch (err) {
    if (!(err instanceof TnefError || err instanceof SmimeError)) throw err;
    entry.extractError = `${ErrorCode.PARSE_FAILED}: ${err.message}`;
  }
}

async function expandTnef(
  ext: Extraction,
  entry: AttachmentMeta,
  bytes: Buffer,
  from: ExtractedFrom,
  depth: number,
  truncate: () => void,
): Promise<void> {
  if (!isTnef(bytes)) throw new TnefError("not a TNEF stream (signature 0x223E9F78 missing)");
  const content = readTnef(bytes, { maxFiles: ext.limits.maxAttachments });
  if (content.truncated) truncate();
  if (content.error !== undefined)
    entry.extractError = `${ErrorCode.PARSE_FAILED}: ${content.error}`;
  else if (content.checksumErrors > 0) {
    // The files are still extracted: a wrong checksum with intact framing is a writer's bug
    // more often than damage, and the container itself is stored untouched.
    entry.extractError = `${ErrorCode.PARSE_FAILED}: ${content.checksumErrors} TNEF attribute checksum(s) did not match`;
  }
  for (const file of content.files) {
    const child = await storeChild(ext, file.data, {
      filename: file.filename,
      contentType: file.contentType ?? "application/octet-stream",
      disposition: "attachment",
      extractedFrom: from,
      keyName: file.embedded ? `${file.filename ?? "message"}.tnef` : file.filename,
    });
    if (child === undefined) return truncate();
    await expandContainer(ext, child, depth);
  }
  if (content.rtf !== undefined) {
    // The RTF body gets a name of ours (MS-OXTNEF gives none); the text/plain part beside the
    // TNEF part, if the sender's client wrote one, stays the message's text body.
    const child = await storeChild(ext, content.rtf, {
      filename: "body.rtf",
      contentType: "application/rtf",
      disposition: "inline",
      extractedFrom: from,
    });
    if (child === undefined) truncate();
  }
}

async function expandSmime(
  ext: Extraction,
  bytes: Buffer,
  from: ExtractedFrom,
  depth: number,
  truncate: () => void,
): Promise<void> {
  const cms = readCms(bytes, { maxContentBytes: ext.limits.maxContainerBytes });
  // Enveloped (encrypted) and detached-signature containers hold nothing we can open.
  if (cms.type !== "signed-data") return;
  // The signed content is a MIME entity (RFC 8551 §3.1): listed as one, then opened as a message.
  const child = await storeChild(ext, cms.content, {
    filename: null,
    contentType: "message/rfc822",
    disposition: "attachment",
    extractedFrom: from,
    keyName: "signed-content.eml",
  });
  if (child === undefined) return truncate();
  await expandContainer(ext, child, depth);
}

interface ChildFields {
  filename: string | null;
  contentType: string;
  disposition: "attachment" | "inline";
  extractedFrom: ExtractedFrom;
  /** Name used for the key when it should differ from `filename`. */
  keyName?: string | null;
}

/** Stores one extracted file and lists it; undefined when the attachment count is spent. */
async function storeChild(
  ext: Extraction,
  data: Buffer,
  fields: ChildFields,
): Promise<AttachmentMeta | undefined> {
  const index = allocateIndex(ext);
  if (index === undefined) return undefined;
  const ref = attachmentRef(ext.prefix, index, fields.keyName ?? fields.filename);
  await ext.store.put(ref, data, { contentType: safeType(fields.contentType) });
  const meta: AttachmentMeta = {
    index,
    filename: fields.filename,
    contentType: fields.contentType,
    size: data.length,
    sha256: createHash("sha256").update(data).digest("hex"),
    disposition: fields.disposition,
    ref,
    extractedFrom: fields.extractedFrom,
  };
  ext.attachments.push(meta);
  return meta;
}

/** The stored container's bytes, as a stream; its absence right after the put is a store fault. */
async function readBack(ext: Extraction, entry: AttachmentMeta): Promise<Readable> {
  const body = await ext.store.get(entry.ref);
  if (body === null) {
    throw new MailIngestError(
      ErrorCode.STORE_FAILED,
      `Stored attachment ${entry.ref} could not be read back to extract what it holds`,
    );
  }
  return body;
}

/** All of `source`, or undefined once it exceeds `maxBytes`. */
async function readAll(source: Readable, maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Leaving the loop early destroys the stream (an S3 GET is aborted, a file closed).
  for await (const chunk of source) {
    const buf: Buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    size += buf.length;
    if (size > maxBytes) return undefined;
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/** A Content-Type safe to hand to the store (it becomes an HTTP header on S3). */
function safeType(value: string): string {
  return /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i.test(value)
    ? value
    : "application/octet-stream";
}
