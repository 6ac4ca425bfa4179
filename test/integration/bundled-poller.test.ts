/**
 * Smoke test of the deployable artifact, not the TypeScript: `lambdas/handlers/poller.ts` is
 * bundled with esbuild exactly as the CDK's NodejsFunction does (ESM, node platform, minified,
 * source maps, the createRequire banner, nothing external), loaded by Node's own ESM loader from a
 * temp dir with no node_modules, and invoked against Dovecot and fauxqs S3/SQS with production
 * wiring: config, adapters and clients all come from environment variables, as in Lambda.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { build } from "esbuild";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type DovecotHandle, describeDovecot, startDovecot } from "../helpers/dovecot.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";

const ENTRY = path.resolve(import.meta.dirname, "../../lambdas/handlers/poller.ts");
const execFileAsync = promisify(execFile);

/**
 * Runs inside a fresh `node` process: imports the bundle with Node's own ESM loader (no Vitest
 * transform, no repo node_modules next to it), invokes the handler once, prints the result.
 */
const RUNNER = `
import dns from "node:dns";
// fauxqs queue URLs are http://sqs.<region>.localhost:<port>/..., and the SDK sends to the queue
// URL's host. In AWS that name resolves through DNS; here *.localhost is pointed at loopback.
const lookup = dns.lookup;
dns.lookup = (name, options, callback) => {
  if (typeof options === "function") [callback, options] = [options, {}];
  if (!name.endsWith(".localhost")) return lookup(name, options, callback);
  if (options.all) return callback(null, [{ address: "127.0.0.1", family: 4 }]);
  return callback(null, "127.0.0.1", 4);
};
const [bundle, eventJson] = process.argv.slice(2);
const { handler } = await import(bundle);
const deadline = Date.now() + 300000;
const context = {
  functionName: "poller", functionVersion: "$LATEST", memoryLimitInMB: "1024",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:poller",
  awsRequestId: "bundled-1", getRemainingTimeInMillis: () => deadline - Date.now(),
};
const result = await handler(JSON.parse(eventJson), context);
process.stdout.write("RESULT " + JSON.stringify(result) + "\\n");
`;

