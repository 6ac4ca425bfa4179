/**
 * A minimal TNEF writer for tests, following [MS-OXTNEF] (attribute framing, MAPI property
 * lists) and [MS-OXRTFCP] (the RTF header), written apart from `lambdas/mime/tnef.ts` so the
 * reader is checked against the spec rather than against itself. It builds the shapes the one
 * real Outlook file in `test/fixtures/tnef/` lacks: a MIME tag, Unicode long file names,
 * embedded messages, damage and bombs.
 */

const LEVEL_MESSAGE = 1;
const LEVEL_ATTACHMENT = 2;
/** Full attribute tags (type in the high word, id in the low word). */
export const ATT = {
  tnefVersion: 0x00089006,
  oemCodepage: 0x00069007,
  messageClass: 0x00078008,
  msgProps: 0x00069003,
  attachRendData: 0x00069002,
  attachTitle: 0x00018010,
  attachData: 0x0006800f,
  attachment: 0x00069005,
} as const;

export const PT = {
  long: 0x0003,
  string8: 0x001e,
  unicode: 0x001f,
  binary: 0x0102,
  object: 0x000d,
};
export const PR = {
  rtfCompressed: 0x1009,
  displayName: 0x3001,
  attachData: 0x3701,
  attachFilename: 0x3704,
  attachMethod: 0x3705,
  attachLongFilename: 0x3707,
  attachMimeTag: 0x370e,
};
/** IID_IMessage, {00020307-0000-0000-C000-000000000046}, in its on-disk byte order. */
export const IID_IMESSAGE = Buffer.from("0703020000000000c000000000000046", "hex");

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
}

/** One attribute: level, tag, length, data, checksum (sum of data bytes mod 65536). */
export function attribute(level: number, tag: number, data: Buffer, badChecksum = false): Buffer {
  let sum = 0;
  for (const byte of data) sum = (sum + byte) & 0xffff;
  if (badChecksum) sum = (sum + 1) & 0xffff;
  return Buffer.concat([Buffer.from([level]), u32(tag), u32(data.length), data, u16(sum)]);
}

export interface PropSpec {
  type: number;
  id: number;
  value: Buffer | string | number;
  /** Writes it as a named property (id ≥ 0x8000) with a string name. */
  name?: string;
}

/** A MAPI property list (MS-OXTNEF §2.1.3.4). */
export function propList(props: readonly PropSpec[]): Buffer {
  const parts: Buffer[] = [u32(props.length)];
  for (const p of props) {
    parts.push(u16(p.type), u16(p.id));
    if (p.name !== undefined) {
      const name = Buffer.from(`${p.name}\0`, "utf16le");
      parts.push(Buffer.alloc(16, 0x11), u32(1), u32(name.length), padded(name));
    }
    if (p.type === PT.long) {
      parts.push(u32(Number(p.value)));
      continue;
    }
    let bytes: Buffer;
    if (typeof p.value === "number") bytes = u32(p.value);
    else if (typeof p.value === "string") {
      bytes =
        p.type === PT.unicode
          ? Buffer.from(`${p.value}\0`, "utf16le")
          : Buffer.from(`${p.value}\0`, "latin1");
    } else bytes = p.value;
    parts.push(u32(1), u32(bytes.length), padded(bytes));
  }
  return Buffer.concat(parts);
}

export interface FileSpec {
  /** attAttachTitle (8-bit, the short name). */
  title?: string;
  longName?: string;
  mimeTag?: string;
  data?: Buffer;
  /** An embedded message: a whole TNEF stream, written as PR_ATTACH_DATA_OBJ (method 5). */
  embedded?: Buffer;
  displayName?: string;
}

export interface StreamSpec {
  files?: readonly FileSpec[];
  /** PR_RTF_COMPRESSED value, as built by {@link rtfUncompressed} or {@link rtfLiterals}. */
  rtfCompressed?: Buffer;
  /** Extra attributes appended at the end (bombs, damage). */
  trailer?: Buffer;
  badChecksum?: boolean;
}

