import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  createAdapters,
  FsObjectStore,
  FsQueue,
  FsStateStore,
  ObjectStateStore,
  S3ObjectStore,
  SqsQueue,
} from "../../../lambdas/adapters/index.ts";

describe("createAdapters", () => {
  it("builds fs adapters with state in <dir>/state", () => {
    const a = createAdapters({ type: "fs", dir: "/data/mail" }, { type: "fs", dir: "/data/q" });
    expect(a.store).toBeInstanceOf(FsObjectStore);
    expect(a.queue).toBeInstanceOf(FsQueue);
    expect(a.state).toBeInstanceOf(FsStateStore);
    expect(a.state instanceof FsStateStore ? a.state.dir : "").toBe(join("/data/mail", "state"));
  });

  it("builds S3 + SQS adapters with state kept in the bucket", () => {
    const a = createAdapters(
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
  });
});
