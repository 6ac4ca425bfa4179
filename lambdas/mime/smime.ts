/**
 * Unwraps opaque-signed S/MIME (`application/pkcs7-mime; smime-type=signed-data`, `smime.p7m`):
 * the CMS ContentInfo (RFC 5652 §3) holds a SignedData (§5.1) whose encapContentInfo carries the
 * signed MIME entity as eContent. A minimal, bounded BER/DER reader finds it; nothing else of
 * the structure is interpreted. **The signature is not verified**: the content is extracted so
 * consumers can see what the sender signed, not as proof that they did.
 *
 * BER matters, not only DER: `openssl smime -sign -stream` and Outlook write indefinite lengths
 * and eContent as a constructed OCTET STRING in chunks (X.690 §8.7.3), so both are read.
 * Enveloped data (encrypted) is recognised and reported, never decrypted.
 */

export class SmimeError extends Error {
  override readonly name = "SmimeError";
}

export type CmsContent =
  /** SignedData with its eContent (opaque-signed); `content` is the signed MIME entity. */
  | { readonly type: "signed-data"; readonly content: Buffer }
  /** SignedData without eContent: a detached signature (the content is elsewhere). */
  | { readonly type: "signed-detached" }
  /** EnvelopedData or AuthEnvelopedData: encrypted, left as it is. */
  | { readonly type: "enveloped-data" }
  /** Any other CMS content type (compressed data, ...). */
  | { readonly type: "other"; readonly oid: string };

export interface SmimeLimits {
  /** Deepest BER nesting read. @default 32 */
  maxDepth: number;
  /** Largest eContent returned, in bytes; larger is an error. @default 64 MiB */
  maxContentBytes: number;
}

export const DEFAULT_SMIME_LIMITS: Readonly<SmimeLimits> = Object.freeze({
  maxDepth: 32,
  maxContentBytes: 64 * 1024 * 1024,
});

const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3";
const OID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23";

const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_SEQUENCE = 0x30;
const TAG_CONTEXT_0 = 0xa0;
const CONSTRUCTED = 0x20;

/** One BER element: its tag byte and where its contents lie in the buffer. */
interface Tlv {
  readonly tag: number;
  /** First content byte. */
  readonly start: number;
  /** One past the last content byte (before the end-of-contents octets, if indefinite). */
  readonly end: number;
  /** First byte after the element. */
  readonly next: number;
}

class Reader {
  constructor(
    readonly buf: Buffer,
    readonly lim: SmimeLimits,
  ) {}

  /** The element at `pos`, which must end by `limit` (X.690 §8.1). */
  tlv(pos: number, limit: number, depth: number): Tlv {
    if (depth > this.lim.maxDepth)
      throw new SmimeError(`BER nested deeper than ${this.lim.maxDepth}`);
    if (pos + 2 > limit) throw new SmimeError(`BER element cut at offset ${pos}`);
    const tag = this.buf[pos] ?? 0;
    // High tag numbers (§8.1.2.4) never occur in the CMS structures read here.
    if ((tag & 0x1f) === 0x1f) throw new SmimeError(`BER high tag number at offset ${pos}`);
    const first = this.buf[pos + 1] ?? 0;
    let start = pos + 2;
    if (first === 0x80) {
      // Indefinite length (§8.1.3.6): constructed only, ends with two zero octets.
      if ((tag & CONSTRUCTED) === 0) throw new SmimeError(`indefinite primitive at offset ${pos}`);
      let p = start;
      for (;;) {
        if (p + 2 > limit) throw new SmimeError(`BER end-of-contents missing after offset ${pos}`);
        if (this.buf[p] === 0 && this.buf[p + 1] === 0) break;
        p = this.tlv(p, limit, depth + 1).next;
      }
      return { tag, start, end: p, next: p + 2 };
    }
    let length = first;
    if (first & 0x80) {
      const octets = first & 0x7f;
      // Four length octets address 4 GiB, more than any message we accept.
      if (octets > 4) throw new SmimeError(`BER length of ${octets} octets at offset ${pos}`);
      if (start + octets > limit) throw new SmimeError(`BER length cut at offset ${pos}`);
      length = 0;
      for (let i = 0; i < octets; i++) length = length * 256 + (this.buf[start + i] ?? 0);
      start += octets;
    }
    if (start + length > limit)
      throw new SmimeError(`BER element at offset ${pos} runs past its end`);
    return { tag, start, end: start + length, next: start + length };
  }

