import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decompressRtf, isTnef, readTnef, TnefError } from "../../../lambdas/mime/tnef.ts";
import { ATT, attribute, rtfLiterals, rtfUncompressed, tnefStream } from "./tnef-writer.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/tnef/${name}`, import.meta.url));

describe("readTnef on a winmail.dat written by Outlook", () => {
  // Expected digests come from Debian's tnef 1.4.18, an independent decoder (fixture README).
  it("extracts both files and the RTF body byte-exact", () => {
    const content = readTnef(fixture("attachments.dat"));
    expect(content.truncated).toBeUndefined();
    expect(content.checksumErrors).toBe(0);
    expect(content.files.map((f) => [f.filename, f.data.length, sha256(f.data)])).toEqual([
      ["zappa_av1.jpg", 2937, "bea844f30e0fcc20fad419a0d11032a6465da93c1da185a1196949955994409a"],
      ["bookmark.htm", 85805, "1e08d6e23c75ff80ac992eebc24c2943c7843b7dfee235966b37de5eb4362599"],
    ]);
    expect(content.rtf?.length).toBe(443);
    expect(sha256(content.rtf ?? Buffer.alloc(0))).toBe(
      "5dcd1bdee036cc1c7639bca7f7e96355d80a18f9e366b3be672a3112019d4356",
    );
  });

  it("stops at a prefix cut mid-attribute, keeping the files read before", () => {
    const whole = fixture("attachments.dat");
    // Cut inside bookmark.htm's data: the first file survives, the read is flagged.
    const cut = whole.subarray(0, whole.indexOf(Buffer.from("<!DOCTYPE NETSCAPE")) + 100);
    const content = readTnef(cut);
    expect(content.error).toMatch(/attribute data runs past the end/);
    expect(content.truncated).toBeUndefined();
    expect(content.files.map((f) => sha256(f.data))).toEqual([
      "bea844f30e0fcc20fad419a0d11032a6465da93c1da185a1196949955994409a",
    ]);
  });

  it("never throws anything but TnefError on every prefix of the real file", () => {
    const whole = fixture("attachments.dat");
    for (let n = 0; n < whole.length; n += 97) {
      try {
        readTnef(whole.subarray(0, n));
      } catch (err) {
        expect(err).toBeInstanceOf(TnefError);
      }
    }
  });
});

describe("readTnef on written streams", () => {
  it("prefers the Unicode long file name and reports the MIME tag", () => {
    const pdf = Buffer.from("%PDF-1.4 invoice");
    const content = readTnef(
      tnefStream({
        files: [
          {
            title: "INVOIC~1.PDF",
            longName: "Rechnung März 2026.pdf",
            mimeTag: "application/pdf",
            data: pdf,
          },
        ],
      }),
    );
    expect(content.files).toHaveLength(1);
    expect(content.files[0]?.filename).toBe("Rechnung März 2026.pdf");
    expect(content.files[0]?.contentType).toBe("application/pdf");
    expect(sha256(content.files[0]?.data ?? Buffer.alloc(0))).toBe(sha256(pdf));
  });

  it("falls back to attAttachTitle and has no contentType without a MIME tag", () => {
    const content = readTnef(tnefStream({ files: [{ title: "a.txt", data: Buffer.from("A") }] }));
    expect(content.files[0]?.filename).toBe("a.txt");
    expect(content.files[0]?.contentType).toBeUndefined();
  });

  it("returns an embedded message as its own TNEF stream, not expanded", () => {
    const inner = tnefStream({ files: [{ title: "inner.pdf", data: Buffer.from("%PDF inner") }] });
    const content = readTnef(
      tnefStream({ files: [{ displayName: "Fwd: invoice", embedded: inner }] }),
    );
    expect(content.files).toHaveLength(1);
    const [file] = content.files;
    expect(file?.embedded).toBe(true);
    expect(file?.filename).toBe("Fwd: invoice");
    expect(file?.contentType).toBe("application/ms-tnef");
    expect(Buffer.compare(file?.data ?? Buffer.alloc(0), inner)).toBe(0);
    expect(isTnef(file?.data ?? Buffer.alloc(0))).toBe(true);
  });

  it("uses data with a bad checksum but counts it", () => {
    const content = readTnef(
      tnefStream({ files: [{ title: "a.bin", data: Buffer.from("abc") }], badChecksum: true }),
    );
    expect(content.checksumErrors).toBe(1);
    expect(content.files[0]?.data.toString()).toBe("abc");
  });

  it("rejects what is not TNEF", () => {
    expect(() => readTnef(Buffer.from("PK\u0003\u0004 not tnef"))).toThrow(TnefError);
    expect(isTnef(Buffer.from("PK\u0003\u0004"))).toBe(false);
  });

  it("stops an attribute bomb at maxAttributes", () => {
    const one = attribute(1, ATT.messageClass, Buffer.from("x"));
    const trailer = Buffer.concat(Array.from({ length: 50_000 }, () => one));
    const content = readTnef(tnefStream({ trailer }), { maxAttributes: 1000 });
    expect(content.truncated).toBe(true);
  });

  it("stops a file bomb at maxFiles", () => {
    const files = Array.from({ length: 30 }, (_, i) => ({
      title: `${i}.txt`,
      data: Buffer.from([i]),
    }));
    const content = readTnef(tnefStream({ files }), { maxFiles: 10 });
    expect(content.files).toHaveLength(10);
    expect(content.truncated).toBe(true);
  });

  it("flags a property list that claims more properties than allowed", () => {
    const bomb = Buffer.alloc(8);
    bomb.writeUInt32LE(0xffffffff, 0);
    const content = readTnef(
      tnefStream({
        files: [{ title: "a.txt", data: Buffer.from("A") }],
        trailer: attribute(2, ATT.attachment, bomb),
      }),
    );
    expect(content.error).toMatch(/4294967295 MAPI properties/);
    expect(content.files[0]?.data.toString()).toBe("A");
  });

  it("flags a length that runs past the end instead of reading out of bounds", () => {
    const stream = tnefStream({ files: [{ title: "a.txt", data: Buffer.from("A") }] });
    const lying = Buffer.concat([
      stream,
      Buffer.from([2]),
      Buffer.alloc(4, 0x0f),
      Buffer.from([0xff, 0xff, 0xff, 0x7f]),
    ]);
    const content = readTnef(lying);
    expect(content.error).toMatch(/runs past the end/);
    expect(content.files).toHaveLength(1);
  });
});

