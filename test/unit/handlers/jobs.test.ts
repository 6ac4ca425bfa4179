import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../../lambdas/errors.ts";
import { jobScheduledAt, parseJob } from "../../../lambdas/handlers/jobs.ts";

describe("parseJob", () => {
  it.each([
    ["{not json", "body is not JSON"],
    ["[]", "body must be a JSON object"],
    ['{"mailboxId":"../x","tick":"20240501T1005Z"}', "mailboxId is missing or invalid"],
    ['{"mailboxId":"a","tick":"yesterday"}', "tick is missing or invalid"],
    [
      '{"mailboxId":"a","tick":"20240501T1005Z","scheduledAt":"yesterday"}',
      "scheduledAt must be an ISO-8601 instant",
    ],
  ])("rejects the poison body %s with JOB_INVALID, not a config error", (body, problem) => {
    expect(() => parseJob(body)).toThrow(
      expect.objectContaining({ code: ErrorCode.JOB_INVALID, message: `poll job: ${problem}` }),
    );
  });

  it("accepts a continuation job with stalled message ids", () => {
    const job = {
      mailboxId: "a",
      tick: "20240501T1005Z",
      continuation: 2,
      stalled: ["0".repeat(32)],
    };
    expect(parseJob(JSON.stringify(job))).toEqual(job);
  });
});

describe("jobScheduledAt", () => {
  it("is the job's scheduledAt, else the start of its tick's minute", () => {
    const tick = "20240501T1005Z";
    expect(jobScheduledAt({ mailboxId: "a", tick, scheduledAt: "2024-05-01T10:05:42.000Z" })).toBe(
      Date.parse("2024-05-01T10:05:42.000Z"),
    );
    expect(jobScheduledAt({ mailboxId: "a", tick })).toBe(Date.parse("2024-05-01T10:05:00.000Z"));
  });
});
