import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { S3ObjectStore } from "../../../lambdas/adapters/s3-store.ts";
import { ErrorCode, isMailIngestError } from "../../../lambdas/errors.ts";
import { type Call, mockS3, s3Error } from "./mock-aws.ts";

const MiB = 1024 * 1024;

function stream(total: number, chunk = 256 * 1024): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, total - sent);
      sent += n;
      this.push(Buffer.alloc(n, 0x61));
    },
  });
}

/** Scripted multipart happy path; `complete` decides how CompleteMultipartUpload answers. */
function multipart(complete: () => unknown) {
  return (call: Call): unknown => {
    switch (call.command) {
      case "CreateMultipartUploadCommand":
        return { UploadId: "upload-1" };
      case "UploadPartCommand":
        return { ETag: `"etag-${String(call.input.PartNumber)}"` };
      case "CompleteMultipartUploadCommand":
        return complete();
      case "AbortMultipartUploadCommand":
        return {};
      default:
        throw new Error(`unexpected ${call.command}`);
    }
  };
}

describe("S3ObjectStore against scripted S3 responses", () => {
  it("sends If-None-Match: * for ifAbsent and maps 412 PreconditionFailed to created:false", async () => {
    const { client, calls } = mockS3(() => {
      throw s3Error("PreconditionFailed", 412);
    });
    const store = new S3ObjectStore({ client, bucket: "b", prefix: "p" });
    expect(await store.put("k", Buffer.from("x"), { ifAbsent: true })).toEqual({
      size: 0,
      created: false,
    });
    expect(calls[0]?.input).toMatchObject({ Bucket: "b", Key: "p/k", IfNoneMatch: "*" });
  });

  it("treats 412 as a failure when ifAbsent was not requested", async () => {
    const { client } = mockS3(() => {
      throw s3Error("PreconditionFailed", 412);
    });
    const store = new S3ObjectStore({ client, bucket: "b" });
    const err = await store.put("k", Buffer.from("x")).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.STORE_FAILED)).toBe(true);
  });

  it("maps a 412 at CompleteMultipartUpload to created:false and aborts the upload", async () => {
    const { client, calls } = mockS3(
      multipart(() => {
        throw s3Error("PreconditionFailed", 412);
      }),
    );
    const store = new S3ObjectStore({ client, bucket: "b", partSize: 5 * MiB });
    expect(await store.put("k", stream(12 * MiB), { ifAbsent: true })).toEqual({
      size: 0,
      created: false,
    });
    const complete = calls.find((c) => c.command === "CompleteMultipartUploadCommand");
    expect(complete?.input.IfNoneMatch).toBe("*");
    expect(calls.at(-1)).toMatchObject({
      command: "AbortMultipartUploadCommand",
      input: { UploadId: "upload-1", Key: "k" },
    });
  });

  it("uploads streams in parts of the configured size and reports the byte count", async () => {
    const { client, calls } = mockS3(multipart(() => ({})));
    const store = new S3ObjectStore({ client, bucket: "b", partSize: 5 * MiB, queueSize: 2 });
    expect(await store.put("k", stream(12 * MiB + 7))).toEqual({
      size: 12 * MiB + 7,
      created: true,
    });
    const parts = calls
      .filter((c) => c.command === "UploadPartCommand")
      .map((c) => (c.input.Body instanceof Uint8Array ? c.input.Body.byteLength : -1));
    expect(parts.sort((a, b) => b - a)).toEqual([5 * MiB, 5 * MiB, 2 * MiB + 7]);
  });

  it("reports created:false on 409 ConditionalRequestConflict only when the object exists", async () => {
    let exists = true;
    const { client } = mockS3((call) => {
      if (call.command === "PutObjectCommand") throw s3Error("ConditionalRequestConflict", 409);
      if (exists) return { ContentLength: 1 };
      throw s3Error("NotFound", 404);
    });
    const store = new S3ObjectStore({ client, bucket: "b" });
    expect(await store.put("k", Buffer.from("x"), { ifAbsent: true })).toEqual({
      size: 0,
      created: false,
    });
    exists = false;
    const err = await store.put("k", Buffer.from("x"), { ifAbsent: true }).catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.STORE_FAILED)).toBe(true);
  });

  it("returns null for get of NoSuchKey and head of a 404", async () => {
    const { client } = mockS3((call) => {
      throw call.command === "GetObjectCommand"
        ? s3Error("NoSuchKey", 404)
        : s3Error("NotFound", 404);
    });
    const store = new S3ObjectStore({ client, bucket: "b" });
    expect(await store.get("missing")).toBeNull();
    expect(await store.head("missing")).toBeNull();
  });

  it("reports a missing bucket as STORE_FAILED, not as a missing object", async () => {
    const { client } = mockS3(() => {
      throw s3Error("NoSuchBucket", 404);
    });
    const store = new S3ObjectStore({ client, bucket: "nope" });
    await expect(store.get("k")).rejects.toMatchObject({ code: ErrorCode.STORE_FAILED });
  });

  it("wraps other S3 errors in STORE_FAILED with the SDK error as cause", async () => {
    const original = s3Error("InternalError", 500);
    const { client } = mockS3(() => {
      throw original;
    });
    const store = new S3ObjectStore({ client, bucket: "b" });
    const err = await store.head("k").catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.STORE_FAILED)).toBe(true);
    expect(err instanceof Error ? err.cause : undefined).toBe(original);
  });

  it("refuses a part size below S3's 5 MiB minimum", () => {
    const { client } = mockS3(() => ({}));
    expect(() => new S3ObjectStore({ client, bucket: "b", partSize: MiB })).toThrow(
      expect.objectContaining({ code: ErrorCode.CONFIG_INVALID }),
    );
  });
});