describeDovecot("bundled poller artifact", () => {
  let dovecot: DovecotHandle;
  let fauxqs: Fauxqs;
  let dir: string;
  let bundle: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "bundled-poller-"));
    bundle = path.join(dir, "index.mjs");
    [dovecot, fauxqs] = await Promise.all([
      startDovecot({ users: [{ user: "bun", password: "pw-bun-SECRET" }] }),
      startFauxqs(),
      build({
        entryPoints: [ENTRY],
        outfile: bundle,
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node22",
        minify: true,
        sourcemap: true,
        sourcesContent: false,
        mainFields: ["module", "main"],
        banner: {
          js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
        },
        logLevel: "silent",
      }),
    ]);
  });
  afterAll(async () => {
    await dovecot?.stop();
    await fauxqs?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("is a self-contained ESM file with a source map", async () => {
    expect((await readdir(dir)).sort()).toEqual(["index.mjs", "index.mjs.map"]);
  });

  it("ingests a mailbox end to end from the deployed config.json", async () => {
    const messages = [1, 2, 3].map((n) =>
      Buffer.from(
        `From: a@example.com\r\nTo: bun@example.com\r\nSubject: bundled ${n}\r\n` +
          `Message-ID: <bun-${n}@example.com>\r\n\r\nbody ${n}\r\n`,
      ),
    );
    await dovecot.deliver("bun", messages);
    const bucket = await fauxqs.createBucket();
    const jobsQueue = await fauxqs.createQueue("bundled-jobs", { fifo: true });
    const outputQueue = await fauxqs.createQueue("bundled-output");
    // A password file keeps this test free of Secrets Manager, which fauxqs does not emulate.
    const passwordFile = path.join(dir, "bun.password");
    await writeFile(passwordFile, "pw-bun-SECRET\n", { mode: 0o600 });
    const config = {
      mailboxes: [
        {
          id: "bun",
          host: dovecot.host,
          port: dovecot.pop3sPort,
          tls: "implicit",
          ca: dovecot.caPem,
          servername: "localhost",
          username: "bun",
          password: { file: passwordFile },
          delete: "after-ingest",
        },
      ],
    };
    await writeFile(path.join(dir, "config.json"), JSON.stringify(config));
    const env: Record<string, string> = {
      AWS_REGION: fauxqs.region,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_ENDPOINT_URL: fauxqs.endpoint,
      AWS_EC2_METADATA_DISABLED: "true",
      BUCKET_NAME: bucket,
      BUCKET_PREFIX: "mail/",
      OUTPUT_QUEUE_URL: outputQueue,
      JOBS_QUEUE_URL: jobsQueue,
      // As deployed by the construct: config.json beside the bundle, resolved via the task root.
      MAIL_INGEST_CONFIG_FILE: "config.json",
      LAMBDA_TASK_ROOT: dir,
      POWERTOOLS_METRICS_NAMESPACE: "MailIngest",
      POWERTOOLS_SERVICE_NAME: "mail-ingest",
    };

    await fauxqs.sqs.send(
      new SendMessageCommand({
        QueueUrl: jobsQueue,
        // scheduledAt is now: a job older than one schedule period would be dropped unrun.
        MessageBody: JSON.stringify({
          mailboxId: "bun",
          tick: "20240501T1005Z",
          scheduledAt: new Date().toISOString(),
        }),
        MessageGroupId: "bun",
        MessageDeduplicationId: "bun:20240501T1005Z",
      }),
    );
    const [job] = await fauxqs.receiveAll(jobsQueue);
    if (!job) throw new Error("job not received");
    const event: SQSEvent = {
      Records: [
        {
          messageId: job.MessageId ?? "",
          receiptHandle: job.ReceiptHandle ?? "",
          body: job.Body ?? "",
          attributes: {
            ApproximateReceiveCount: "1",
            SentTimestamp: "0",
            SenderId: "local",
            ApproximateFirstReceiveTimestamp: "0",
            MessageGroupId: "bun",
            MessageDeduplicationId: "bun:20240501T1005Z",
          },
          messageAttributes: {},
          md5OfBody: job.MD5OfBody ?? "",
          eventSource: "aws:sqs",
          eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:bundled-jobs.fifo",
          awsRegion: "us-east-1",
        },
      ],
    };

    const runner = path.join(dir, "run.mjs");
    await writeFile(runner, RUNNER);
    // The child sees only these variables: nothing leaks in from the developer's shell.
    const { stdout, stderr } = await execFileAsync(
      process.execPath,
      [runner, pathToFileURL(bundle).href, JSON.stringify(event)],
      { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 },
    );
    // Powertools writes WARN/ERROR lines to stderr and the rest (with EMF) to stdout.
    const all = `${stdout}\n${stderr}`;
    const lines = all.split("\n").filter((line) => line.trim());
    const resultLine = lines.find((line) => line.startsWith("RESULT "));
    const result: unknown = JSON.parse(resultLine?.slice("RESULT ".length) ?? "null");
    const json = lines.flatMap((line) => {
      try {
        const value: unknown = JSON.parse(line);
        return typeof value === "object" && value !== null
          ? [value as Record<string, unknown>]
          : [];
      } catch {
        return [];
      }
    });
    expect(result, all).toEqual({ batchItemFailures: [] });

    const queued = await fauxqs.receiveAll(outputQueue);
    expect(queued).toHaveLength(3);
    expect(await dovecot.messageCount("bun")).toBe(0);
    const emf = json.find((o) => "_aws" in o && o.mailbox === "bun");
    expect(emf).toMatchObject({ MessagesIngested: 3, Backlog: 0 });
    // Powertools JSON log lines from the artifact, correlated by mailbox.
    expect(json.some((o) => o.message === "mailbox polled" && o.mailbox === "bun")).toBe(true);
    expect(all).not.toContain("pw-bun-SECRET");
    // Raw objects sit under the configured prefix.
    const listed = await fauxqs.s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: "mail/raw/bun/" }),
    );
    expect(listed.KeyCount).toBe(3);
  });
});
