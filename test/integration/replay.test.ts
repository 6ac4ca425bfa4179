/**
 * `mail-ingest replay` as a user runs it (real child processes): mail is polled from the built-in
 * POP3 server into S3 + SQS on fauxqs (real HTTP, real AWS SDK) or into the fs backend, the
 * queue is drained as a consumer would, and replay must put the same bodies back.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { generateLargeMessage, generateMessage } from "../helpers/messages.ts";
import { finish } from "../helpers/process.ts";

const CLI = path.resolve(import.meta.dirname, "../../bin/mail-ingest.js");
/** Fake AWS credentials, one attempt per call: no test may reach (or wait for) real AWS. */
const NO_AWS = {
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
  AWS_REGION: "us-east-1",
  AWS_MAX_ATTEMPTS: "1",
};
/** 16 KiB margin + 4 KiB: plain messages fit in full, the one with 60 attachments does not. */
const QUEUE_LIMIT = 20_480;

function cli(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...NO_AWS },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return finish(child);
}

async function buffer(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let dir: string;
let server: Pop3TestServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mi-replay-"));
  const many = await buffer(generateLargeMessage(120_000, 60));
  const messages = [0, 1, 2].map((i) => ({ uidl: `m${i}`, data: generateMessage(i) }));
  server = await startPop3TestServer({
    users: {
      box: { password: "pw", messages: [...messages, { uidl: "many", data: many }] },
      plain: { password: "pw", messages: messages.map((m) => ({ ...m })) },
    },
  });
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const mailbox = (id: string) => ({
  id,
  host: server.host,
  port: server.port,
  tls: "none",
  allowInsecureAuth: true,
  username: id,
  password: "pw",
});

async function writeConfig(name: string, config: object): Promise<string> {
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(config));
  return file;
}

describe("replay against S3 and SQS (fauxqs)", () => {
  let fauxqs: Fauxqs;
  let bucket: string;
  let queueUrl: string;
  let file: string;

  beforeAll(async () => {
    fauxqs = await startFauxqs();
    bucket = await fauxqs.createBucket();
    queueUrl = await fauxqs.createQueue();
    const aws = { endpoint: fauxqs.endpoint, region: "us-east-1" };
    file = await writeConfig("aws", {
      storage: { type: "s3", bucket, forcePathStyle: true, ...aws },
      queue: { type: "sqs", queueUrl, maxMessageBytes: QUEUE_LIMIT, ...aws },
      mailboxes: [mailbox("box")],
    });
  });
  afterAll(async () => {
    await fauxqs?.stop();
  });

  const bodiesById = async (): Promise<Map<string, string>> =>
    new Map(
      (await fauxqs.receiveAll(queueUrl)).map((m) => [JSON.parse(m.Body ?? "").id, m.Body ?? ""]),
    );

  it("re-sends exactly the bodies the poll queued, in pointer form where the full form exceeds the queue's limit", async () => {
    expect((await cli(["poll", "--config", file])).code).toBe(0);
    const original = await bodiesById();
    expect(original.size).toBe(4);

    const result = await cli(["replay", "--config", file, "--mailbox", "box", "--json"]);
    expect(result.stderr).not.toContain("mail-ingest warning");
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      mailbox: "box",
      found: 4,
      replayed: 4,
      pointers: 1,
      older: 0,
      invalid: 0,
    });
    const replayed = await bodiesById();
    expect(replayed).toEqual(original);
    const pointers = [...replayed.values()].map((b) => JSON.parse(b)).filter((b) => b.pointer);
    expect(pointers).toHaveLength(1);
    expect(pointers[0].meta.uri).toBe(`s3://${bucket}/meta/box/${pointers[0].id}.json`);
    for (const body of replayed.values()) {
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(QUEUE_LIMIT);
    }
  });

  it("--since keeps only messages ingested at or after the instant", async () => {
    const cut = new Date();
    server.addMessages("box", [{ uidl: "late", data: generateMessage(9) }]);
    expect((await cli(["poll", "--config", file])).code).toBe(0);
    const late = await bodiesById();
    expect(late.size).toBe(1);

    const result = await cli(["replay", "-c", file, "-m", "box", "--since", cut.toISOString()]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      "box: 1 replayed (0 in pointer form) of 5 stored, 4 older than --since, 0 unreadable\n",
    );
    expect(await bodiesById()).toEqual(late);
  });

  it("skips an unreadable metadata object with a warning naming it, replays the rest, and exits 1", async () => {
    const key = `meta/box/${"f".repeat(32)}.json`;
    await fauxqs.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "{not json" }));
    const result = await cli(["replay", "--config", file, "--mailbox", "box"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `mail-ingest warning: mailbox box: ${key} skipped: not a queue message of this mailbox`,
    );
    expect(result.stdout).toContain("box: 5 replayed (1 in pointer form) of 6 stored");
    expect((await bodiesById()).size).toBe(5);
    await fauxqs.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "{}" }));
  });

  it("names the mailbox and the cause when the queue does not exist", async () => {
    const missing = await writeConfig("aws-noqueue", {
      storage: {
        type: "s3",
        bucket,
        forcePathStyle: true,
        endpoint: fauxqs.endpoint,
        region: "us-east-1",
      },
      queue: {
        type: "sqs",
        queueUrl: queueUrl.replace(/[^/]+$/, "no-such-queue"),
        endpoint: fauxqs.endpoint,
        region: "us-east-1",
      },
      mailboxes: [mailbox("box")],
    });
    const result = await cli(["replay", "--config", missing, "--mailbox", "box"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^box: replay failed\n {2}ERROR mailbox box: .*QueueDoesNotExist: The specified queue does not exist/,
    );
  });

  it("exits 2 naming the problem for a mailbox not in the config, a missing --mailbox or a bad --since", async () => {
    const unknown = await cli(["replay", "--config", file, "--mailbox", "nobody"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no mailbox with id "nobody"');
    const none = await cli(["replay", "--config", file]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("--mailbox ID is required");
    const since = await cli([
      "replay",
      "--config",
      file,
      "--mailbox",
      "box",
      "--since",
      "last week",
    ]);
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since: "last week" is not a date');
  });
});

describe("replay with the fs backend", () => {
  it("writes the queue files the poll wrote back after a consumer removed them", async () => {
    const file = await writeConfig("fs", {
      storage: { type: "fs", dir: "./data-fs" },
      queue: { type: "fs", dir: "./data-fs/queue" },
      mailboxes: [mailbox("plain")],
    });
    expect((await cli(["poll", "--config", file])).code).toBe(0);
    const queueDir = path.join(dir, "data-fs/queue");
    const names = (await readdir(queueDir)).filter((n) => n.endsWith(".json")).sort();
    expect(names).toHaveLength(3);
    const before = await Promise.all(names.map((n) => readFile(path.join(queueDir, n), "utf8")));
    await Promise.all(names.map((n) => rm(path.join(queueDir, n))));

    const result = await cli(["replay", "--config", file, "--mailbox", "plain"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      "plain: 3 replayed (0 in pointer form) of 3 stored, 0 older than --since, 0 unreadable\n",
    );
    const after = (await readdir(queueDir)).filter((n) => n.endsWith(".json")).sort();
    expect(after).toEqual(names);
    expect(await Promise.all(after.map((n) => readFile(path.join(queueDir, n), "utf8")))).toEqual(
      before,
    );
  });
});