  /** The elements inside a constructed element, in order. */
  children(parent: Tlv, depth: number): Tlv[] {
    const out: Tlv[] = [];
    for (let p = parent.start; p < parent.end; ) {
      const child = this.tlv(p, parent.end, depth + 1);
      out.push(child);
      p = child.next;
    }
    return out;
  }

  /** An OCTET STRING's bytes; a constructed one (§8.7.3.2) is the concatenation of its parts. */
  octets(el: Tlv, depth: number, parts: Buffer[], total: { bytes: number }): void {
    if (el.tag === TAG_OCTET_STRING) {
      total.bytes += el.end - el.start;
      if (total.bytes > this.lim.maxContentBytes) {
        throw new SmimeError(`signed content larger than ${this.lim.maxContentBytes} bytes`);
      }
      parts.push(this.buf.subarray(el.start, el.end));
      return;
    }
    if (el.tag !== (TAG_OCTET_STRING | CONSTRUCTED)) {
      throw new SmimeError(`expected OCTET STRING, found tag 0x${el.tag.toString(16)}`);
    }
    for (const child of this.children(el, depth)) this.octets(child, depth + 1, parts, total);
  }

  oid(el: Tlv): string {
    if (el.tag !== TAG_OID)
      throw new SmimeError(`expected OID, found tag 0x${el.tag.toString(16)}`);
    return decodeOid(this.buf.subarray(el.start, el.end));
  }
}

/** Reads a CMS ContentInfo and, for SignedData, returns its encapsulated content. */
export function readCms(input: Buffer, limits?: Partial<SmimeLimits>): CmsContent {
  const lim: SmimeLimits = { ...DEFAULT_SMIME_LIMITS, ...limits };
  const r = new Reader(input, lim);
  const contentInfo = want(r.tlv(0, input.length, 0), TAG_SEQUENCE, "ContentInfo");
  const [typeEl, wrapped] = r.children(contentInfo, 0);
  if (typeEl === undefined) throw new SmimeError("ContentInfo is empty");
  const oid = r.oid(typeEl);
  if (oid === OID_ENVELOPED_DATA || oid === OID_AUTH_ENVELOPED_DATA)
    return { type: "enveloped-data" };
  if (oid !== OID_SIGNED_DATA) return { type: "other", oid };
  if (wrapped === undefined) throw new SmimeError("SignedData content missing");
  const [signedData] = r.children(want(wrapped, TAG_CONTEXT_0, "ContentInfo content"), 1);
  if (signedData === undefined) throw new SmimeError("SignedData missing");
  // SignedData: version, digestAlgorithms, encapContentInfo, ... (RFC 5652 §5.1).
  const fields = r.children(want(signedData, TAG_SEQUENCE, "SignedData"), 2);
  const encap = fields[2];
  if (encap === undefined) throw new SmimeError("encapContentInfo missing");
  const [, eContent] = r.children(want(encap, TAG_SEQUENCE, "encapContentInfo"), 3);
  if (eContent === undefined) return { type: "signed-detached" };
  const [octetString] = r.children(want(eContent, TAG_CONTEXT_0, "eContent"), 4);
  if (octetString === undefined) return { type: "signed-detached" };
  const parts: Buffer[] = [];
  r.octets(octetString, 5, parts, { bytes: 0 });
  return {
    type: "signed-data",
    content: parts.length === 1 && parts[0] ? parts[0] : Buffer.concat(parts),
  };
}

function want(el: Tlv, tag: number, what: string): Tlv {
  // A constructed [0] may come with or without the constructed bit only as 0xa0; SEQUENCE is 0x30.
  if (el.tag !== tag)
    throw new SmimeError(
      `${what}: expected tag 0x${tag.toString(16)}, found 0x${el.tag.toString(16)}`,
    );
  return el;
}

/** X.690 §8.19: first octet packs the first two arcs, then base-128 arcs. */
function decodeOid(bytes: Buffer): string {
  if (bytes.length === 0 || bytes.length > 64) throw new SmimeError("bad OID length");
  const arcs: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        arcs.push(first, value - first * 40);
      } else arcs.push(value);
      value = 0;
    }
  }
  return arcs.join(".");
}
