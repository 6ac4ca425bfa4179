/**
 * A small, bounded reader of TNEF (`application/ms-tnef`, `winmail.dat`), written from
 * Microsoft's [MS-OXTNEF] and, for the RTF body, [MS-OXRTFCP]. It takes the whole container as
 * one buffer (the caller bounds its size) and returns the files it carries, each a view into that
 * buffer, plus the decompressed RTF body. It does not recurse: an embedded message (attach
 * method 5) comes back as one more TNEF stream for the caller to expand, so the caller's depth
 * bound covers nesting through TNEF as it does through message/rfc822.
 *
 * node-tnef was considered and rejected: it pulls in bunyan and yargs (a logger and a CLI
 * parser), which a Lambda bundle should not carry, and it has no size bounds.
 *
 * Hostile input never throws out of {@link readTnef} other than as a {@link TnefError}; every
 * length is checked against the bytes left before it is used, and counts are capped.
 */

/** The stream signature, little-endian (MS-OXTNEF §2.1.3.1). */
export const TNEF_SIGNATURE = 0x223e9f78;

export interface TnefLimits {
  /** Attributes read from one stream; more stop the read (truncated). @default 10000 */
  maxAttributes: number;
  /** MAPI properties (and values of one multi-valued property) in one list. @default 10000 */
  maxProperties: number;
  /** Files returned from one stream; more are dropped (truncated). @default 1000 */
  maxFiles: number;
  /** Decompressed RTF body bytes; a larger body is cut (truncated). @default 16 MiB */
  maxRtfBytes: number;
}

export const DEFAULT_TNEF_LIMITS: Readonly<TnefLimits> = Object.freeze({
  maxAttributes: 10_000,
  maxProperties: 10_000,
  maxFiles: 1000,
  maxRtfBytes: 16 * 1024 * 1024,
});

export interface TnefFile {
  /** Original name: PR_ATTACH_LONG_FILENAME, else attAttachTitle / PR_ATTACH_FILENAME. */
  filename: string | null;
  /** PR_ATTACH_MIME_TAG when the writer set one. */
  contentType?: string;
  /** The file's bytes (a view into the input). */
  data: Buffer;
  /**
   * True for an embedded message (PR_ATTACH_METHOD 5): `data` is then itself a TNEF stream
   * (MS-OXTNEF §2.1.3.4.1, the object after IID_IMessage).
   */
  embedded?: boolean;
}

export interface TnefContent {
  files: TnefFile[];
  /** The message body from PR_RTF_COMPRESSED, decompressed. */
  rtf?: Buffer;
  /** True when a limit cut the read short; what was read before is returned. */
  truncated?: boolean;
  /** Why the read stopped early on damaged input; what was read before is returned. */
  error?: string;
  /** Attributes whose checksum did not match; their data is used all the same. */
  checksumErrors: number;
}

export class TnefError extends Error {
  override readonly name = "TnefError";
}

// Attribute ids (low 16 bits of the attribute tag, MS-OXTNEF §2.1.3.3). Level 1 is the message,
// level 2 an attachment.
const LVL_MESSAGE = 0x01;
const LVL_ATTACHMENT = 0x02;
const ATT_OEM_CODEPAGE = 0x9007;
const ATT_MSG_PROPS = 0x9003;
const ATT_ATTACH_RENDDATA = 0x9002;
const ATT_ATTACH_DATA = 0x800f;
const ATT_ATTACH_TITLE = 0x8010;
const ATT_ATTACHMENT = 0x9005;

// MAPI property ids ([MS-OXPROPS]).
const PR_RTF_COMPRESSED = 0x1009;
const PR_DISPLAY_NAME = 0x3001;
const PR_ATTACH_DATA = 0x3701;
const PR_ATTACH_FILENAME = 0x3704;
const PR_ATTACH_METHOD = 0x3705;
const PR_ATTACH_LONG_FILENAME = 0x3707;
const PR_ATTACH_MIME_TAG = 0x370e;
const ATTACH_EMBEDDED_MSG = 5;

