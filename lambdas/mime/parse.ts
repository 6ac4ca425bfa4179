/**
 * Streaming MIME parse of one raw message into the object store.
 *
 * mailparser's streaming `MailParser` splits the message; every attachment's decoded bytes are
 * piped straight into `store.put` (hashed on the way), so attachment bulk never sits in memory and
 * a slow store holds back the parser and, through it, the source. Text and HTML bodies are
 * buffered by mailparser itself (it assembles them from several parts, and converts HTML to text);
 * {@link ParseLimits.maxTextBytes} bounds that buffer. A body of at most
 * {@link INLINE_BODY_BYTES} is then carried inline in the result and not stored; a larger one is
 * stored, as in schema v1.
 *
 * Contract, relied on by the ingest pipeline that tees the RETR stream to the raw store and here:
 * - `source` is always read to its end, even after a parser error or a limit, so the tee's other
 *   branch (the raw store) never stalls;
 * - message content never makes the promise reject: bad input yields `parseError` (and
 *   `truncated` when a limit fired) alongside whatever was extracted before;
 * - it rejects only when the store fails or `source` itself errors.
 */
import { createHash } from "node:crypto";
import { Readable, Transform, type TransformCallback } from "node:stream";
import type {
  AddressObject,
  AttachmentStream,
  EmailAddress,
  HeaderLines,
  Headers,
  MailParser,
  MessageText,
} from "mailparser";
import { describeError, ErrorCode, isMailIngestError, MailIngestError } from "../errors.ts";
import type { ObjectStore } from "../ports.ts";
import { pipeInto } from "../util/pipe.ts";
import { parseAuthResults } from "./auth-results.ts";
import {
  DELIVERED_TO_FIELDS,
  deliveredTo,
  isSpamField,
  type SpamHeaders,
  spamVerdict,
} from "./delivery.ts";
import { attachmentRef } from "./filename.ts";
import { headerList } from "./header-list.ts";
import { mailparser } from "./mailparser-loader.ts";
import { allocateIndex, type Extraction, expandContainer, RFC822_TYPES } from "./nested.ts";
import {
  type Address,
  type AttachmentMeta,
  type BodyPart,
  type ExtractedFrom,
  INLINE_BODY_BYTES,
  type MessageHeaders,
  type ParsedMessage,
  type Security,
} from "./parsed.ts";
import { textReply } from "./reply.ts";
import { noteSecurity } from "./security.ts";
import { preview } from "./text.ts";

export { preview } from "./text.ts";

export interface ParseLimits {
  /** Most MIME parts (nodes) in one message; more stop extraction. @default 1000 */
  maxParts: number;
  /** Deepest MIME nesting (the root is depth 0); deeper stops extraction. @default 32 */
  maxDepth: number;
  /** Largest header block of one part, in bytes; larger stops extraction. @default 1 MiB */
  maxHeaderBytes: number;
  /**
   * Attachments stored per message, those extracted from containers included; later ones are
   * skipped (drained, not stored). @default 1000
   */
  maxAttachments: number;
  /**
   * Containers opened inside containers (message/rfc822, TNEF, S/MIME; see nested.ts): an entry
   * is at most this many containers deep. A container at the limit is stored but not opened, and
   * flagged `truncated`. @default 8
   */
  maxNesting: number;
  /**
   * Largest TNEF or S/MIME container read back into memory to be opened, in bytes; a larger one
   * is stored but not opened (`truncated`). message/rfc822 containers are streamed back from the
   * store instead, so no such bound applies to them. @default 32 MiB
   */
  maxContainerBytes: number;
  /** Bytes of text kept for `textPreview`. @default 1024 */
  previewBytes: number;
  /**
   * Encoded bytes of inline text/html bodies (all parts together) handed to mailparser, which
   * holds them in memory until the end of the message. Bytes past this are dropped and the
   * message is flagged `truncated`. @default 16 MiB
   */
  maxTextBytes: number;
}

