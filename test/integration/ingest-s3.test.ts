/**
 * The same mailbox session with the cloud adapters: S3 and SQS over real HTTP with the real AWS
 * SDK against fauxqs, state kept as objects in the bucket (as the Lambda poller runs it).
 */
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { generateMessage } from "../helpers/messages.ts";
import { s3World, sha256 } from "../helpers/pipeline.ts";

describe("mailbox session with S3 and SQS (fauxqs)", () => {
  let fauxqs: Fauxqs;
  let server: Pop3TestServer;
  const sent = Array.from({ length: 23 }, (_, i) => ({
    uidl: `s3-${i}`,
    data: generateMessage(7000 + i),
  }));

  beforeAll(async () => {
    fauxqs = await startFauxqs();
    server = await startPop3TestServer({ users: { u: { password: "p", messages: sent } } });
  });
  afterAll(async () => {
    await server?.close();
    await fauxqs?.stop();
  });

  it("stores raw byte-exact in S3, queues one SQS message per mail, and keeps state in the bucket", async () => {
    const { bucket, queueUrl, poll } = await s3World(fauxqs, server);
    const report = await poll();
    expect(report.error).toBeUndefined();
    expect(report.ingested).toBe(23);

    const messages = await fauxqs.receiveAll(queueUrl);
    expect(messages).toHaveLength(23);
    const bodies = messages.map((m) => JSON.parse(m.Body ?? "{}"));
    expect(new Set(bodies.map((b) => b.id)).size).toBe(23);
    for (const body of bodies) {
      expect(body.raw.uri).toBe(`s3://${bucket}/mail/${body.raw.key}`);
      expect(body.raw.bucket).toBe(bucket);
      const object = await fauxqs.s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: `mail/${body.raw.key}` }),
      );
      const bytes = await object.Body?.transformToByteArray();
      expect(sha256(bytes ?? new Uint8Array())).toBe(body.sha256);
    }
    expect(new Set(bodies.map((b) => b.sha256))).toEqual(new Set(sent.map((m) => sha256(m.data))));

    const again = await poll();
    expect(again).toMatchObject({ new: 0, ingested: 0 });
    expect(await fauxqs.receiveAll(queueUrl)).toHaveLength(0);
  });
});
