/**
 * Builds the three adapters the ingest session needs from validated config. SDK clients are
 * created here, once; credentials come from the SDK's default provider chain (Lambda role,
 * profile, or environment), never from this code. The AWS adapters (and so the SDK) are loaded
 * only when the config asks for them: a local fs run starts without paying for their import.
 */

import { join } from "node:path";
import type { QueueConfig, StorageConfig } from "../config.ts";
import type { MessageQueue, ObjectStore, StateStore } from "../ports.ts";
import { FsQueue } from "./fs-queue.ts";
import { FsStateStore } from "./fs-state.ts";
import { FsObjectStore } from "./fs-store.ts";
import { ObjectStateStore } from "./object-state.ts";

export type { QueueConfig, StorageConfig };

export interface Adapters {
  readonly store: ObjectStore;
  readonly queue: MessageQueue;
  readonly state: StateStore;
}

/**
 * fs storage keeps state in `<dir>/state/` (FsStateStore); S3 storage keeps it in the bucket
 * under `<prefix>state/` (ObjectStateStore), so a Lambda needs no disk.
 */
export async function createAdapters(
  storage: StorageConfig,
  queue: QueueConfig,
): Promise<Adapters> {
  let store: ObjectStore;
  let state: StateStore;
  if (storage.type === "fs") {
    store = new FsObjectStore({ dir: storage.dir });
    state = new FsStateStore({ dir: join(storage.dir, "state") });
  } else {
    const [{ S3Client }, { S3ObjectStore }] = await Promise.all([
      import("@aws-sdk/client-s3"),
      import("./s3-store.ts"),
    ]);
    const client = new S3Client({
      ...(storage.region === undefined ? {} : { region: storage.region }),
      ...(storage.endpoint === undefined ? {} : { endpoint: storage.endpoint }),
      ...(storage.forcePathStyle === undefined ? {} : { forcePathStyle: storage.forcePathStyle }),
    });
    store = new S3ObjectStore({ client, bucket: storage.bucket, prefix: storage.prefix ?? "" });
    state = new ObjectStateStore({ store, prefix: "state/" });
  }
  let messageQueue: MessageQueue;
  if (queue.type === "fs") {
    messageQueue = new FsQueue({ dir: queue.dir });
  } else {
    const [{ SQSClient }, { SqsQueue }] = await Promise.all([
      import("@aws-sdk/client-sqs"),
      import("./sqs-queue.ts"),
    ]);
    const client = new SQSClient({
      ...(queue.region === undefined ? {} : { region: queue.region }),
      ...(queue.endpoint === undefined ? {} : { endpoint: queue.endpoint }),
    });
    messageQueue = new SqsQueue({ client, queueUrl: queue.queueUrl });
  }
  return { store, queue: messageQueue, state };
}