export const DEFAULT_PARSE_LIMITS: Readonly<ParseLimits> = Object.freeze({
  maxParts: 1000,
  maxDepth: 32,
  maxHeaderBytes: 1024 * 1024,
  maxAttachments: 1000,
  maxNesting: 8,
  maxContainerBytes: 32 * 1024 * 1024,
  previewBytes: 1024,
  maxTextBytes: 16 * 1024 * 1024,
});

/**
 * HTML longer than this (characters) is not converted to text for `text` (mailparser has no
 * limit by default, and html-to-text is superlinear in practice).
 */
const MAX_HTML_TO_TEXT_CHARS = 1024 * 1024;

export function emptyHeaders(): MessageHeaders {
  return {
    messageId: null,
    date: null,
    subject: null,
    from: [],
    to: [],
    cc: [],
    replyTo: [],
    inReplyTo: null,
    references: [],
    deliveredTo: [],
  };
}

/** Splitter chunk fields we read in the depth/text hook (see {@link installChunkHook}). */
interface SplitterChunk {
  type?: unknown;
  value?: unknown;
  contentType?: unknown;
  disposition?: unknown;
  root?: unknown;
  parentNode?: unknown;
  charset?: unknown;
  /** mailsplit's parsed Content-Type: `{ value, params }`. */
  _parsedContentType?: unknown;
}

type ProcessChunk = (data: SplitterChunk, done: (err?: Error | null) => void) => void;

/** mailparser treats these inline leaf types as body text, not attachments (createNode()). */
const TEXT_TYPES = new Set(["text/plain", "text/html", "message/delivery-status"]);

/** Parser failure raised by one of our own limits. */
class LimitError extends MailIngestError {
  constructor(message: string) {
    super(ErrorCode.MIME_LIMIT, message);
  }
}

/** A deferred that settles once; `promise` never rejects. */
function signal(): { promise: Promise<void>; fire: () => void; fired: () => boolean } {
  let fire: () => void = () => undefined;
  let fired = false;
  const promise = new Promise<void>((resolve) => {
    fire = () => {
      fired = true;
      resolve();
    };
  });
  return { promise, fire, fired: () => fired };
}

/** Pass-through that hashes and counts what it forwards. */
class HashTap extends Transform {
  readonly hash = createHash("sha256");
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
}

/**
 * Loads the MIME parser now, if it is not loaded yet, so that the first parse does not wait for
 * it. Never throws: a load failure surfaces in the parse that needs it.
 */
export function prepareParser(): void {
  mailparser().catch(() => {});
}

export async function parseMessage(
  source: Readable,
  store: ObjectStore,
  partsPrefix: string,
  limits?: Partial<ParseLimits>,
): Promise<ParsedMessage> {
  const lim: ParseLimits = { ...DEFAULT_PARSE_LIMITS, ...limits };
  const result: ParsedMessage = { headers: emptyHeaders(), attachments: [], headerList: [] };
  const extraction: Extraction = {
    store,
    prefix: partsPrefix.endsWith("/") ? partsPrefix : `${partsPrefix}/`,
    limits: lim,
    attachments: result.attachments,
    next: 0,
    onTruncated: () => {
      result.truncated = true;
    },
    parseInner: (inner, depth, parent) =>
      parseEntity(
        inner,
        extraction,
        lim,
        { headers: emptyHeaders(), attachments: [], headerList: [] },
        {
          depth,
          parent,
        },
      ),
  };
  return parseEntity(source, extraction, lim, result, undefined);
}

/** Where an inner message (a message/rfc822 container's content) sits. */
interface InnerPosition {
  /** Containers around it: 1 for a message attached to the top-level message. */
  depth: number;
  /** Index of its container entry. */
  parent: number;
}

/**
 * One MIME parse: the top-level message (`inner` undefined), whose text bodies and headers make
 * the result, or an inner message, whose attachments join the shared list with `extractedFrom`
 * and whose bodies are not kept (they stay in the container's stored `.eml`).
 */
