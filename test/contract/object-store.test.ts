import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll } from "vitest";
import { FsObjectStore } from "../../lambdas/adapters/fs-store.ts";
import { S3ObjectStore } from "../../lambdas/adapters/s3-store.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { MemoryObjectStore } from "../unit/mime/memory-store.ts";
import { objectStoreContract } from "./object-store.contract.ts";

const MiB = 1024 * 1024;

objectStoreContract("FsObjectStore", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mail-ingest-store-"));
  const store = new FsObjectStore({ dir });
  return {
    store,
    expectedUri: (key) => pathToFileURL(join(dir, key)).href,
    // In-flight fs writes live in <dir>/.tmp until renamed into place.
    async sinkBytes() {
      const tmp = join(dir, ".tmp");
      let total = 0;
      for (const name of await readdir(tmp).catch(() => [])) {
        total += (await stat(join(tmp, name)).catch(() => ({ size: 0 }))).size;
      }
      return total;
    },
    maxReadAhead: 1 * MiB,
    enforcesIfAbsent: true,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

// The MIME and pipeline unit tests stand on this store, so it must behave like the real ones.
objectStoreContract("MemoryObjectStore (test double)", async () => {
  const store = new MemoryObjectStore();
  return {
    store,
    expectedUri: (key) => `file:///memory/${key}`,
    // Every byte the store has read from a put body is in memory, i.e. accepted by its sink.
    sinkBytes: async () => store.bytesRead,
    maxReadAhead: 1 * MiB,
    enforcesIfAbsent: true,
    cleanup: async () => undefined,
  };
});

let fauxqs: Fauxqs;
/** Bytes S3 has acknowledged in UploadPart/PutObject calls since the current test began. */
let acknowledged = 0;

beforeAll(async () => {
  fauxqs = await startFauxqs();
  fauxqs.s3.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      const command = context.commandName;
      if (command === "UploadPartCommand" || command === "PutObjectCommand") {
        const input = args.input;
        if (typeof input === "object" && input !== null && "Body" in input) {
          const body = input.Body;
          if (body instanceof Uint8Array) acknowledged += body.byteLength;
        }
      }
      return result;
    },
    { step: "initialize", name: "countAcknowledgedBytes" },
  );
});

afterAll(async () => {
  await fauxqs?.stop();
});

const PART_SIZE = 5 * MiB;
const QUEUE_SIZE = 2;

objectStoreContract("S3ObjectStore on fauxqs", async () => {
  const bucket = await fauxqs.createBucket();
  acknowledged = 0;
  const store = new S3ObjectStore({
    client: fauxqs.s3,
    bucket,
    prefix: "mail",
    partSize: PART_SIZE,
    queueSize: QUEUE_SIZE,
  });
  return {
    store,
    expectedUri: (key) => `s3://${bucket}/mail/${key}`,
    sinkBytes: async () => acknowledged,
    // lib-storage holds one part per concurrent uploader plus the part being assembled; the
    // extra MiB covers stream buffers between the source and the chunker.
    maxReadAhead: (QUEUE_SIZE + 1) * PART_SIZE + MiB,
    // fauxqs 1.9.2 does not implement If-None-Match.
    enforcesIfAbsent: false,
    cleanup: async () => undefined,
  };
});
