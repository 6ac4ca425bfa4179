/**
 * Builds the three adapters the ingest session needs from validated config. SDK clients are
 * created here, once; credentials come from the SDK's default provider chain (Lambda role,
 * profile, or environment), never from this code.
 */

import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { QueueConfig, StorageConfig } from "../config.ts";
import type { MessageQueue, ObjectStore, StateStore } from "../ports.ts";
import { FsQueue } from "./fs-queue.ts";
import { FsStateStore } from "./fs-state.ts";
import { FsObjectStore } from "./fs-store.ts";
import { ObjectStateStore } from "./object-state.ts";
import { S3ObjectStore } from "./s3-store.ts";
import { SqsQueue } from "./sqs-queue.ts";

export { FsQueue } from "./fs-queue.ts";
export { FsStateStore } from "./fs-state.ts";
export { FsObjectStore } from "./fs-store.ts";
export { ObjectStateStore } from "./object-state.ts";
export { S3ObjectStore } from "./s3-store.ts";
export { SqsQueue } from "./sqs-queue.ts";
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
export function createAdapters(storage: StorageConfig, queue: QueueConfig): Adapters {
  let store: ObjectStore;
  let state: StateStore;
  if (storage.type === "fs") {
    store = new FsObjectStore({ dir: storage.dir });
    state = new FsStateStore({ dir: join(storage.dir, "state") });
  } else {
    const client = new S3Client({
      ...(storage.region === undefined ? {} : { region: storage.region }),
      ...(storage.endpoint === undefined ? {} : { endpoint: storage.endpoint }),
      ...(storage.forcePathStyle === undefined ? {} : { forcePathStyle: storage.forcePathStyle }),
    });
    store = new S3ObjectStore({ client, bucket: storage.bucket, prefix: storage.prefix ?? "" });
    state = new ObjectStateStore({ store, prefix: "state/" });
  }
  const messageQueue: MessageQueue =
    queue.type === "fs"
      ? new FsQueue({ dir: queue.dir })
      : new SqsQueue({
          client: new SQSClient({
            ...(queue.region === undefined ? {} : { region: queue.region }),
            ...(queue.endpoint === undefined ? {} : { endpoint: queue.endpoint }),
          }),
          queueUrl: queue.queueUrl,
        });
  return { store, queue: messageQueue, state };
}
