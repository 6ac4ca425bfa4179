/**
 * Starts fauxqs (an in-process S3 + SQS emulator) for tests: real HTTP on 127.0.0.1 with an
 * ephemeral port, real AWS SDK clients pointed at it. fauxqs's own startFauxqs() listens on
 * 0.0.0.0, so this builds its app and listens on loopback itself.
 */

import { randomBytes } from "node:crypto";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { buildApp } from "fauxqs";

export interface FauxqsClientConfig {
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly forcePathStyle: true;
}

export interface Fauxqs {
  readonly endpoint: string;
  readonly region: string;
  /** Config for building further SDK clients against this server. */
  readonly clientConfig: FauxqsClientConfig;
  readonly s3: S3Client;
  readonly sqs: SQSClient;
  /** Creates a bucket (unique name by default) and returns its name. */
  createBucket(name?: string): Promise<string>;
  /** Creates a queue (unique name by default; `.fifo` appended for FIFO) and returns its URL. */
  createQueue(name?: string, opts?: { readonly fifo?: boolean }): Promise<string>;
  /** Receives and deletes every message currently visible in the queue. */
  receiveAll(queueUrl: string): Promise<Message[]>;
  stop(): Promise<void>;
}

export async function startFauxqs(): Promise<Fauxqs> {
  const app = buildApp({ logger: false });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  if (address === null || typeof address === "string") {
    await app.close();
    throw new Error("fauxqs did not report a TCP address");
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  const region = "us-east-1";
  const clientConfig: FauxqsClientConfig = {
    endpoint,
    region,
    // fauxqs does no authentication; the SDK still needs something to sign with.
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    forcePathStyle: true,
  };
  const s3 = new S3Client(clientConfig);
  const sqs = new SQSClient({
    endpoint,
    region,
    credentials: clientConfig.credentials,
  });
  const unique = (stem: string) => `${stem}-${randomBytes(4).toString("hex")}`;

  return {
    endpoint,
    region,
    clientConfig,
    s3,
    sqs,
    async createBucket(name = unique("bucket")) {
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async createQueue(name = unique("queue"), opts = {}) {
      const fifo = opts.fifo === true;
      const queueName = fifo && !name.endsWith(".fifo") ? `${name}.fifo` : name;
      const out = await sqs.send(
        new CreateQueueCommand({
          QueueName: queueName,
          Attributes: fifo ? { FifoQueue: "true" } : {},
        }),
      );
      if (out.QueueUrl === undefined) throw new Error(`fauxqs returned no URL for ${queueName}`);
      return out.QueueUrl;
    },
    async receiveAll(queueUrl) {
      const all: Message[] = [];
      for (;;) {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            MessageSystemAttributeNames: ["All"],
          }),
        );
        const messages = out.Messages ?? [];
        if (messages.length === 0) return all;
        all.push(...messages);
        // Deleting lets a FIFO queue release the next message of the same group.
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
      }
    },
    async stop() {
      s3.destroy();
      sqs.destroy();
      await app.close();
    },
  };
}
