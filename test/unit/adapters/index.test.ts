import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FsMailboxLock } from "../../../lambdas/adapters/fs-lock.ts";
import { FsQueue } from "../../../lambdas/adapters/fs-queue.ts";
import { FsStateStore } from "../../../lambdas/adapters/fs-state.ts";
import { FsObjectStore } from "../../../lambdas/adapters/fs-store.ts";
import { createAdapters } from "../../../lambdas/adapters/index.ts";
import { S3MailboxLease } from "../../../lambdas/adapters/object-lease.ts";
import { ObjectStateStore } from "../../../lambdas/adapters/object-state.ts";
import { S3ObjectStore } from "../../../lambdas/adapters/s3-store.ts";
import { SqsQueue } from "../../../lambdas/adapters/sqs-queue.ts";

describe("createAdapters", () => {
  it("builds fs adapters with state in <dir>/state", async () => {
    const a = await createAdapters(
      { type: "fs", dir: "/data/mail" },
      { type: "fs", dir: "/data/q" },
    );
    expect(a.store).toBeInstanceOf(FsObjectStore);
    expect(a.queue).toBeInstanceOf(FsQueue);
    expect(a.state).toBeInstanceOf(FsStateStore);
    expect(a.state instanceof FsStateStore ? a.state.dir : "").toBe(join("/data/mail", "state"));
    expect(a.lock instanceof FsMailboxLock ? a.lock.pathOf("box") : "").toBe(
      join("/data/mail", "state", "box.lock"),
    );
  });

  it("builds S3 + SQS adapters with state kept in the bucket", async () => {
    const a = await createAdapters(
      { type: "s3", bucket: "raw", prefix: "mail/", region: "eu-west-1" },
      {
        type: "sqs",
        queueUrl: "https://sqs.eu-west-1.amazonaws.com/1/q.fifo",
        region: "eu-west-1",
      },
    );
    expect(a.store).toBeInstanceOf(S3ObjectStore);
    expect(a.store.bucket).toBe("raw");
    expect(a.store.uri("k")).toBe("s3://raw/mail/k");
    expect(a.queue).toBeInstanceOf(SqsQueue);
    expect(a.queue instanceof SqsQueue ? a.queue.fifo : false).toBe(true);
    expect(a.state).toBeInstanceOf(ObjectStateStore);
    // Under the state prefix, so a DeleteObject grant limited to `state/*` covers the lease.
    expect(a.lock instanceof S3MailboxLease ? a.lock.keyOf("box") : "").toBe(
      "mail/state/box/lease.json",
    );
  });
});
