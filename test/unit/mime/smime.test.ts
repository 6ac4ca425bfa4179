import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCms, SmimeError } from "../../../lambdas/mime/smime.ts";
import { makeSigner, SIGN, type SmimeSigner } from "../../helpers/smime.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let signer: SmimeSigner;
beforeAll(() => {
  signer = makeSigner();
});
afterAll(() => signer.close());

const entity = Buffer.from(
  "Content-Type: text/plain; charset=utf-8\r\n\r\nSigned invoice text.\r\n",
);

describe("readCms on openssl-made samples", () => {
  it("unwraps opaque-signed DER (openssl smime -nodetach) to the exact signed bytes", () => {
    const der = signer.run(["smime", ...SIGN, "-nodetach", "-binary", "-outform", "DER"], entity);
    const cms = readCms(der);
    expect(cms.type).toBe("signed-data");
    if (cms.type !== "signed-data") return;
    expect(sha256(cms.content)).toBe(sha256(entity));
  });

  it("unwraps streamed BER (indefinite lengths, eContent in 4 KiB chunks) byte-exact", () => {
    const big = randomBytes(20_000);
    const ber = signer.run(
      ["cms", ...SIGN, "-nodetach", "-binary", "-stream", "-outform", "DER"],
      big,
    );
    // The chunked form is what this test is about: make sure openssl produced it.
    expect(ber.subarray(0, 2)).toEqual(Buffer.from([0x30, 0x80]));
    const cms = readCms(ber);
    expect(cms.type).toBe("signed-data");
    if (cms.type !== "signed-data") return;
    expect(cms.content.length).toBe(big.length);
    expect(sha256(cms.content)).toBe(sha256(big));
  });

  it("reports a detached signature as having no content", () => {
    const der = signer.run(["smime", ...SIGN, "-binary", "-outform", "DER"], entity);
    expect(readCms(der)).toEqual({ type: "signed-detached" });
  });

  it("recognises enveloped data and does not try to decrypt it", () => {
    const der = signer.run(
      // PKCS#7 (openssl smime) cannot encrypt to an EC key; CMS can, with ECDH (RFC 5753).
      ["cms", "-encrypt", "-aes256", "-outform", "DER", "-recip", "signer.pem"],
      entity,
    );
    expect(readCms(der)).toEqual({ type: "enveloped-data" });
  });

  it("refuses content over maxContentBytes", () => {
    const der = signer.run(["smime", ...SIGN, "-nodetach", "-binary", "-outform", "DER"], entity);
    expect(() => readCms(der, { maxContentBytes: 10 })).toThrow(/larger than 10 bytes/);
  });

  it("throws SmimeError, never a partial result, on every strict prefix of a signed sample", () => {
    const der = signer.run(["smime", ...SIGN, "-nodetach", "-binary", "-outform", "DER"], entity);
    // DER has definite lengths, so any cut leaves an element running past the end.
    for (let n = 0; n < der.length; n++) {
      expect(() => readCms(der.subarray(0, n))).toThrow(SmimeError);
    }
  });
});

describe("readCms on hostile BER", () => {
  it("stops deep indefinite nesting at maxDepth", () => {
    const depth = 100_000;
    const bomb = Buffer.concat([
      Buffer.alloc(depth * 2, 0).fill(Buffer.from([0x30, 0x80])),
      Buffer.alloc(depth * 2, 0),
    ]);
    expect(() => readCms(bomb)).toThrow(/deeper than 32/);
  });

  it("rejects a length past the end", () => {
    expect(() => readCms(Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06]))).toThrow(
      SmimeError,
    );
  });

  it("reports other content types by OID", () => {
    // ContentInfo { id-data }: not signed, not enveloped.
    const data = Buffer.from("300b06092a864886f70d010701", "hex");
    expect(readCms(data)).toEqual({ type: "other", oid: "1.2.840.113549.1.7.1" });
  });
});