// Property types ([MS-OXCDATA] §2.11.1).
const PT_STRING8 = 0x001e;
const PT_UNICODE = 0x001f;
const PT_BINARY = 0x0102;
const PT_OBJECT = 0x000d;
const MV_FLAG = 0x1000;
/** Fixed value sizes in the TNEF encoding, where every value is padded to 4 bytes. */
const FIXED_SIZES = new Map<number, number>([
  [0x0000, 4], // PtypUnspecified
  [0x0001, 4], // PtypNull
  [0x0002, 4], // PtypInteger16, padded
  [0x0003, 4], // PtypInteger32
  [0x0004, 4], // PtypFloating32
  [0x0005, 8], // PtypFloating64
  [0x0006, 8], // PtypCurrency
  [0x0007, 8], // PtypFloatingTime
  [0x000a, 4], // PtypErrorCode
  [0x000b, 4], // PtypBoolean, padded
  [0x0014, 8], // PtypInteger64
  [0x0040, 8], // PtypTime
  [0x0048, 16], // PtypGuid
]);
/** Variable-length types: a 4-byte size, the bytes, padding to 4 (MS-OXTNEF §2.1.3.4). */
const VARIABLE_TYPES = new Set([PT_STRING8, PT_UNICODE, PT_BINARY, PT_OBJECT, 0x00fb, 0x00fd]);