async function parseEntity(
  source: Readable,
  extraction: Extraction,
  lim: ParseLimits,
  result: ParsedMessage,
  inner: InnerPosition | undefined,
): Promise<ParsedMessage> {
  const depth = inner?.depth ?? 0;
  const extractedFrom: ExtractedFrom | undefined =
    inner === undefined ? undefined : { index: inner.parent, kind: "message/rfc822" };

  const { MailParser } = await mailparser();
  const parser = new MailParser({
    // Every message/rfc822 part is a leaf attachment, whatever its disposition: it is stored as
    // `.eml` and opened by nested.ts, instead of mailparser merging an inline one's text into
    // the outer body and flattening its attachments.
    ignoreEmbedded: true,
    maxHeadSize: lim.maxHeaderBytes,
    // mailsplit counts the root too and fails once the count exceeds maxChildNodes.
    maxChildNodes: lim.maxParts,
    // We hash what we store ourselves; mailparser's md5 would be wasted work.
    checksumAlgo: false,
    skipTextToHtml: true,
    skipTextLinks: true,
    skipImageLinks: true,
    maxHtmlLengthToParse: MAX_HTML_TO_TEXT_CHARS,
  });

  /** First parser failure (content problem). */
  let parserError: Error | undefined;
  /** First store failure; makes parseMessage reject once the source is drained. */
  let storeError: unknown;
  /** The source stream's own failure; rethrown as is. */
  let sourceError: unknown;
  /** Fires when nothing more should be written to the parser. */
  const stopFeeding = signal();
  /** The attachment being stored, destroyed if the parse is abandoned mid-stream. */
  let inFlight: HashTap | undefined;

  const abandon = (err: Error): void => {
    stopFeeding.fire();
    inFlight?.destroy(err);
  };

  parser.on("error", (err: Error) => {
    parserError ??= err;
    abandon(err);
  });

  /** What the MIME structure declares about signing and encryption. */
  const security: Security = {};
  /** Declared charsets of the first inline text/plain and text/html parts. */
  const charsets: { text?: string; html?: string } = {};
  installChunkHook(
    parser,
    lim,
    inner === undefined,
    () => {
      result.truncated = true;
    },
    (node) => noteNode(node, security, charsets),
  );

  /** A failure mapping headers to the queue schema; the parse goes on without those fields. */
  let headerError: unknown;
  // The listeners run inside mailparser's processing; a throw there would be uncaught.
  parser.on("headers", (headers: Headers) => {
    try {
      extractHeaders(headers, result.headers);
    } catch (err) {
      headerError ??= err;
    }
  });
  parser.on("headerLines", (lines: HeaderLines) => {
    try {
      extractRawHeaders(lines, result);
    } catch (err) {
      headerError ??= err;
    }
  });

  const consumed = consume();
  try {
    await feed();
  } catch (err) {
    sourceError = err;
    abandon(err instanceof Error ? err : new Error(describeError(err)));
    // The message is incomplete: stop the parser so `consume` sees it close.
    parser.destroy();
  }
  await consumed;

  if (sourceError !== undefined) throw sourceError;
  if (storeError !== undefined) {
    if (isMailIngestError(storeError)) throw storeError;
    throw new MailIngestError(
      ErrorCode.STORE_FAILED,
      `Storing message parts failed: ${describeError(storeError)}`,
      {
        cause: storeError,
      },
    );
  }
  if (security.signed !== undefined || security.encrypted !== undefined) result.security = security;
  if (parserError !== undefined) {
    const code = isMailIngestError(parserError) ? parserError.code : maxLenCode(parserError);
    if (code === ErrorCode.MIME_LIMIT) result.truncated = true;
    result.parseError = `${code}: ${describeError(parserError)}`;
  } else if (headerError !== undefined) {
    result.parseError = `${ErrorCode.PARSE_FAILED}: headers: ${describeError(headerError)}`;
  }
  return result;

  /** Reads `source` to its end, writing to the parser until it fails or no longer wants data. */
  async function feed(): Promise<void> {
    for await (const chunk of source) {
      if (stopFeeding.fired()) continue;
      const buf: Buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      if (!parser.write(buf)) {
        await Promise.race([
          new Promise<void>((resolve) => parser.once("drain", resolve)),
          stopFeeding.promise,
        ]);
      }
    }
    if (!stopFeeding.fired()) parser.end();
  }

  /** Reads the parser's objects: attachments to the store, then the text bodies. */
  async function consume(): Promise<void> {
    const finished = new Promise<void>((resolve) => {
      parser.once("end", resolve);
      parser.once("close", resolve);
      parser.once("error", () => resolve());
    });
    const queue: Array<AttachmentStream | MessageText> = [];
    let wake: (() => void) | undefined;
    parser.on("readable", () => {
      let item = parser.read();
      while (item !== null) {
        queue.push(item);
        item = parser.read();
      }
      wake?.();
    });
    let done = false;
    void finished.then(() => {
      done = true;
      wake?.();
    });
    for (;;) {
      const item = queue.shift();
      if (item === undefined) {
        if (done) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      if (item.type === "attachment") {
        await storeAttachment(item);
      } else if (inner === undefined && storeError === undefined && parserError === undefined) {
        await storeBodies(item).catch(onStoreError);
      }
    }
  }

  async function storeAttachment(attachment: AttachmentStream): Promise<void> {
    // A later error event on the content (after we stop listening) must not crash the process.
    attachment.content.on("error", () => undefined);
    if (storeError !== undefined || parserError !== undefined) {
      discard(attachment);
      return;
    }
    const index = allocateIndex(extraction);
    if (index === undefined) {
      result.truncated = true;
      discard(attachment);
      return;
    }
    const ref = attachmentRef(extraction.prefix, index, keyName(attachment));
    const tap = new HashTap();
    inFlight = tap;
    const piping = pipeInto(attachment.content, tap);
    // A store that fails (ENOSPC) destroys `tap` before put() rejects, so piping can reject while
    // nothing awaits it yet; its outcome is read below, never left as an unhandled rejection.
    piping.catch(() => undefined);
    try {
      await extraction.store.put(ref, tap, {
        contentType: safeContentType(attachment.contentType),
      });
      await piping;
      const meta: AttachmentMeta = {
        index,
        filename: attachment.filename ?? null,
        contentType: attachment.contentType || "application/octet-stream",
        size: tap.size,
        sha256: tap.hash.digest("hex"),
        disposition: attachment.contentDisposition === "inline" ? "inline" : "attachment",
        ref,
      };
      if (attachment.cid) meta.contentId = attachment.cid;
      if (extractedFrom !== undefined) meta.extractedFrom = extractedFrom;
      extraction.attachments.push(meta);
      // Opened while the parser waits on this attachment, so what a container holds is listed
      // right after it (document order) and memory stays bounded by one level at a time.
      await expandContainer(extraction, meta, depth);
    } catch (err) {
      tap.destroy();
      await piping.catch(() => undefined);
      // Aborted because the parser failed or the source broke: not a store failure.
      if (parserError === undefined && sourceError === undefined) onStoreError(err);
    } finally {
      inFlight = undefined;
      attachment.content.resume();
      attachment.release?.();
    }
  }

  async function storeBodies(item: MessageText): Promise<void> {
    if (typeof item.text === "string" && item.text.length > 0) {
      result.text = await storeBody(item.text, "body.txt", "text/plain", charsets.text);
      result.textPreview = preview(item.text, lim.previewBytes);
      const reply = textReply(item.text);
      if (reply !== undefined) result.textReply = reply;
    }
    if (typeof item.html === "string" && item.html.length > 0) {
      result.html = await storeBody(item.html, "body.html", "text/html", charsets.html);
    }
  }

  /** Inline when small (no object stored), else stored at `{prefix}{name}` as UTF-8. */
  async function storeBody(
    body: string,
    name: string,
    type: string,
    charset: string | undefined,
  ): Promise<BodyPart> {
    const size = Buffer.byteLength(body, "utf8");
    const part: BodyPart = { size };
    if (charset !== undefined) part.charset = charset;
    if (size <= INLINE_BODY_BYTES) {
      part.content = body;
      return part;
    }
    const ref = `${extraction.prefix}${name}`;
    await extraction.store.put(ref, Readable.from(utf8Chunks(body)), {
      contentType: `${type}; charset=utf-8`,
    });
    part.ref = ref;
    return part;
  }

  function onStoreError(err: unknown): void {
    storeError ??= err;
    stopFeeding.fire();
    parser.destroy();
  }
}

/** The name an attachment's key is made from: an inner message's always ends in `.eml`. */
function keyName(attachment: AttachmentStream): string | undefined {
  const name = attachment.filename;
  if (!RFC822_TYPES.has(attachment.contentType?.toLowerCase() ?? "")) return name;
  return name !== undefined && /\.eml$/i.test(name) ? name : `${name ?? "message"}.eml`;
}

/** Characters of a stored body encoded per chunk (64 Ki UTF-16 units, at most 192 KiB of UTF-8). */
const BODY_CHUNK_CHARS = 64 * 1024;

/**
 * `text` as UTF-8 chunks, so storing a body of up to 16 MiB does not make a second whole copy
 * of it. A chunk never ends between the two halves of a surrogate pair.
 */
export function* utf8Chunks(text: string): Generator<Buffer> {
  for (let start = 0; start < text.length; ) {
    let end = Math.min(start + BODY_CHUNK_CHARS, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;

    yield Buffer.from(text.slice(start, end), "utf8");
    start = end;
  }
}

/** Lets the parser move past an attachment we do not store. */
function discard(attachment: AttachmentStream): void {
  attachment.content.on("error", () => undefined);
  attachment.content.resume();
  attachment.release?.();
}

/** mailsplit reports its size limits (parts, header bytes) as EMAXLEN. */
function maxLenCode(err: Error): ErrorCode {
  return Reflect.get(err, "code") === "EMAXLEN" ? ErrorCode.MIME_LIMIT : ErrorCode.PARSE_FAILED;
}

/**
 * Wraps mailparser's per-chunk step to enforce what its options cannot: nesting depth, and a cap
 * on the text bytes it buffers. The hook relies on mailparser's internal `processChunk(data,
 * done)`; if a future version drops it, this throws rather than silently losing the limits (the
 * deep-nesting test guards the regression).
 */
function installChunkHook(
  parser: MailParser,
  lim: ParseLimits,
  keepText: boolean,
  onTrim: () => void,
  onNode: (node: SplitterChunk) => void,
): void {
  const original: unknown = Reflect.get(parser, "processChunk");
  if (typeof original !== "function") {
    throw new MailIngestError(
      ErrorCode.PARSE_FAILED,
      "Unsupported mailparser version: MailParser.processChunk is missing",
    );
  }
  const call: ProcessChunk = (data, done) => Reflect.apply(original, parser, [data, done]);
  let textBytes = 0;
  let inText = false;
  const hook: ProcessChunk = (data, done) => {
    if (data.type === "node") {
      const depth = depthOf(data, lim.maxDepth + 1);
      if (depth > lim.maxDepth) {
        done(new LimitError(`MIME nesting deeper than ${lim.maxDepth} levels`));
        return;
      }
      inText = isInlineText(data);
      onNode(data);
    } else if (data.type === "body" && inText && Buffer.isBuffer(data.value)) {
      // An inner message's bodies are not kept (its `.eml` holds them): not buffered at all.
      if (!keepText) {
        setImmediate(done);
        return;
      }
      const value: Buffer = data.value;
      const room = lim.maxTextBytes - textBytes;
      if (value.length > room) {
        onTrim();
        if (room <= 0) {
          setImmediate(done);
          return;
        }
        data.value = value.subarray(0, room);
      }
      textBytes += Math.min(value.length, room);
    }
    call(data, done);
  };
  Reflect.set(parser, "processChunk", hook);
}

/** Ancestors of a splitter node, counted up to `cap` so hostile depth costs O(cap). */
function depthOf(node: SplitterChunk, cap: number): number {
  let depth = 0;
  let current: unknown = node.parentNode;
  while (typeof current === "object" && current !== null && depth < cap) {
    depth++;
    current = Reflect.get(current, "parentNode");
  }
  return depth;
}

/**
 * Notes what one MIME node declares: signing and encryption, and the charset of the first text and
 * HTML body parts. Nodes inside an attached message (message/rfc822) describe that message, not
 * this one, and are skipped.
 */
function noteNode(
  node: SplitterChunk,
  security: Security,
  charsets: { text?: string; html?: string },
): void {
  const contentType = typeof node.contentType === "string" ? node.contentType : "";
  if (contentType === "" || insideAttachedMessage(node)) return;
  noteSecurity(security, contentType, contentTypeParams(node));
  if (!isInlineText(node)) return;
  const charset =
    typeof node.charset === "string" && node.charset.trim() !== ""
      ? node.charset.trim().toLowerCase()
      : undefined;
  if (contentType === "text/html") {
    if (!("html" in charsets)) charsets.html = charset;
  } else if (!("text" in charsets)) {
    charsets.text = charset;
  }
}

/** Whether a message/rfc822 part encloses `node` (ancestors counted up to the depth limit). */
function insideAttachedMessage(node: SplitterChunk): boolean {
  let current: unknown = node.parentNode;
  for (let depth = 0; typeof current === "object" && current !== null && depth < 64; depth++) {
    if (Reflect.get(current, "contentType") === "message/rfc822") return true;
    current = Reflect.get(current, "parentNode");
  }
  return false;
}

/** The node's Content-Type parameters (mailsplit lower-cases their names), string values only. */
function contentTypeParams(node: SplitterChunk): Record<string, string> {
  const parsed = node._parsedContentType;
  const params: unknown =
    typeof parsed === "object" && parsed !== null ? Reflect.get(parsed, "params") : undefined;
  const out: Record<string, string> = Object.create(null);
  if (typeof params !== "object" || params === null) return out;
  for (const [name, value] of Object.entries(params)) {
    if (typeof value === "string") out[name.toLowerCase()] = value;
  }
  return out;
}

/** Mirrors mailparser's createNode(): an inline (or undisposed) text leaf is buffered as text. */
function isInlineText(node: SplitterChunk): boolean {
  const contentType =
    typeof node.contentType === "string" && node.contentType !== ""
      ? node.contentType
      : node.root === true
        ? "text/plain"
        : "";
  if (!TEXT_TYPES.has(contentType)) return false;
  return !node.disposition || node.disposition === "inline";
}

/** A Content-Type safe to hand to the store (it becomes an HTTP header on S3). */
function safeContentType(value: string | undefined): string {
  return value &&
    /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i.test(value)
    ? value
    : "application/octet-stream";
}

function extractHeaders(headers: Headers, out: MessageHeaders): void {
  const messageId = headers.get("message-id");
  if (typeof messageId === "string") out.messageId = messageId;
  const subject = headers.get("subject");
  if (typeof subject === "string") out.subject = subject;
  const inReplyTo = headers.get("in-reply-to");
  if (typeof inReplyTo === "string") out.inReplyTo = inReplyTo;
  const references = headers.get("references");
  if (typeof references === "string") out.references = [references];
  else if (Array.isArray(references)) {
    out.references = references.filter((r): r is string => typeof r === "string");
  }
  out.from = addresses(headers.get("from"));
  out.to = addresses(headers.get("to"));
  out.cc = addresses(headers.get("cc"));
  out.replyTo = addresses(headers.get("reply-to"));
}

/** Flattens address headers (groups included, RFC 5322 §3.4) into mailboxes with an address. */
function addresses(value: unknown): Address[] {
  const out: Address[] = [];
  const objects = Array.isArray(value) ? value : [value];
  for (const object of objects) {
    if (!isAddressObject(object)) continue;
    collect(object.value, out, 0);
  }
  return out;
}

function collect(list: readonly EmailAddress[], out: Address[], depth: number): void {
  for (const entry of list) {
    if (Array.isArray(entry.group) && depth < 4) collect(entry.group, out, depth + 1);
    if (typeof entry.address !== "string" || entry.address === "") continue;
    const address: Address = { address: entry.address };
    if (typeof entry.name === "string" && entry.name !== "") address.name = entry.name;
    out.push(address);
  }
}

function isAddressObject(value: unknown): value is AddressObject {
  return typeof value === "object" && value !== null && Array.isArray(Reflect.get(value, "value"));
}

/** Headers mailparser does not parse the way the queue schema needs them, read from the raw lines. */
function extractRawHeaders(lines: HeaderLines, out: ParsedMessage): void {
  const auth: string[] = [];
  const delivered: string[] = [];
  const spam: SpamHeaders = {};
  let date: string | undefined;
  let listId: string | undefined;
  let autoSubmitted: string | undefined;
  for (const { key, line } of lines) {
    if (key === "authentication-results") auth.push(fieldValue(line));
    else if (key === "date") date ??= fieldValue(line);
    else if (key === "list-id") listId ??= fieldValue(line);
    else if (key === "auto-submitted") autoSubmitted ??= fieldValue(line);
    else if (DELIVERED_TO_FIELDS.has(key)) delivered.push(fieldValue(line));
    else if (isSpamField(key)) spam[key] ??= fieldValue(line);
  }
  out.headers.date = date === undefined ? null : isoDate(date);
  if (listId !== undefined) {
    const id = parseListId(listId);
    if (id !== undefined) out.headers.listId = id;
  }
  if (autoSubmitted !== undefined) {
    const keyword = autoSubmitted.split(/[;(\s]/, 1)[0]?.toLowerCase();
    if (keyword) out.headers.autoSubmitted = keyword;
  }
  out.headers.deliveredTo = deliveredTo(delivered);
  const verdict = spamVerdict(spam);
  if (verdict !== undefined) out.spam = verdict;
  const authResults = parseAuthResults(auth);
  if (authResults !== undefined) out.authResults = authResults;
  const list = headerList(lines);
  out.headerList = list.fields;
  if (list.truncated) out.headerListTruncated = true;
}

/** The unfolded value of a raw `Name: value` line (RFC 5322 §2.2.3). */
function fieldValue(line: string): string {
  const colon = line.indexOf(":");
  return line
    .slice(colon + 1)
    .replace(/\r?\n(?=[ \t])/g, "")
    .trim();
}

/**
 * The Date header as an ISO instant, or null when it does not parse (mailparser substitutes the
 * current time, which would be a lie in the metadata). Years outside 0000–9999 are rejected so
 * the result is a valid RFC 3339 date-time.
 */
function isoDate(value: string): string | null {
  if (value.length > 256) return null;
  const ms = new Date(value).getTime();
  if (Number.isNaN(ms)) return null;
  const date = new Date(ms);
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) return null;
  return date.toISOString();
}

/** RFC 2919 §3: `[phrase] "<" list-id-namespace ">"`; bare values are kept as given. */
function parseListId(value: string): string | undefined {
  const open = value.lastIndexOf("<");
  const close = value.indexOf(">", open + 1);
  const id = (open >= 0 && close > open ? value.slice(open + 1, close) : value).trim();
  return id === "" ? undefined : id;
}
