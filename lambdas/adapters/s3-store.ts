/**
 * {@link ObjectStore} on S3. Streams go through `@aws-sdk/lib-storage` {@link Upload}, so a body
 * of unknown length never sits in memory whole: the uploader buffers at most
 * `(queueSize + 1) × partSize` bytes (default (2 + 1) × 5 MiB = 15 MiB) and stops pulling from
 * the source while its parts are in flight, which is what carries backpressure back to the POP3
 * socket. Atomicity is S3's: an object appears only on PutObject/CompleteMultipartUpload success.
 * An upload killed mid-way leaves an invisible incomplete multipart upload; the bucket's
 * AbortIncompleteMultipartUpload lifecycle rule reclaims it.
 */

import { Readable, Transform } from "node:stream";
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { ObjectStore, PutOptions, PutResult } from "../ports.ts";
import { errorName, httpStatus } from "../util/aws-errors.ts";
import { pipeInto } from "../util/pipe.ts";
import { keySegments } from "./object-key.ts";

/** S3 rejects multipart parts under 5 MiB (except the last). */
const MIN_PART_SIZE = 5 * 1024 * 1024;

export interface S3ObjectStoreOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Prepended to every key; a trailing `/` is added when missing. @default "" */
  readonly prefix?: string;
  /** Multipart part size in bytes (≥ 5 MiB, the S3 minimum; smaller parts bound memory). @default 5 MiB */
  readonly partSize?: number;
  /** Parts uploaded concurrently. @default 2 */
  readonly queueSize?: number;
}

export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  /** Normalised key prefix: "" or ends with "/". */
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(options: S3ObjectStoreOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    const prefix = options.prefix ?? "";
    this.prefix = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
    if (this.prefix !== "") keySegments(this.prefix.slice(0, -1));
    this.partSize = options.partSize ?? MIN_PART_SIZE;
    this.queueSize = options.queueSize ?? 2;
    if (this.partSize < MIN_PART_SIZE || this.queueSize < 1) {
      throw new MailIngestError(
        ErrorCode.CONFIG_INVALID,
        `S3 partSize must be >= ${MIN_PART_SIZE} bytes and queueSize >= 1`,
      );
    }
  }

  /**
   * Small (Uint8Array) bodies go up in one PutObject; streams use multipart. `ifAbsent` sends
   * `If-None-Match: *`, which S3 checks atomically at PutObject or CompleteMultipartUpload time.
   * The body is always consumed in full on success, even when `created` is false.
   */
  async put(key: string, body: Readable | Uint8Array, options?: PutOptions): Promise<PutResult> {
    const Key = this.objectKey(key);
    const params = {
      Bucket: this.bucket,
      Key,
      ContentType: options?.contentType,
      IfNoneMatch: options?.ifAbsent ? "*" : undefined,
    };
    if (body instanceof Uint8Array) {
      try {
        await this.client.send(new PutObjectCommand({ ...params, Body: body }));
        return { size: body.byteLength, created: true };
      } catch (err) {
        return this.conditionalOutcome(err, key, options?.ifAbsent === true);
      }
    }
    let size = 0;
    const counter = new Transform({
      transform(chunk: unknown, _encoding, callback) {
        if (!(chunk instanceof Uint8Array)) {
          callback(
            new MailIngestError(
              ErrorCode.STORE_FAILED,
              "Object bodies must be byte streams (a string chunk means someone decoded the bytes)",
            ),
          );
          return;
        }
        size += chunk.byteLength;
        callback(null, chunk);
      },
    });
    // A source error (e.g. a POP3 SIZE_MISMATCH) reaches the upload through `counter`, and the
    // source is destroyed if the upload gives up; the upload itself reports the error.
    pipeInto(body, counter).catch(() => undefined);
    const upload = new Upload({
      client: this.client,
      params: { ...params, Body: counter },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
      return { size, created: true };
    } catch (err) {
      counter.destroy();
      if (options?.ifAbsent && isConditionalFailure(err) && upload.uploadId !== undefined) {
        // A failed conditional complete leaves the parts billable until aborted.
        await this.client
          .send(
            new AbortMultipartUploadCommand({
              Bucket: this.bucket,
              Key,
              UploadId: upload.uploadId,
            }),
          )
          .catch(() => undefined);
      }
      return this.conditionalOutcome(err, key, options?.ifAbsent === true);
    }
  }

  async get(key: string): Promise<Readable | null> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
      if (out.Body instanceof Readable) return out.Body;
      throw new MailIngestError(ErrorCode.STORE_FAILED, `GetObject ${key} returned no stream`);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw wrap(err, `get ${key}`);
    }
  }

  async head(key: string): Promise<{ readonly size: number } | null> {
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
      return { size: out.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw wrap(err, `head ${key}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      // S3 DeleteObject succeeds for absent keys, which is exactly the port's contract.
      await this.client.send(
        new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw wrap(err, `delete ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    try {
      const pages = paginateListObjectsV2(
        { client: this.client },
        { Bucket: this.bucket, Prefix: `${this.prefix}${prefix}` },
      );
      for await (const page of pages) {
        for (const object of page.Contents ?? []) {
          if (object.Key?.startsWith(this.prefix)) yield object.Key.slice(this.prefix.length);
        }
      }
    } catch (err) {
      throw wrap(err, `list ${prefix}`);
    }
  }

  uri(key: string): string {
    return `s3://${this.bucket}/${this.objectKey(key)}`;
  }

  private objectKey(key: string): string {
    keySegments(key);
    return `${this.prefix}${key}`;
  }

  /**
   * 412 means `If-None-Match: *` found an object: the expected "already stored" result. 409
   * (ConditionalRequestConflict) means a concurrent write to the same key was in progress; only
   * when a HEAD then shows the object do we report it as already there, because the other writer
   * may yet fail.
   */
  private async conditionalOutcome(
    err: unknown,
    key: string,
    ifAbsent: boolean,
  ): Promise<PutResult> {
    if (!ifAbsent) throw wrap(err, `put ${key}`);
    const status = httpStatus(err);
    if (status === 412 || errorName(err) === "PreconditionFailed") {
      return { size: 0, created: false };
    }
    if (status === 409 || errorName(err) === "ConditionalRequestConflict") {
      if ((await this.head(key)) !== null) return { size: 0, created: false };
    }
    throw wrap(err, `put ${key}`);
  }
}

function isConditionalFailure(err: unknown): boolean {
  const status = httpStatus(err);
  return status === 412 || status === 409;
}

/** A missing bucket is misconfiguration, never "no such object". */
function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  if (name === "NoSuchBucket") return false;
  return name === "NoSuchKey" || name === "NotFound" || httpStatus(err) === 404;
}

function wrap(err: unknown, what: string): MailIngestError {
  if (err instanceof MailIngestError) return err;
  return new MailIngestError(ErrorCode.STORE_FAILED, `S3 failed to ${what}`, { cause: err });
}
