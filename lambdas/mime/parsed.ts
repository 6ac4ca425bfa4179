/**
 * What the MIME parser yields for one message: its headers, body and attachment references,
 * Authentication-Results and any parse error. These are the content fields of the queue message
 * (`lambdas/message/schema.ts`, schema v2 in `schema/queue-message.v2.json`), which adds the
 * identity fields around them; they are defined here so that `mime/` depends on nothing in the
 * pipeline, and the pipeline's schema depends on `mime/`.
 */
import type { AuthResults } from "./auth-results.ts";

/** One mailbox (RFC 5322 §3.4). Group syntax is flattened into its members. */
export interface Address {
  /** Display name, decoded (RFC 2047); absent when the header had none. */
  name?: string;
  address: string;
}

export interface MessageHeaders {
  /** Message-ID with angle brackets, or null when absent. */
  messageId: string | null;
  /** Date header as an ISO-8601 instant, or null when absent or unparseable. */
  date: string | null;
  /** Decoded subject, or null when absent. */
  subject: string | null;
  from: Address[];
  to: Address[];
  cc: Address[];
  replyTo: Address[];
  inReplyTo: string | null;
  references: string[];
  /** The list-id-namespace of List-Id (RFC 2919 §2), without angle brackets. */
  listId?: string;
  /** The Auto-Submitted keyword (RFC 3834 §5), lower-cased, e.g. "auto-replied". */
  autoSubmitted?: string;
  /**
   * Addresses from Delivered-To, X-Original-To and Envelope-To, topmost first (the last hop's
   * first), deduplicated ignoring case: which alias or catch-all address received the mail.
   */
  deliveredTo: string[];
}

/** Signing and encryption as the MIME structure declares them (RFC 8551, RFC 3156); never verified. */
export interface Security {
  signed?: "smime" | "pgp";
  encrypted?: "smime" | "pgp";
}

/** Spam verdicts added by filters on the way in. */
export interface SpamVerdict {
  /** SpamAssassin score (X-Spam-Status `score=`, else X-Spam-Score). */
  score?: number;
  /** SpamAssassin verdict (X-Spam-Status `Yes`/`No`, else X-Spam-Flag). */
  flag?: boolean;
  /** Microsoft's spam confidence level, -1 to 9 (X-MS-Exchange-Organization-SCL). */
  scl?: number;
}

/** One header field of the top-level message, as it appears there. */
export interface HeaderField {
  /** The field name as written (original case). */
  name: string;
  /** The value, unfolded (RFC 5322 §2.2.3) and RFC 2047-decoded. */
  value: string;
}

/**
 * A text or HTML body, decoded to UTF-8. At most {@link INLINE_BODY_BYTES} it is carried inline as
 * `content` and nothing is stored for it; a larger body is stored at `ref` and has no `content`.
 */
export interface BodyPart {
  /** UTF-8 bytes of the decoded body. */
  size: number;
  /** The charset the message declared for the part, lower-cased; absent when it declared none. */
  charset?: string;
  /** The body itself, when `size` ≤ {@link INLINE_BODY_BYTES}. */
  content?: string;
  /** Store key (relative to the store root) of the body, when it is too large to carry inline. */
  ref?: string;
}

/** Largest body carried inline (UTF-8 bytes after decoding): 64 KiB. */
export const INLINE_BODY_BYTES = 64 * 1024;

export interface AttachmentMeta {
  /**
   * 0-based position among the message's attachments, in document order: a container comes
   * before the entries extracted from it, and those before the next entry of its parent.
   */
  index: number;
  /**
   * The filename exactly as the message gives it (RFC 2231 / RFC 2047 decoded), or null when it
   * has none. Untrusted: never use it as a path; `ref` is the sanitised key.
   */
  filename: string | null;
  contentType: string;
  size: number;
  /** sha256 of the stored (transfer-decoded) bytes, hex. */
  sha256: string;
  /** Content-ID without angle brackets. */
  contentId?: string;
  disposition: "attachment" | "inline";
  /** Store key of the attachment bytes. */
  ref: string;
  /**
   * Set on an entry found inside another entry (a container): `index` is the container's index,
   * `kind` how it was opened. Containers are listed too, before what they hold (document order).
   */
  extractedFrom?: ExtractedFrom;
  /** On a message/rfc822 container: the inner message's own headers. */
  message?: NestedMessageInfo;
  /**
   * On a container: a bound (nesting depth, attachment count, container size, a limit inside
   * the inner parse) stopped its contents from being fully extracted. The message's own
   * `truncated` is then set too.
   */
  truncated?: boolean;
  /**
   * On a container: why its contents could not be read (malformed TNEF or CMS, an inner MIME
   * parse error), prefixed with its code; what was extracted before is still listed.
   */
  extractError?: string;
}

/** How a container entry was opened. */
export type ContainerKind = "message/rfc822" | "tnef" | "smime";

export interface ExtractedFrom {
  /** `index` of the containing entry. */
  index: number;
  kind: ContainerKind;
}

/** The headers of a forwarded or bounced message (a message/rfc822 container). */
export interface NestedMessageInfo {
  subject: string | null;
  from: Address[];
  /** ISO-8601 instant, or null when absent or unparseable. */
  date: string | null;
  messageId: string | null;
}

/** The content fields of a queue message, as `parseMessage` extracts them. */
export interface ParsedMessage {
  headers: MessageHeaders;
  text?: BodyPart;
  html?: BodyPart;
  /** At most 1024 UTF-8 bytes of the text body, cut on a character boundary. */
  textPreview?: string;
  /**
   * The newest part of the text body, without quoted history and signature, at most 16 KiB
   * (UTF-8); absent when nothing could be separated.
   */
  textReply?: string;
  attachments: AttachmentMeta[];
  authResults?: AuthResults;
  security?: Security;
  /** Absent when the message has none of the spam headers. */
  spam?: SpamVerdict;
  /** Every top-level header field in order, at most 64 KiB in all (names and values, UTF-8). */
  headerList: HeaderField[];
  /** True when `headerList` stopped at its 64 KiB bound; the rest is in the raw message. */
  headerListTruncated?: boolean;
  /**
   * Why parsing stopped early, prefixed with its code (PARSE_FAILED or MIME_LIMIT); what was
   * extracted before is still present.
   */
  parseError?: string;
  /** True when a limit stopped extraction (parts, depth, header size, attachments, text). */
  truncated?: boolean;
}
