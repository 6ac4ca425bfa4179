import { ResourceNotFoundException } from "@aws-sdk/client-eventbridge";
import { describe, expect, it } from "vitest";
import {
  EventBridgeFanout,
  MAX_EVENT_BYTES,
} from "../../../lambdas/adapters/eventbridge-fanout.ts";
import { describeError, ErrorCode } from "../../../lambdas/errors.ts";
import type { MessageQueue, QueueEntry } from "../../../lambdas/ports.ts";
import { mockEventBridge } from "./mock-aws.ts";

function recordingQueue(fail = false): MessageQueue & { sent: QueueEntry[] } {
  const sent: QueueEntry[] = [];
  return {
    sent,
    maxBodyBytes: 1_048_576,
    async send(entries) {
      if (fail) throw new Error("queue down");
      sent.push(...entries);
    },
  };
}

/** The Entries of the n-th PutEvents call. */
function eventsOf(
  calls: { input: Record<string, unknown> }[],
  n: number,
): Array<Record<string, string>> {
  const call = calls[n];
  if (!call) throw new Error(`no PutEvents call #${n}`);
  return call.input.Entries as Array<Record<string, string>>;
}

const entry = (i: number, body = `{"id":"${i}"}`): QueueEntry => ({
  id: String(i),
  body,
  pointer: `{"id":"${i}","pointer":true}`,
});

describe("EventBridgeFanout", () => {
  it("sends to the queue first, then publishes every entry in PutEvents calls of at most 10", async () => {
    const queue = recordingQueue();
    const { client, calls } = mockEventBridge(() => ({ FailedEntryCount: 0 }));
    const fanout = new EventBridgeFanout({ queue, client, eventBusName: "bus" });
    await fanout.send(Array.from({ length: 23 }, (_, i) => entry(i)));
    expect(queue.sent).toHaveLength(23);
    const sizes = calls.map((c) => (c.input.Entries as unknown[]).length);
    expect(sizes).toEqual([10, 10, 3]);
    const first = eventsOf(calls, 0)[0];
    expect(first).toMatchObject({
      EventBusName: "bus",
      Source: "mail-ingest",
      DetailType: "MailIngested",
      Detail: '{"id":"0"}',
    });
  });

  it("publishes the pointer form when the full body exceeds EventBridge's 256 KiB limit", async () => {
    const { client, calls } = mockEventBridge(() => ({ FailedEntryCount: 0 }));
    const fanout = new EventBridgeFanout({ queue: recordingQueue(), client, eventBusName: "bus" });
    await fanout.send([entry(1, JSON.stringify({ id: "1", pad: "x".repeat(MAX_EVENT_BYTES) }))]);
    const detail = eventsOf(calls, 0)[0]?.Detail;
    expect(detail).toBe('{"id":"1","pointer":true}');
  });

  it("keeps each PutEvents request under EventBridge's 256 KiB total, not only each entry", async () => {
    // PutEvents rejects the whole request ("Total size of the entries in the request is over the
    // limit") when its entries together reach 256 KiB; entry size is Source + DetailType + Detail
    // in UTF-8 bytes. Ten bodies of 100 KiB each fit one by one but not ten to a request.
    const { client, calls } = mockEventBridge((call) => {
      const entries = call.input.Entries as Array<Record<string, string>>;
      const total = entries.reduce(
        (sum, e) =>
          sum +
          Buffer.byteLength(e.Source ?? "") +
          Buffer.byteLength(e.DetailType ?? "") +
          Buffer.byteLength(e.Detail ?? ""),
        0,
      );
      if (total >= MAX_EVENT_BYTES) {
        throw new Error(
          "ValidationException: Total size of the entries in the request is over the limit",
        );
      }
      return { FailedEntryCount: 0 };
    });
    const fanout = new EventBridgeFanout({ queue: recordingQueue(), client, eventBusName: "bus" });
    const bodies = Array.from({ length: 10 }, (_, i) =>
      JSON.stringify({ id: String(i), pad: "é".repeat(50 * 1024) }),
    );
    await fanout.send(bodies.map((body, i) => entry(i, body)));
    const published = calls.flatMap((_, n) => eventsOf(calls, n).map((e) => e.Detail));
    expect(published).toEqual(bodies);
    expect(calls.length).toBeGreaterThan(1);
  });

  it("retries only the entries EventBridge failed, and gives up with QUEUE_FAILED", async () => {
    let attempt = 0;
    const { client, calls } = mockEventBridge((call) => {
      attempt++;
      const entries = call.input.Entries as unknown[];
      if (attempt === 1)
        return {
          FailedEntryCount: 1,
          Entries: entries.map((_, i) =>
            i === 1 ? { ErrorCode: "ThrottlingException" } : { EventId: "e" },
          ),
        };
      return { FailedEntryCount: 0 };
    });
    await new EventBridgeFanout({ queue: recordingQueue(), client, eventBusName: "bus" }).send([
      entry(0),
      entry(1),
      entry(2),
    ]);
    expect(eventsOf(calls, 1).map((e) => e.Detail)).toEqual(['{"id":"1"}']);

    const always = mockEventBridge((call) => ({
      FailedEntryCount: (call.input.Entries as unknown[]).length,
      Entries: (call.input.Entries as unknown[]).map(() => ({ ErrorCode: "InternalFailure" })),
    }));
    const err = await new EventBridgeFanout({
      queue: recordingQueue(),
      client: always.client,
      eventBusName: "bus",
    })
      .send([entry(0)])
      .catch((e) => e);
    expect(err.code).toBe(ErrorCode.QUEUE_FAILED);
    expect(always.calls).toHaveLength(3);
  });

  it("wraps a failed PutEvents request as QUEUE_FAILED with the SDK error as its cause", async () => {
    const { client } = mockEventBridge(() => {
      throw new ResourceNotFoundException({
        message: "Event bus bus does not exist.",
        $metadata: { httpStatusCode: 400 },
      });
    });
    const err = await new EventBridgeFanout({
      queue: recordingQueue(),
      client,
      eventBusName: "bus",
    })
      .send([entry(0)])
      .catch((e) => e);
    expect(err.code).toBe(ErrorCode.QUEUE_FAILED);
    expect(describeError(err)).toBe(
      "EventBridge PutEvents failed: ResourceNotFoundException: Event bus bus does not exist.",
    );
  });

  it("publishes nothing when the queue send fails", async () => {
    const { client, calls } = mockEventBridge(() => ({ FailedEntryCount: 0 }));
    const fanout = new EventBridgeFanout({
      queue: recordingQueue(true),
      client,
      eventBusName: "bus",
    });
    await expect(fanout.send([entry(0)])).rejects.toThrow("queue down");
    expect(calls).toHaveLength(0);
  });
});
