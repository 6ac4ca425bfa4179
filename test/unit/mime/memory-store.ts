/**
 * In-memory {@link ObjectStore} for the MIME tests. Objects become visible only once their body
 * has been read to the end (atomic, like the real adapters). Options let a test discard bytes
 * (hash only, for big messages), gate a put until released (backpressure) or fail puts.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { keySegments } from "../../../lambdas/adapters/object-key.ts";
import type { ObjectStore, PutOptions, PutResult } from "../../../lambdas/ports.ts";

export interface StoredObject {
  /** The bytes, unless the store runs with `keepBytes: false`. */
  readonly bytes?: Buffer;
  readonly size: number;
  readonly sha256: string;
  readonly contentType?: string;
}

export interface MemoryStoreOptions {
  /** Keep object bytes (default true). False keeps only size and sha256, for huge bodies. */
  readonly keepBytes?: boolean;
  /** Awaited before each chunk of a put body is read, to simulate a slow or blocked sink. */
  readonly beforeChunk?: (key: string) => Promise<void>;
  /** Makes the put of matching keys fail after reading the body. */
  readonly failKey?: (key: string) => boolean;
}

export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, StoredObject>();
  /** Every key passed to put, including failed ones. */
  readonly putKeys: string[] = [];
  readonly bucket = undefined;
  /** Bytes read from put bodies so far: what the store's sink has accepted (backpressure probe). */
  bytesRead = 0;

  constructor(private readonly options: MemoryStoreOptions = {}) {}

  async put(key: string, body: Readable | Uint8Array, options?: PutOptions): Promise<PutResult> {
    this.putKeys.push(key);
    // The same key rules as the real adapters (STORE_FAILED), so a bad key is caught here too.
    keySegments(key);
    if (options?.ifAbsent && this.objects.has(key)) {
      if (body instanceof Readable) body.resume();
      return { size: 0, created: false };
    }
    const hash = createHash("sha256");
    const chunks: Buffer[] = [];
    let size = 0;
    const keep = this.options.keepBytes !== false;
    const add = (chunk: Uint8Array): void => {
      hash.update(chunk);
      size += chunk.length;
      this.bytesRead += chunk.length;
      if (keep) chunks.push(Buffer.from(chunk));
    };
    if (body instanceof Uint8Array) {
      add(body);
    } else {
      for await (const chunk of body) {
        if (this.options.beforeChunk) await this.options.beforeChunk(key);
        add(chunk);
      }
    }
    if (this.options.failKey?.(key)) throw new Error(`simulated store failure for ${key}`);
    // Create-only is decided when the object would become visible, as S3's If-None-Match and the
    // fs store's link are: of two racing ifAbsent writers, only the first to finish creates it.
    if (options?.ifAbsent && this.objects.has(key)) return { size: 0, created: false };
    const stored: StoredObject = {
      size,
      sha256: hash.digest("hex"),
      ...(keep ? { bytes: Buffer.concat(chunks) } : {}),
      ...(options?.contentType !== undefined ? { contentType: options.contentType } : {}),
    };
    this.objects.set(key, stored);
    return { size, created: true };
  }

  async get(key: string): Promise<Readable | null> {
    keySegments(key);
    const object = this.objects.get(key);
    if (object?.bytes === undefined) return null;
    return Readable.from([object.bytes]);
  }

  async head(key: string): Promise<{ readonly size: number } | null> {
    keySegments(key);
    const object = this.objects.get(key);
    return object === undefined ? null : { size: object.size };
  }

  async delete(key: string): Promise<void> {
    keySegments(key);
    this.objects.delete(key);
  }

  async *list(prefix: string): AsyncIterable<string> {
    for (const key of this.objects.keys()) if (key.startsWith(prefix)) yield key;
  }

  uri(key: string): string {
    return `file:///memory/${key}`;
  }
}
