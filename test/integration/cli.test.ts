/** The `mail-ingest` binary as a user runs it: real child processes, exit codes, output. */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateMessage } from "../../lambdas/testing/messages.ts";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/testing/pop3-server.ts";
import { listFiles } from "../helpers/pipeline.ts";

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
      { ...good(), id: "nosecret", password: { env: "UNSET_VARIABLE_FOR_TEST" } },
    ]);
    const result = await run(["poll", "--config", file, "--json"], { env: { GOOD_PW: "good-pw" } });
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
    expect(byId.down.error).toMatch(/mailbox down/);
    expect(byId.nosecret.error).toMatch(/UNSET_VARIABLE_FOR_TEST/);
    expect(result.stderr).not.toContain("good-pw");
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