/** A TNEF stream: signature, legacy key, message attributes, then each attachment's. */
export function tnefStream(spec: StreamSpec): Buffer {
  const parts: Buffer[] = [u32(0x223e9f78), u16(0x0001)];
  parts.push(attribute(LEVEL_MESSAGE, ATT.tnefVersion, u32(0x00010000)));
  parts.push(attribute(LEVEL_MESSAGE, ATT.oemCodepage, Buffer.concat([u32(1252), u32(0)])));
  parts.push(
    attribute(LEVEL_MESSAGE, ATT.messageClass, Buffer.from("IPM.Microsoft Mail.Note\0", "latin1")),
  );
  if (spec.rtfCompressed !== undefined) {
    parts.push(
      attribute(
        LEVEL_MESSAGE,
        ATT.msgProps,
        propList([{ type: PT.binary, id: PR.rtfCompressed, value: spec.rtfCompressed }]),
      ),
    );
  }
  for (const file of spec.files ?? []) {
    parts.push(attribute(LEVEL_ATTACHMENT, ATT.attachRendData, Buffer.alloc(14)));
    if (file.title !== undefined) {
      parts.push(
        attribute(LEVEL_ATTACHMENT, ATT.attachTitle, Buffer.from(`${file.title}\0`, "latin1")),
      );
    }
    if (file.data !== undefined) {
      parts.push(attribute(LEVEL_ATTACHMENT, ATT.attachData, file.data, spec.badChecksum));
    }
    const props: PropSpec[] = [
      // A named property first, so the reader must skip a GUID and a string name correctly.
      { type: PT.long, id: 0x8005, value: 7, name: "x-test" },
    ];
    if (file.longName !== undefined) {
      props.push({ type: PT.unicode, id: PR.attachLongFilename, value: file.longName });
    }
    if (file.mimeTag !== undefined) {
      props.push({ type: PT.string8, id: PR.attachMimeTag, value: file.mimeTag });
    }
    if (file.displayName !== undefined) {
      props.push({ type: PT.unicode, id: PR.displayName, value: file.displayName });
    }
    if (file.embedded !== undefined) {
      props.push({ type: PT.long, id: PR.attachMethod, value: 5 });
      props.push({
        type: PT.object,
        id: PR.attachData,
        value: Buffer.concat([IID_IMESSAGE, file.embedded]),
      });
    }
    parts.push(attribute(LEVEL_ATTACHMENT, ATT.attachment, propList(props)));
  }
  if (spec.trailer !== undefined) parts.push(spec.trailer);
  return Buffer.concat(parts);
}

/** [MS-OXRTFCP] uncompressed form: header with "MELA", then the raw bytes. */
export function rtfUncompressed(rtf: Buffer): Buffer {
  return Buffer.concat([u32(rtf.length + 12), u32(rtf.length), u32(0x414c454d), u32(0), rtf]);
}

/**
 * [MS-OXRTFCP] compressed form using literals only: each control byte 0x00 announces 8 literal
 * bytes; the end is a reference (control bit 1) to the current dictionary write position.
 */
export function rtfLiterals(rtf: Buffer): Buffer {
  const body: number[] = [];
  let write = 207;
  let i = 0;
  for (;;) {
    const run = rtf.subarray(i, i + 8);
    i += run.length;
    if (run.length === 8) {
      body.push(0x00, ...run);
      write = (write + 8) & 0xfff;
      continue;
    }
    // Last group: the remaining literals, then the end marker in the next bit.
    body.push(1 << run.length, ...run);
    write = (write + run.length) & 0xfff;
    const ref = write << 4;
    body.push(ref >> 8, ref & 0xff);
    break;
  }
  const data = Buffer.from(body);
  return Buffer.concat([u32(data.length + 12), u32(rtf.length), u32(0x75465a4c), u32(0), data]);
}