/** Bounds-checked little-endian reader over one buffer. */
class Cursor {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  get left(): number {
    return this.end - this.pos;
  }
  need(n: number, what: string): void {
    if (n < 0 || n > this.left) {
      throw new TnefError(`${what} runs past the end (${n} bytes at offset ${this.pos})`);
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf.readUInt8(this.pos++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }
}

/** One MAPI property of interest: its id, type and (first) raw value. */
interface Prop {
  id: number;
  type: number;
  value: Buffer;
}

interface PendingFile {
  title?: string;
  longName?: string;
  shortName?: string;
  displayName?: string;
  mimeTag?: string;
  data?: Buffer;
  object?: Buffer;
  method?: number;
}

/** True when `buf` starts with the TNEF signature. */
export function isTnef(buf: Uint8Array): boolean {
  return (
    buf.length >= 4 && Buffer.from(buf.buffer, buf.byteOffset, 4).readUInt32LE(0) === TNEF_SIGNATURE
  );
}

/**
 * Reads one TNEF stream. Throws {@link TnefError} when the stream is not TNEF or is cut or
 * malformed before anything could be read; damage later on returns what was read before it.
 */
export function readTnef(input: Buffer, limits?: Partial<TnefLimits>): TnefContent {
  const lim: TnefLimits = { ...DEFAULT_TNEF_LIMITS, ...limits };
  const cur = new Cursor(input);
  if (input.length < 6 || cur.u32("signature") !== TNEF_SIGNATURE) {
    throw new TnefError("not a TNEF stream (signature 0x223E9F78 missing)");
  }
  cur.u16("legacy key");
  const out: TnefContent = { files: [], checksumErrors: 0 };
  let codepage = 1252;
  let pending: PendingFile | undefined;
  let rtfCompressed: Buffer | undefined;
  const flush = (): void => {
    if (pending === undefined) return;
    const file = finishFile(pending);
    pending = undefined;
    if (file === undefined) return;
    if (out.files.length >= lim.maxFiles) {
      out.truncated = true;
      return;
    }
    out.files.push(file);
  };

  let attributes = 0;
  try {
    while (cur.left > 0) {
      if (++attributes > lim.maxAttributes) {
        out.truncated = true;
        break;
      }
      const level = cur.u8("attribute level");
      const tag = cur.u32("attribute id");
      const length = cur.u32("attribute length");
      const data = cur.bytes(length, "attribute data");
      const checksum = cur.u16("attribute checksum");
      if (sum16(data) !== checksum) out.checksumErrors++;
      const id = tag & 0xffff;
      if (level === LVL_MESSAGE) {
        if (id === ATT_OEM_CODEPAGE && data.length >= 4) codepage = data.readUInt32LE(0);
        else if (id === ATT_MSG_PROPS) {
          for (const prop of readProps(data, lim)) {
            if (prop.id === PR_RTF_COMPRESSED && prop.type === PT_BINARY)
              rtfCompressed = prop.value;
          }
        }
      } else if (level === LVL_ATTACHMENT) {
        if (id === ATT_ATTACH_RENDDATA) {
          // attAttachRendData opens each attachment (MS-OXTNEF §2.1.3.1, AttachmentAttributes).
          flush();
          pending = {};
          continue;
        }
        pending ??= {};
        if (id === ATT_ATTACH_TITLE) pending.title = decodeString8(data, codepage);
        else if (id === ATT_ATTACH_DATA) pending.data = data;
        else if (id === ATT_ATTACHMENT)
          applyAttachmentProps(pending, readProps(data, lim), codepage);
      } else {
        throw new TnefError(`unknown attribute level ${level}`);
      }
    }
  } catch (err) {
    if (!(err instanceof TnefError)) throw err;
    // Damage after some attributes were read: keep what came before and say why it stopped.
    if (attributes <= 1) throw err;
    out.error = err.message;
  }
  flush();
  if (rtfCompressed !== undefined) {
    try {
      const { rtf, truncated } = decompressRtf(rtfCompressed, lim.maxRtfBytes);
      out.rtf = rtf;
      if (truncated) out.truncated = true;
    } catch (err) {
      if (!(err instanceof TnefError)) throw err;
      out.error ??= `RTF body: ${err.message}`;
    }
  }
  return out;
}

function applyAttachmentProps(file: PendingFile, props: Prop[], codepage: number): void {
  for (const prop of props) {
    const text = (): string | undefined => propString(prop, codepage);
    switch (prop.id) {
      case PR_ATTACH_LONG_FILENAME:
        file.longName = text();
        break;
      case PR_ATTACH_FILENAME:
        file.shortName = text();
        break;
      case PR_DISPLAY_NAME:
        file.displayName = text();
        break;
      case PR_ATTACH_MIME_TAG:
        file.mimeTag = text();
        break;
      case PR_ATTACH_METHOD:
        if (prop.value.length >= 4) file.method = prop.value.readUInt32LE(0);
        break;
      case PR_ATTACH_DATA:
        if (prop.type === PT_OBJECT) file.object = prop.value;
        else if (prop.type === PT_BINARY) file.data ??= prop.value;
        break;
    }
  }
}

function finishFile(file: PendingFile): TnefFile | undefined {
  const contentType = file.mimeTag?.trim() ? file.mimeTag.trim() : undefined;
  if (file.method === ATTACH_EMBEDDED_MSG && file.object !== undefined) {
    // PtypObject data starts with the interface id (16 bytes, IID_IMessage); the embedded
    // message follows as a TNEF stream of its own.
    const inner = file.object.subarray(16);
    const name = file.displayName ?? file.title ?? null;
    return { filename: name, data: inner, embedded: true, contentType: "application/ms-tnef" };
  }
  const data = file.data ?? file.object;
  if (data === undefined) return undefined;
  const filename =
    nonEmpty(file.longName) ?? nonEmpty(file.title) ?? nonEmpty(file.shortName) ?? null;
  return contentType === undefined ? { filename, data } : { filename, data, contentType };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== "" ? value : undefined;
}

/**
 * A MAPI property list (MS-OXTNEF §2.1.3.4): a count, then per property its type and id, a
 * name for named properties (id ≥ 0x8000), and its value(s). Only the first value of a
 * multi-valued property is kept; nothing this reader uses is multi-valued.
 */
function readProps(data: Buffer, lim: TnefLimits): Prop[] {
  const cur = new Cursor(data);
  const count = cur.u32("property count");
  if (count > lim.maxProperties) throw new TnefError(`${count} MAPI properties in one list`);
  const props: Prop[] = [];
  for (let i = 0; i < count; i++) {
    const type = cur.u16("property type");
    const id = cur.u16("property id");
    if (id >= 0x8000) {
      cur.skip(16, "property set GUID");
      const kind = cur.u32("property name kind");
      if (kind === 0) cur.skip(4, "property name id");
      else if (kind === 1) {
        const length = cur.u32("property name length");
        cur.skip(pad4(length), "property name");
      } else throw new TnefError(`property name kind ${kind}`);
    }
    const base = type & ~MV_FLAG;
    const multi = (type & MV_FLAG) !== 0;
    const fixed = FIXED_SIZES.get(base);
    let values = 1;
    // Variable-length values always carry a count, single-valued ones too; fixed-size values
    // carry one only when multi-valued.
    if (multi || fixed === undefined) values = cur.u32("value count");
    if (values > lim.maxProperties) throw new TnefError(`${values} values in one property`);
    let first: Buffer | undefined;
    for (let v = 0; v < values; v++) {
      let value: Buffer;
      if (fixed !== undefined) value = cur.bytes(fixed, "property value");
      else if (VARIABLE_TYPES.has(base)) {
        const size = cur.u32("value size");
        value = cur.bytes(size, "property value");
        cur.skip(Math.min(pad4(size) - size, cur.left), "value padding");
      } else throw new TnefError(`unknown property type 0x${base.toString(16)}`);
      first ??= value;
    }
    props.push({ id, type: base, value: first ?? Buffer.alloc(0) });
  }
  return props;
}

function propString(prop: Prop, codepage: number): string | undefined {
  if (prop.type === PT_UNICODE) return stripNul(prop.value.toString("utf16le"));
  if (prop.type === PT_STRING8) return decodeString8(prop.value, codepage);
  return undefined;
}

/** An 8-bit string in the stream's code page (attOemCodepage), NUL-terminated. */
function decodeString8(data: Buffer, codepage: number): string {
  const end = data.indexOf(0);
  const bytes = end >= 0 ? data.subarray(0, end) : data;
  try {
    return new TextDecoder(codepage === 65001 ? "utf-8" : `windows-${codepage}`).decode(bytes);
  } catch {
    return bytes.toString("latin1");
  }
}

function stripNul(text: string): string {
  const end = text.indexOf("\0");
  return end >= 0 ? text.slice(0, end) : text;
}

function pad4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

/** The TNEF attribute checksum: the sum of the data bytes, modulo 65536 (§2.1.3.2). */
function sum16(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum = (sum + (data[i] ?? 0)) & 0xffff;
  return sum;
}

/** [MS-OXRTFCP] §2.1.3.1.1: the dictionary's initial contents (207 bytes). */
const RTF_PREBUF = Buffer.from(
  "{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern " +
    "\\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0" +
    "\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx",
  "latin1",
);
const COMPRESSED = 0x75465a4c; // "LZFu"
const UNCOMPRESSED = 0x414c454d; // "MELA"

/**
 * Decompresses PR_RTF_COMPRESSED ([MS-OXRTFCP] §2.1.3.1): a 16-byte header (compressed size,
 * raw size, compression type, CRC), then LZ77 runs over a 4096-byte ring dictionary. Output is
 * capped at `maxBytes` and at the header's raw size. The CRC is not checked: a wrong CRC with a
 * clean decompression is still the best body there is.
 */
export function decompressRtf(
  input: Buffer,
  maxBytes: number,
): { rtf: Buffer; truncated: boolean } {
  const cur = new Cursor(input);
  const compSize = cur.u32("RTF compressed size");
  const rawSize = cur.u32("RTF raw size");
  const type = cur.u32("RTF compression type");
  cur.u32("RTF CRC");
  const limit = Math.min(rawSize, maxBytes);
  const truncated = rawSize > maxBytes;
  // COMPSIZE counts the bytes after its own field; trust it only as far as the buffer goes.
  const end = Math.min(input.length, 4 + compSize);
  if (type === UNCOMPRESSED) {
    return { rtf: Buffer.from(input.subarray(16, Math.min(end, 16 + limit))), truncated };
  }
  if (type !== COMPRESSED) throw new TnefError(`unknown RTF compression 0x${type.toString(16)}`);
  if (RTF_PREBUF.length !== 207) throw new TnefError("RTF dictionary prefix is not 207 bytes");
  // Each control byte and its 8 items (at most 17 input bytes) yield at most 8 × 17 bytes, so a
  // small input claiming a huge raw size cannot make us allocate it.
  const out = Buffer.alloc(Math.min(limit, Math.max(0, end - 16) * 8));
  const dict = Buffer.alloc(4096);
  RTF_PREBUF.copy(dict);
  let write = RTF_PREBUF.length;
  let produced = 0;
  let pos = 16;
  while (pos < end && produced < out.length) {
    const control = input[pos++] ?? 0;
    for (let bit = 0; bit < 8 && produced < out.length; bit++) {
      if (pos >= end) break;
      if ((control & (1 << bit)) === 0) {
        const byte = input[pos++] ?? 0;
        out[produced++] = byte;
        dict[write] = byte;
        write = (write + 1) & 0xfff;
        continue;
      }
      if (pos + 1 >= end) return { rtf: out.subarray(0, produced), truncated: true };
      const ref = ((input[pos] ?? 0) << 8) | (input[pos + 1] ?? 0);
      pos += 2;
      const offset = ref >> 4;
      const length = (ref & 0xf) + 2;
      // A reference to the write position itself marks the end (§2.1.3.1.4).
      if (offset === write) return { rtf: out.subarray(0, produced), truncated };
      for (let i = 0; i < length && produced < out.length; i++) {
        const byte = dict[(offset + i) & 0xfff] ?? 0;
        out[produced++] = byte;
        dict[write] = byte;
        write = (write + 1) & 0xfff;
      }
    }
  }
  return { rtf: out.subarray(0, produced), truncated };
}
