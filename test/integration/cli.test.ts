/** The `mail-ingest` binary as a user runs it: real child processes, exit codes, output. */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { generateMessage } from "../helpers/messages.ts";
import { listFiles } from "../helpers/pipeline.ts";
import { closedPort } from "../helpers/process.ts";

const CLI = path.resolve(import.meta.dirname, "../../bin/mail-ingest.js");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  args: string[],
  options: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    onStdout?: (text: string, child: ReturnType<typeof spawn>) => void;
  } = {},
): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    options.onStdout?.(stdout, child);
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
}

/** Fake AWS credentials, one attempt per call: no CLI test may reach (or wait for) real AWS. */
const NO_AWS = {
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
  AWS_REGION: "us-east-1",
  AWS_MAX_ATTEMPTS: "1",
};

describe("mail-ingest CLI", () => {
  let dir: string;
  let server: Pop3TestServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mi-cli-"));
    server = await startPop3TestServer({
      users: {
        good: {
          password: "good-pw",
          messages: [0, 1, 2].map((i) => ({ uidl: `m${i}`, data: generateMessage(i) })),
        },
      },
    });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function config(name: string, mailboxes: unknown[]): Promise<string> {
    const file = path.join(dir, `${name}.json`);
    await writeFile(
      file,
      JSON.stringify({
        storage: { type: "fs", dir: `./data-${name}` },
        queue: { type: "fs", dir: `./data-${name}/queue` },
        mailboxes,
      }),
    );
    return file;
  }

  const good = () => ({
    id: "good",
    host: server.host,
    port: server.port,
    tls: "none",
    allowInsecureAuth: true,
    username: "good",
    password: { env: "GOOD_PW" },
  });

  it("exits 2 and names the field for an invalid config", async () => {
    const file = await config("bad", [{ ...good(), port: "110" }]);
    const result = await run(["poll", "--config", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("mailboxes[0].port");
  });

  it("exits 2 for usage errors", async () => {
    expect((await run(["poll"])).code).toBe(2);
    expect((await run(["frobnicate"])).code).toBe(2);
    expect((await run(["poll", "--config", "x.json", "--bogus"])).code).toBe(2);
  });

  it("poll --json prints one JSON object; a failing mailbox gives exit 1 while the others complete", async () => {
    const file = await config("mixed", [
      good(),
      // Port 1 on loopback: connection refused, quickly and deterministically.
      { ...good(), id: "down", port: 1 },
      { ...good(), id: "nosecret", password: { secretId: "mail-ingest/absent" } },
    ]);
    const result = await run(["poll", "--config", file, "--json"], {
      env: {
        GOOD_PW: "good-pw",
        ...NO_AWS,
        AWS_ENDPOINT_URL_SECRETS_MANAGER: "http://127.0.0.1:1",
      },
    });
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout);
    const byId = Object.fromEntries(json.mailboxes.map((m: { id: string }) => [m.id, m]));
    expect(byId.good).toMatchObject({
      listed: 3,
      new: 3,
      ingested: 3,
      skipped: 0,
      failed: 0,
      deleted: 0,
    });
    expect(Object.keys(byId.good)).toEqual(
      expect.arrayContaining([
        "id",
        "listed",
        "new",
        "ingested",
        "skipped",
        "failed",
        "deleted",
        "bytes",
        "durationMs",
      ]),
    );
    expect(byId.down.error).toMatch(/^mailbox down: .*ECONNREFUSED 127\.0\.0\.1:1$/);
    // Secrets Manager stays lazy: its failure names the mailbox and the secret id.
    expect(byId.nosecret.error).toMatch(
      /^mailbox nosecret: cannot read secret mail-ingest\/absent: /,
    );
    expect(byId.nosecret).toMatchObject({ listed: null, new: null, remaining: null });
    expect(result.stderr).not.toContain("good-pw");
  });

  describe("config errors exit 2 before any session, never quoting a secret", () => {
    it("gives line and column for a JSON syntax error next to a password", async () => {
      const file = path.join(dir, "syntax.json");
      const text = JSON.stringify(
        { mailboxes: [{ ...good(), password: "PW-IN-CONFIG" }] },
        null,
        2,
      );
      // Unquote the password: Node's parser message would quote `"password": PW-IN-CONFIG`.
      await writeFile(file, text.replace('"PW-IN-CONFIG"', "PW-IN-CONFIG"));
      const result = await run(["poll", "--config", file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        `config: (file): ${file} is not valid JSON: line 10, column 19`,
      );
      expect(result.stdout + result.stderr).not.toContain("PW-IN-CONFIG");
    });

    it("rejects the mailbox id ..", async () => {
      const result = await run([
        "poll",
        "--config",
        await config("dotdot", [{ ...good(), id: ".." }]),
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain("config: mailboxes[0].id: must not be");
    });

    it.each(["poll", "check"])(
      "%s: an unset {env} of any selected mailbox stops the run before the first session",
      async (command) => {
        const file = await config(`unset-${command}`, [
          good(),
          { ...good(), id: "second" },
          { ...good(), id: "support", password: { env: "SUPPORT_POP_PASSWORD" } },
        ]);
        const result = await run([command, "--config", file], {
          env: { GOOD_PW: "good-pw", SUPPORT_POP_PASSWORD: "" },
        });
        expect(result.code).toBe(2);
        expect(result.stderr).toContain(
          "mail-ingest: config: mailboxes[2].password.env: SUPPORT_POP_PASSWORD is not set",
        );
        expect(result.stdout).toBe("");
        expect(await listFiles(path.join(dir, `data-unset-${command}`))).toEqual([]);
        expect(result.stderr).not.toContain("good-pw");
      },
    );

    it("names an unreadable {file} and its cause", async () => {
      const missing = path.join(dir, "no-such-password-file");
      const file = await config("nofile", [{ ...good(), password: { file: missing } }]);
      const result = await run(["poll", "--config", file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        `config: mailboxes[0].password.file: cannot read ${missing}: ENOENT: no such file or directory`,
      );
    });

    it.each(["storage", "queue"])(
      "names %s.dir when it exists as a regular file",
      async (which) => {
        const plain = path.join(dir, `${which}-is-a-file`);
        await writeFile(plain, "not a directory\n");
        const file = path.join(dir, `${which}-file.json`);
        await writeFile(
          file,
          JSON.stringify({
            storage: { type: "fs", dir: which === "storage" ? plain : "./data-dirfile" },
            queue: { type: "fs", dir: which === "queue" ? plain : "./data-dirfile/queue" },
            mailboxes: [good()],
          }),
        );
        const result = await run(["poll", "--config", file], { env: { GOOD_PW: "good-pw" } });
        expect(result.code).toBe(2);
        expect(result.stderr).toContain(
          `config: ${which}.dir: ${plain} exists and is not a directory`,
        );
        expect(result.stdout).toBe("");
      },
    );
  });

  describe("errors carry their cause, in --json and in text", () => {
    let fauxqs: Fauxqs;
    beforeAll(async () => {
      fauxqs = await startFauxqs();
    });
    afterAll(async () => {
      await fauxqs?.stop();
    });

    async function awsConfig(name: string, storage: object, queue: object): Promise<string> {
      const file = path.join(dir, `${name}.json`);
      await writeFile(file, JSON.stringify({ storage, queue, mailboxes: [good()] }));
      return file;
    }
    const s3 = (endpoint: string, bucket: string) => ({
      type: "s3",
      bucket,
      endpoint,
      region: "us-east-1",
      forcePathStyle: true,
    });
    const env = { GOOD_PW: "good-pw", ...NO_AWS };

    /** Runs poll --json and poll (text); returns the error and the text output. */
    async function pollBoth(file: string) {
      const json = await run(["poll", "--config", file, "--json"], { env });
      expect(json.code).toBe(1);
      const [report] = JSON.parse(json.stdout).mailboxes;
      const text = await run(["poll", "--config", file], { env });
      expect(text.code).toBe(1);
      expect(json.stdout + json.stderr + text.stdout + text.stderr).not.toContain("good-pw");
      return { report, text: text.stdout };
    }

    it("a missing bucket: NoSuchBucket, and no claim of an empty listing", async () => {
      const file = await awsConfig("nobucket", s3(fauxqs.endpoint, "no-such-bucket"), {
        type: "fs",
        dir: "./data-nobucket/queue",
      });
      const { report, text } = await pollBoth(file);
      // The first S3 call of a poll takes the mailbox's lease, under the state prefix.
      expect(report.error).toMatch(
        /^mailbox good: S3 lease failed to put state\/good\/lease\.json: NoSuchBucket: The specified bucket does not exist/,
      );
      expect(report).toMatchObject({ listed: null, new: null, ingested: 0 });
      expect(text).toContain(`good: failed before listing the mailbox`);
      expect(text).toContain(`ERROR ${report.error}`);
      expect(text).not.toMatch(/listed/);

      const check = await run(["check", "--config", file], { env });
      expect(check.code).toBe(1);
      expect(check.stdout).toContain(
        "good: FAILED S3 failed to get state/good/snapshot.json: NoSuchBucket",
      );
    });

    it("a missing queue: QueueDoesNotExist", async () => {
      const existing = await fauxqs.createQueue();
      const missing = existing.replace(/[^/]+$/, "no-such-queue");
      const file = await awsConfig(
        "noqueue",
        { type: "fs", dir: "./data-noqueue" },
        { type: "sqs", queueUrl: missing, endpoint: fauxqs.endpoint, region: "us-east-1" },
      );
      const { report, text } = await pollBoth(file);
      expect(report.error).toMatch(
        /^mailbox good: .*SendMessageBatch failed for .*: QueueDoesNotExist: The specified queue does not exist/,
      );
      expect(report.listed).toBe(3);
      expect(text).toMatch(/ERROR .*QueueDoesNotExist: The specified queue does not exist/);
    });

    it("a closed S3 port: connect ECONNREFUSED", async () => {
      const port = await closedPort();
      const file = await awsConfig("refused", s3(`http://127.0.0.1:${port}`, "bucket"), {
        type: "fs",
        dir: "./data-refused/queue",
      });
      const { report, text } = await pollBoth(file);
      expect(report.error).toBe(
        `mailbox good: S3 lease failed to put state/good/lease.json: connect ECONNREFUSED 127.0.0.1:${port}`,
      );
      expect(text).toContain(`ERROR ${report.error}`);
    });
  });

  it("check logs in and counts without retrieving anything", async () => {
    const file = await config("check", [good()]);
    const result = await run(["check", "--config", file], { env: { GOOD_PW: "good-pw" } });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/good: OK/);
    expect(result.stdout).toMatch(/3 on server .* 3 new/);
    expect(result.stdout).toMatch(/capabilities: .*UIDL/);
    expect(await listFiles(path.join(dir, "data-check", "raw"))).toEqual([]);
  });

  it("check prints a warning for a damaged state line instead of failing the mailbox", async () => {
    const file = await config("check-damaged", [good()]);
    const log = path.join(dir, "data-check-damaged", "state", "good.jsonl");
    await mkdir(path.dirname(log), { recursive: true });
    await writeFile(log, "garbage\n");
    const result = await run(["check", "--config", file], { env: { GOOD_PW: "good-pw" } });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`warning: state ${log}:1: unreadable (not JSON), skipped`);
    const again = await run(["check", "--config", file], { env: { GOOD_PW: "good-pw" } });
    expect(again.stdout).not.toContain("warning");
  });

  it("poll --every keeps polling and exits 0 on SIGTERM after QUIT", async () => {
    const file = await config("daemon", [good()]);
    let signalled = false;
    const result = await run(["poll", "--config", file, "--json", "--every", "1s"], {
      env: { GOOD_PW: "good-pw" },
      onStdout: (text, child) => {
        // Two passes prove the loop; then ask it to stop.
        if (!signalled && text.split("\n").filter(Boolean).length >= 2) {
          signalled = true;
          child.kill("SIGTERM");
        }
      },
    });
    expect(result.code).toBe(0);
    const passes = result.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(passes[0].mailboxes[0].ingested).toBe(3);
    expect(passes[1].mailboxes[0].ingested).toBe(0);
  });

  it("npm run demo, the README's quick start, runs the demo", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "mi-npm-demo-"));
    const child = spawn("npm", ["run", "--silent", "demo", "--", "--dir", dataDir], {
      cwd: path.resolve(import.meta.dirname, "../.."),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.resume();
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(code).toBe(0);
    expect(stdout).toMatch(/First poll:\n\s+demo: \d+ ingested/);
    expect((await readdir(path.join(dataDir, "raw", "demo"))).length).toBeGreaterThanOrEqual(18);
    await rm(dataDir, { recursive: true, force: true });
  });

  it("demo shows the whole pipeline in a fresh directory", async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), "mi-demo-"));
    const result = await run(["demo"], { cwd });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/First poll:\n\s+demo: (\d+) ingested/);
    expect(result.stdout).toMatch(/Second poll[^\n]*\n\s+demo: 0 ingested/);
    const queued = await readdir(path.join(cwd, "mail-ingest-data", "queue"));
    expect(queued.length).toBeGreaterThanOrEqual(18);
    await rm(cwd, { recursive: true, force: true });
  });
});