describe("decompressRtf", () => {
  const rtf = Buffer.from("{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n", "latin1");

  it("reads the uncompressed (MELA) form", () => {
    expect(decompressRtf(rtfUncompressed(rtf), 1 << 20).rtf.toString("latin1")).toBe(
      rtf.toString("latin1"),
    );
  });

  it("reads LZFu literals up to the end marker", () => {
    expect(decompressRtf(rtfLiterals(rtf), 1 << 20).rtf.toString("latin1")).toBe(
      rtf.toString("latin1"),
    );
  });

  it("resolves references into the initial dictionary", () => {
    // Control 0x01: one reference then seven literals. Offset 0, length 6 is "{\rtf1" in the
    // MS-OXRTFCP initial dictionary; the literals follow; then an end marker at write 207+13.
    const data = Buffer.concat([
      Buffer.from([0x01, 0x00, 0x04]),
      Buffer.from(" hello}", "latin1"),
      Buffer.from([0x01, ((220 << 4) >> 8) & 0xff, (220 << 4) & 0xff]),
    ]);
    const header = Buffer.alloc(16);
    header.writeUInt32LE(data.length + 12, 0);
    header.writeUInt32LE(13, 4);
    header.writeUInt32LE(0x75465a4c, 8);
    const { rtf: out } = decompressRtf(Buffer.concat([header, data]), 1 << 20);
    expect(out.toString("latin1")).toBe("{\\rtf1 hello}");
  });

  it("caps the output at maxBytes and flags it", () => {
    const { rtf: out, truncated } = decompressRtf(rtfLiterals(rtf), 10);
    expect(out.length).toBe(10);
    expect(truncated).toBe(true);
  });

  it("does not allocate a claimed raw size far beyond what the input can yield", () => {
    const header = Buffer.alloc(20);
    header.writeUInt32LE(16, 0);
    header.writeUInt32LE(0xffffffff, 4);
    header.writeUInt32LE(0x75465a4c, 8);
    const { rtf: out } = decompressRtf(header, 16 * 1024 * 1024);
    expect(out.length).toBeLessThanOrEqual(32);
  });

  it("rejects an unknown compression type", () => {
    const header = Buffer.alloc(16);
    header.writeUInt32LE(0x12345678, 8);
    expect(() => decompressRtf(header, 100)).toThrow(TnefError);
  });
});
