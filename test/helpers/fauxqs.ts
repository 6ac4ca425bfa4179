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

export interface FauxqsOptions {
  /**
   * Honour S3's conditional PutObject (`If-None-Match: *`, `If-Match: <etag>`), which fauxqs
   * 1.9.2 ignores. See {@link enforceConditionalPuts}. @default false
   */
  readonly conditionalPuts?: boolean;
  /** Told of every request (method and URL), e.g. for the bench's S3 PUT count. */
  readonly onRequest?: (method: string, url: string) => void;
}

export async function startFauxqs(options: FauxqsOptions = {}): Promise<Fauxqs> {
  const app = buildApp({ logger: false });
  if (options.conditionalPuts) enforceConditionalPuts(app);
  const { onRequest } = options;
  if (onRequest) {
    app.addHook("onRequest", (request, _reply, done) => {
      onRequest(request.method, request.url);
      done();
    });
  }
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

type FauxqsApp = ReturnType<typeof buildApp>;

/**
 * Adds S3's conditional writes to single-request PutObject, as S3 answers them: 412
 * PreconditionFailed when `If-None-Match: *` finds an object or `If-Match` names another ETag,
 * 404 NoSuchKey for `If-Match` on a missing key, and 409 ConditionalRequestConflict while another
 * conditional write to the key is in flight. fauxqs 1.9.2 only checks these headers on GetObject,
 * and does not export its store, so the ETag of every object PUT or DELETEd through this server
 * is tracked here. The check and the reservation happen in one synchronous hook, so two racing
 * writers cannot both pass. Multipart uploads, CopyObject and DeleteObjects are not covered (the
 * S3 lease uses none of them).
 */
function enforceConditionalPuts(app: FauxqsApp): void {
  /** `bucket/key` → ETag of objects written here; "pending" while a conditional write runs. */
  const etags = new Map<string, string>();
  const reserved = new WeakMap<object, { id: string; previous: string | undefined }>();
  const objectId = (request: { params: unknown }): string | undefined => {
    const params = request.params as { bucket?: string; "*"?: string } | undefined;
    return params?.bucket && params["*"] ? `${params.bucket}/${params["*"]}` : undefined;
  };
  const unquote = (etag: string) => etag.replace(/^W\//, "").replace(/"/g, "");
  const fail = (
    reply: { status(code: number): { header(k: string, v: string): { send(b: string): void } } },
    status: number,
    code: string,
  ) =>
    reply
      .status(status)
      .header("content-type", "application/xml")
      .send(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`,
      );

  app.addHook("preHandler", (request, reply, done) => {
    const id = objectId(request);
    const query = request.query as Record<string, unknown>;
    if (
      request.method !== "PUT" ||
      id === undefined ||
      query.uploadId !== undefined ||
      request.headers["x-amz-copy-source"] !== undefined
    ) {
      done();
      return;
    }
    const ifNoneMatch = request.headers["if-none-match"];
    const ifMatch = request.headers["if-match"];
    if (ifNoneMatch === undefined && ifMatch === undefined) {
      done();
      return;
    }
    const current = etags.get(id);
    if (current === "pending") return fail(reply, 409, "ConditionalRequestConflict");
    if (ifNoneMatch === "*" && current !== undefined) return fail(reply, 412, "PreconditionFailed");
    if (typeof ifMatch === "string") {
      if (current === undefined) return fail(reply, 404, "NoSuchKey");
      if (unquote(ifMatch) !== unquote(current)) return fail(reply, 412, "PreconditionFailed");
    }
    reserved.set(request, { id, previous: current });
    etags.set(id, "pending");
    done();
  });

  app.addHook("onSend", (request, reply, payload, done) => {
    const id = objectId(request);
    const query = request.query as Record<string, unknown>;
    if (id !== undefined && query.uploadId === undefined) {
      const reservation = reserved.get(request);
      const ok = reply.statusCode < 300;
      const etag = reply.getHeader("etag");
      if (request.method === "PUT" && ok && typeof etag === "string") etags.set(id, etag);
      else if (request.method === "DELETE" && ok) etags.delete(id);
      else if (reservation) {
        if (reservation.previous === undefined) etags.delete(id);
        else etags.set(id, reservation.previous);
      }
    }
    done(null, payload);
  });
}
