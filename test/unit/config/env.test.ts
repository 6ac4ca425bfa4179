import { describe, expect, it } from "vitest";
import { LambdaEnv, storageFromEnv } from "../../../lambdas/config/index.ts";
import { ErrorCode } from "../../../lambdas/errors.ts";
import { defaultPollerDeps } from "../../../lambdas/handlers/poller.ts";

const env = { BUCKET_NAME: "b", OUTPUT_QUEUE_URL: "https://sqs.example/1/out" };

describe("storageFromEnv", () => {
  it("builds the poller's S3 storage from BUCKET_NAME and BUCKET_PREFIX", () => {
    expect(storageFromEnv({ ...env, BUCKET_PREFIX: "mail/" })).toMatchObject({
      type: "s3",
      bucket: "b",
      prefix: "mail/",
    });
    expect(storageFromEnv(env).prefix).toBeUndefined();
  });

  it.each(["../other", "a/../b", "/abs"])(
    "rejects BUCKET_PREFIX %j by the config's storage.prefix rule, naming the variable",
    (prefix) => {
      expect(() => storageFromEnv({ ...env, BUCKET_PREFIX: prefix })).toThrow(
        expect.objectContaining({
          code: ErrorCode.CONFIG_INVALID,
          message: "environment variable BUCKET_PREFIX: must be a relative key prefix without '..'",
        }),
      );
    },
  );

  it("names BUCKET_NAME when it is missing", () => {
    expect(() => storageFromEnv({})).toThrow(`environment variable ${LambdaEnv.bucketName}`);
  });
});

describe("the poller's production wiring", () => {
  it("refuses a BUCKET_PREFIX with '..' before building any client", () => {
    // Regression: the poller built {type: "s3", prefix: BUCKET_PREFIX} without the CLI's check.
    const deps = defaultPollerDeps({ ...env, BUCKET_PREFIX: "../escape" });
    expect(() => deps.adapters()).toThrow(/BUCKET_PREFIX/);
  });
});
