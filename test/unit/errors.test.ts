import { readFile } from "node:fs/promises";
import { NoSuchBucket } from "@aws-sdk/client-s3";
import { QueueDoesNotExist } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { describeError, ErrorCode, MailIngestError } from "../../lambdas/errors.ts";

const wrap = (message: string, cause: unknown) =>
  new MailIngestError(ErrorCode.STORE_FAILED, message, { cause });

describe("describeError", () => {
  it("names an AWS service error by its code after the wrapper that caught it", () => {
    const cause = new NoSuchBucket({
      message: "The specified bucket does not exist",
      $metadata: { httpStatusCode: 404 },
    });
    expect(describeError(wrap("S3 failed to get state/alice/snapshot.json", cause))).toBe(
      "S3 failed to get state/alice/snapshot.json: NoSuchBucket: The specified bucket does not exist",
    );
  });

  it("gives the HTTP status for a bodyless service error instead of the SDK's UnknownError", () => {
    const cause = new QueueDoesNotExist({
      message: "UnknownError",
      $metadata: { httpStatusCode: 400 },
    });
    expect(describeError(wrap("send failed", cause))).toBe(
      "send failed: QueueDoesNotExist: HTTP 400",
    );
  });

  it("keeps a Node system error's own message, which already holds its code", async () => {
    const enoent = await readFile("/nonexistent/mail-ingest").catch((err: unknown) => err);
    expect(describeError(wrap("Failed to read state", enoent))).toBe(
      "Failed to read state: ENOENT: no such file or directory, open '/nonexistent/mail-ingest'",
    );
  });

  it("walks a chain several deep and says a segment the wrapper already quoted only once", () => {
    const root = new Error("connect ECONNREFUSED 127.0.0.1:4566");
    const middle = wrap(`POP3 connect failed: ${root.message}`, root);
    const top = wrap("mailbox alice: session failed", middle);
    expect(describeError(top)).toBe(
      "mailbox alice: session failed: POP3 connect failed: connect ECONNREFUSED 127.0.0.1:4566",
    );
  });

  it("stops at a cause cycle and after a bounded depth", () => {
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    a.cause = b;
    expect(describeError(a)).toBe("a: b");
    let deep: Error = new Error("e0");
    for (let i = 1; i < 50; i += 1) deep = new Error(`e${i}`, { cause: deep });
    expect(describeError(deep).split(": ").length).toBeLessThanOrEqual(8);
  });

  it("never repeats a JSON parser message, which quotes the text it failed on", () => {
    const syntax = (() => {
      try {
        JSON.parse('{"password":Hunter2}');
      } catch (err) {
        return err;
      }
    })();
    const text = describeError(wrap("State x: not JSON", syntax));
    expect(text).toBe("State x: not JSON: SyntaxError");
    expect(text).not.toContain("Hunter2");
  });

  it("describes an AggregateError (happy-eyeballs connect) by its inner errors", () => {
    const agg = new AggregateError(
      [new Error("connect ECONNREFUSED ::1:1"), new Error("connect ECONNREFUSED 127.0.0.1:1")],
      "",
    );
    expect(describeError(wrap("fetch failed", agg))).toBe(
      "fetch failed: connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1",
    );
  });

  it("describes non-Error values", () => {
    expect(describeError("plain")).toBe("plain");
    expect(describeError(wrap("outer", 42))).toBe("outer: 42");
  });
});
