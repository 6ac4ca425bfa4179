/**
 * The pipeline against a real Dovecot on loopback: byte-exactness at volume, incremental polls,
 * delete-after-ingest, and SIGKILL at arbitrary points of a real CLI process.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { pop3Source } from "../../lambdas/adapters/pop3-source.ts";
import { Pop3Client, type Pop3Options } from "../../lambdas/pop3/index.ts";
import {
  type DovecotHandle,
  describeDovecot,
  implicitTlsMailbox,
  startDovecot,
} from "../helpers/dovecot.ts";
import {
  generateLargeMessage,
  generateMessage,
  largeMessageAttachments,
} from "../helpers/messages.ts";
import { type FsWorld, fsWorld, listFiles, sha256 } from "../helpers/pipeline.ts";
import { finish } from "../helpers/process.ts";

const REPO = path.resolve(import.meta.dirname, "../..");
const CLI = path.join(REPO, "bin/mail-ingest.js");

describeDovecot("pipeline against Dovecot", () => {
  let dovecot: DovecotHandle;
  const worlds: FsWorld[] = [];
  const users = ["bulk", "incr", "dele", "loop", "kill", "huge"].map((user) => ({
    user,
    password: `pw-${user}`,
  }));

  beforeAll(async () => {
    dovecot = await startDovecot({ users });
  });
  afterAll(async () => {
    await dovecot?.stop();
    for (const w of worlds) await w.cleanup();
  });

  /** The mailbox fields for one Dovecot user over implicit TLS (id "box", as fsWorld uses). */
  function mailboxFor(user: string) {
    return { id: "box", ...implicitTlsMailbox(dovecot, user) };
  }

  async function worldFor(user: string, mailbox: Record<string, unknown> = {}) {
    const world = await fsWorld({ ...mailboxFor(user), ...mailbox }, `pw-${user}`);
    worlds.push(world);
    return world;
  }

  /** A config file for the CLI beside `world`, so both use the same data dir. */
  async function writeCliConfig(world: FsWorld, user: string, mailbox: Record<string, unknown>) {
    const file = path.join(world.dir, "config.json");
    await writeFile(file, JSON.stringify({ mailboxes: [{ ...mailboxFor(user), ...mailbox }] }));
    return file;
  }

  it("ingests 200 generated messages byte-exact (raw and every attachment), and a second poll adds nothing", async () => {
    const sent = Array.from({ length: 200 }, (_, i) => generateMessage(i));
    await dovecot.deliver("bulk", sent);
    const world = await worldFor("bulk");
    const report = await world.poll();
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ listed: 200, new: 200, ingested: 200, failed: 0 });
    expect([...(await world.raw()).values()].sort()).toEqual(sent.map(sha256).sort());

    const queued = await world.queue();
    expect(new Set(queued.map((q) => q.id)).size).toBe(200);
    let attachments = 0;
    for (const q of queued) {
      for (const a of q.attachments as Array<{ ref: string; sha256: string; size: number }>) {
        const bytes = await readFile(path.join(world.dir, "mail-ingest-data", a.ref));
        expect(sha256(bytes)).toBe(a.sha256);
        expect(bytes.length).toBe(a.size);
        attachments++;
      }
    }
    expect(attachments).toBeGreaterThan(40);

    expect(await world.poll()).toMatchObject({ listed: 200, new: 0, ingested: 0 });
    expect(await world.queue()).toHaveLength(200);
  });

  it("picks up new mail over STLS", async () => {
    await dovecot.deliver("incr", [generateMessage(1000), generateMessage(1001)]);
    const world = await worldFor("incr", { tls: "starttls", port: dovecot.pop3Port });
    expect(await world.poll()).toMatchObject({ ingested: 2 });
    await dovecot.deliver("incr", [generateMessage(1002)]);
    expect(await world.poll()).toMatchObject({ listed: 3, new: 1, ingested: 1 });
  });

  it("delete after-ingest empties the server", async () => {
    await dovecot.deliver(
      "dele",
      Array.from({ length: 30 }, (_, i) => generateMessage(2000 + i)),
    );
    const world = await worldFor("dele", { delete: "after-ingest" });
    expect(await world.poll()).toMatchObject({ ingested: 30, deleted: 30 });
    expect(await dovecot.messageCount("dele")).toBe(0);
    expect((await world.raw()).size).toBe(30);
  });

  // Regression: state kept the UIDLs of messages we had deleted, so every poll of a delete-mode
  // mailbox looked like a UIDL reset (warning, TOP per message), and a new message sharing an old
  // one's Message-ID and size was taken for it: never stored, and deleted on the next poll.
  it("delete mode over many polls never suspects a UIDL reset, never sends TOP, and stores a Message-ID look-alike", async () => {
    const world = await worldFor("loop", { delete: "after-ingest" });
    const commands: string[] = [];
    const connect = (options: Pop3Options) =>
      Pop3Client.connect({
        ...options,
        trace: (e) => {
          if (e.direction === "C") commands.push(e.line.split(" ")[0] as string);
        },
      });
    const first = Array.from({ length: 12 }, (_, i) => generateMessage(4000 + i));
    // Same Message-ID and size as the first message, one body byte different.
    const lookAlike = Buffer.from(first[0] as Uint8Array);
    const at = lookAlike.lastIndexOf("e");
    lookAlike[at] = "E".charCodeAt(0);
    const rounds: Uint8Array[][] = [
      first,
      [lookAlike, ...Array.from({ length: 7 }, (_, i) => generateMessage(4100 + i))],
      ...Array.from({ length: 5 }, (_, r) =>
        Array.from({ length: 20 }, (_, i) => generateMessage(4200 + r * 20 + i)),
      ),
    ];
    let polls = 0;
    for (const [r, batch] of rounds.entries()) {
      await dovecot.deliver("loop", batch);
      // Odd rounds drain in two capped runs, as a scheduled job with maxMessagesPerRun would.
      const caps = r % 2 === 1 ? [10, undefined] : [undefined];
      for (const maxMessagesPerRun of caps) {
        const report = await world.poll({
          deps: { openSource: pop3Source(connect) },
          mailbox: { maxMessagesPerRun },
        });
        polls++;
        expect(report.error).toBeUndefined();
        expect(report.warnings).toEqual([]);
      }
      expect(await dovecot.messageCount("loop")).toBe(0);
    }
    expect(polls).toBeGreaterThan(rounds.length);
    expect(commands).toContain("RETR");
    expect(commands).not.toContain("TOP");
    const delivered = rounds.flat();
    expect([...(await world.raw()).values()].sort()).toEqual(delivered.map(sha256).sort());
    expect((await world.queue()).map((q) => q.sha256)).toContain(sha256(lookAlike));
    expect(await world.queue()).toHaveLength(delivered.length);
  });

  it("SIGKILL at arbitrary points, then a rerun, gives exactly one of each and loses nothing", async () => {
    const sent = Array.from({ length: 200 }, (_, i) => generateMessage(3000 + i));
    await dovecot.deliver("kill", sent);
    const world = await worldFor("kill");
    const configFile = await writeCliConfig(world, "kill", {
      password: { env: "KILL_POP_PASSWORD" },
      delete: "after-ingest",
    });
    const rawDir = path.join(world.dir, "mail-ingest-data", "raw");
    const poll = () =>
      spawn(process.execPath, [CLI, "poll", "--config", configFile, "--json"], {
        env: { ...process.env, KILL_POP_PASSWORD: "pw-kill" },
        stdio: ["ignore", "pipe", "pipe"],
      });

    for (const killAt of [15, 70, 140]) {
      const child = poll();
      const exited = new Promise((resolve) => child.once("exit", resolve));
      while ((await listFiles(rawDir)).length < killAt && child.exitCode === null) await sleep(20);
      child.kill("SIGKILL");
      await exited;
    }
    // The server may still hold the killed session's maildrop lock for a moment ([IN-USE]).
    let result: { code: number | null; stdout: string } = { code: null, stdout: "" };
    for (let attempt = 0; attempt < 20; attempt++) {
      result = await finish(poll());
      if (result.code === 0) break;
      await sleep(250);
    }
    expect(result.code).toBe(0);

    expect([...(await world.raw()).values()].sort()).toEqual(sent.map(sha256).sort());
    const queued = await world.queue();
    expect(queued).toHaveLength(200);
    expect(new Set(queued.map((q) => q.sha256))).toEqual(new Set(sent.map(sha256)));
    expect(await dovecot.messageCount("kill")).toBe(0);
  });

  it("ingests a 300 MB message in bounded memory, raw and attachments byte-exact", async () => {
    const total = 300 * 1024 * 1024;
    await dovecot.deliverStream("huge", generateLargeMessage(total, 2));
    const world = await worldFor("huge");
    const configFile = await writeCliConfig(world, "huge", {
      password: "pw-huge",
      maxMessageBytes: 400 * 1024 * 1024,
    });
    // The CLI in its own process, so its peak RSS (getrusage) is the pipeline's alone.
    const wrapper = [
      'const { register } = await import("tsx/esm/api");',
      "register();",
      `const { main } = await import(${JSON.stringify(path.join(REPO, "lambdas/cli/main.ts"))});`,
      `const code = await main(["poll", "--config", ${JSON.stringify(configFile)}, "--json"]);`,
      'process.stderr.write("maxRSS=" + process.resourceUsage().maxRSS + "\\n");',
      "process.exitCode = code;",
    ].join("\n");
    const child = spawn(process.execPath, ["--input-type=module", "-e", wrapper], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const result = await finish(child);
    expect(result.code, stderr).toBe(0);
    const report = JSON.parse(result.stdout).mailboxes[0];
    expect(report).toMatchObject({ ingested: 1, failed: 0 });
    expect(report.bytes).toBeGreaterThan(total * 0.99);
    const maxRssKiB = Number(/maxRSS=(\d+)/.exec(stderr)?.[1]);
    // A buffered message alone would be 300 MiB; the whole process must stay under 256 MiB.
    expect(maxRssKiB).toBeGreaterThan(0);
    expect(maxRssKiB / 1024).toBeLessThan(256);

    const [queued] = await world.queue();
    if (!queued) throw new Error("nothing was queued");
    const sent = await streamSha256(generateLargeMessage(total, 2));
    expect(queued.sha256).toBe(sent);
    const rawKey = (queued.raw as { key: string }).key;
    expect(
      await streamSha256(createReadStream(path.join(world.dir, "mail-ingest-data", rawKey))),
    ).toBe(sent);
    const attachments = (queued.attachments ?? []) as Array<{
      filename: string;
      sha256: string;
      size: number;
    }>;
    const expected = largeMessageAttachments(total, 2);
    expect(attachments.map((a) => [a.filename, a.size, a.sha256])).toEqual(
      expected.map((a) => [a.filename, a.size, a.sha256]),
    );
  });
});

async function streamSha256(stream: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest("hex");
}
