/**
 * Overlapping runs (issue 8, item 6): one session per mailbox, across processes. Sessions against
 * the built-in POP3 server with the real fs and S3 (fauxqs) locks, then real CLI processes against
 * Dovecot, whose `pop3_lock_session` defaults to no: two overlapping polls, a lock held by a live
 * process and then by a SIGKILLed one, and a CLI SIGKILLed mid-run.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createAdapters } from "../../lambdas/adapters/index.ts";
import { summaryLine } from "../../lambdas/cli/poll.ts";
import { type MailboxConfig, parseConfig } from "../../lambdas/config/index.ts";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import { runMailbox } from "../../lambdas/ingest/session.ts";
import type { SessionDeps } from "../../lambdas/ingest/types.ts";
import type { MailboxLock } from "../../lambdas/ports.ts";
import {
  type DovecotHandle,
  describeDovecot,
  implicitTlsMailbox,
  startDovecot,
} from "../helpers/dovecot.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { generateMessage } from "../helpers/messages.ts";
import { listFiles } from "../helpers/pipeline.ts";
import { type Finished, finish } from "../helpers/process.ts";

const REPO = path.resolve(import.meta.dirname, "../..");
const CLI = path.join(REPO, "bin/mail-ingest.js");

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

describe("mailbox lock in a session", () => {
  let server: Pop3TestServer;
  let fauxqs: Fauxqs;
  let dir: string;
  const messages = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({
      uidl: `u${from + i}`,
      data: generateMessage(from + i),
    }));

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mi-lock-"));
    fauxqs = await startFauxqs({ conditionalPuts: true });
    server = await startPop3TestServer({
      users: Object.fromEntries(
        ["fs", "fail", "s3", "lost"].map((u) => [
          u,
          { password: "pw", messages: messages(0, u === "lost" ? 300 : 20) },
        ]),
      ),
    });
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });
  afterAll(async () => {
    await server?.close();
    await fauxqs?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function setup(user: string, storage: unknown) {
    const config = await parseConfig(
      {
        storage,
        queue: { type: "fs", dir: `./${user}/queue` },
        mailboxes: [
          {
            id: "box",
            host: server.host,
            port: server.port,
            tls: "none",
            allowInsecureAuth: true,
            username: user,
            password: "pw",
          },
        ],
      },
      dir,
    );
    const deps = await createAdapters(config.storage, config.queue);
    return { mailbox: config.mailboxes[0] as MailboxConfig, deps };
  }

  it("fs: skips a mailbox another process holds, without connecting, as a warning and not an error", async () => {
    const { mailbox, deps } = await setup("fs", { type: "fs", dir: "./fs" });
    const lockFile = path.join(dir, "fs", "state", "box.lock");
    const other = held(await (deps.lock as MailboxLock).acquire("box"));
    const sessions = server.sessions;
    const report = await runMailbox(mailbox, deps, { credentials: { password: "pw" } });
    expect(server.sessions).toBe(sessions);
    expect(report.error).toBeUndefined();
    expect(report.lockedBy?.pid).toBe(process.pid);
    expect(report.warnings).toEqual([
      `mailbox box is being polled by another process (pid ${process.pid})`,
    ]);
    expect(summaryLine(report)).toMatch(/^box: skipped, being polled by another process \(pid/);
    await other.release();

    // The lock is held from before the connection until after QUIT, then removed.
    const lockedWhile: boolean[] = [];
    const ok = await runMailbox(mailbox, deps, {
      credentials: { password: "pw" },
      onProgress: (p) => {
        if (p.phase === "ingesting") lockedWhile.push(true);
      },
    });
    expect(ok.ingested).toBe(20);
    expect(ok.lockedBy).toBeUndefined();
    expect(lockedWhile.length).toBeGreaterThan(0);
    expect(await exists(lockFile)).toBe(false);
  });

  it("fs: holds the lock during the session and releases it after a failed session too", async () => {
    const { mailbox, deps } = await setup("fail", { type: "fs", dir: "./fail" });
    const lockFile = path.join(dir, "fail", "state", "box.lock");
    const seen: boolean[] = [];
    const ok = await runMailbox(mailbox, deps, {
      credentials: { password: "pw" },
      onProgress: (p) => {
        if (p.phase === "listing") void exists(lockFile).then((e) => seen.push(e));
      },
    });
    expect(ok.error).toBeUndefined();
    expect(seen).toEqual([true]);
    const failed = await runMailbox(mailbox, deps, { credentials: { password: "wrong" } });
    expect(failed.errorCode).toBe("AUTH_FAILED");
    expect(await exists(lockFile)).toBe(false);
    expect(
      (await readdir(path.join(dir, "fail", "state"))).filter((n) => n.includes(".lock")),
    ).toEqual([]);
  });

  it("S3: holds a lease under state/ during the session, skips a live lease of another host, takes over an expired one", async () => {
    // createAdapters builds its own S3 client from the default credential chain.
    vi.stubEnv("AWS_ACCESS_KEY_ID", "test");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test");
    const bucket = await fauxqs.createBucket();
    const { mailbox, deps } = await setup("s3", {
      type: "s3",
      bucket,
      prefix: "mail",
      endpoint: fauxqs.endpoint,
      region: fauxqs.region,
      forcePathStyle: true,
    });
    const Key = "mail/state/box/lease.json";
    const lease = (expiresAt: number) =>
      fauxqs.s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key,
          Body: JSON.stringify({
            owner: "other",
            pid: 4242,
            host: "ip-10-0-0-9",
            startedAt: new Date().toISOString(),
            expiresAt: new Date(expiresAt).toISOString(),
          }),
        }),
      );
    const leaseExists = () =>
      fauxqs.s3.send(new HeadObjectCommand({ Bucket: bucket, Key })).then(
        () => true,
        () => false,
      );

    await lease(Date.now() + 60_000);
    const skipped = await runMailbox(mailbox, deps, { credentials: { password: "pw" } });
    expect(skipped.error).toBeUndefined();
    expect(skipped.warnings).toEqual([
      "mailbox box is being polled by another process (pid 4242 on ip-10-0-0-9)",
    ]);
    expect(skipped.ingested).toBe(0);

    await lease(Date.now() - 1_000);
    const owners: string[] = [];
    const report = await runMailbox(mailbox, deps, {
      credentials: { password: "pw" },
      onProgress: (p) => {
        if (p.phase !== "listing") return;
        void fauxqs.s3
          .send(new GetObjectCommand({ Bucket: bucket, Key }))
          .then(async (o) =>
            owners.push(JSON.parse((await o.Body?.transformToString()) ?? "").pid),
          );
      },
    });
    expect(report.ingested).toBe(20);
    expect(report.lockedBy).toBeUndefined();
    expect(owners).toEqual([process.pid]);
    expect(await leaseExists()).toBe(false);
  });

  it("a lock lost mid-session stops new RETRs and QUITs, with a warning", async () => {
    const { mailbox, deps } = await setup("lost", { type: "fs", dir: "./lost" });
    const lost = new AbortController();
    let released = 0;
    const lock: MailboxLock = {
      acquire: async () => ({
        held: true,
        lost: lost.signal,
        release: async () => {
          released++;
        },
      }),
    };
    const report = await runMailbox(mailbox, { ...deps, lock } satisfies SessionDeps, {
      credentials: { password: "pw" },
      onProgress: (p) => {
        if (p.messagesDone >= 1) lost.abort(new Error("S3 lease state/box/lease.json lost"));
      },
    });
    expect(report.error).toBeUndefined();
    expect(report.ingested).toBeLessThan(300);
    expect(report.remaining).toBeGreaterThan(0);
    expect(report.warnings.some((w) => w.includes("lease state/box/lease.json lost"))).toBe(true);
    expect(released).toBe(1);
  });
});

function held<T extends { held: boolean }>(r: T): T & { held: true; release(): Promise<void> } {
  if (!r.held) throw new Error("expected to hold the lock");
  return r as T & { held: true; release(): Promise<void> };
}

describeDovecot("mailbox lock across real CLI processes against Dovecot", () => {
  let dovecot: DovecotHandle;
  let dir: string;
  const users = ["overlap", "holder", "killed"].map((user) => ({ user, password: `pw-${user}` }));

  beforeAll(async () => {
    dovecot = await startDovecot({ users });
    dir = await mkdtemp(path.join(tmpdir(), "mi-lock-cli-"));
  });
  afterAll(async () => {
    await dovecot?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A config dir for one user: data in `<dir>/<user>/mail-ingest-data`, delete after ingest. */
  async function configFor(user: string) {
    const home = path.join(dir, user);
    await rm(home, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(home, { recursive: true }));
    const file = path.join(home, "config.json");
    await writeFile(
      file,
      JSON.stringify({
        mailboxes: [
          {
            id: "box",
            ...implicitTlsMailbox(dovecot, user),
            password: `pw-${user}`,
            delete: "after-ingest",
          },
        ],
      }),
    );
    const data = path.join(home, "mail-ingest-data");
    return {
      file,
      lockFile: path.join(data, "state", "box.lock"),
      rawDir: path.join(data, "raw"),
      queueDir: path.join(data, "queue"),
    };
  }

  const poll = (file: string) =>
    spawn(process.execPath, [CLI, "poll", "--config", file, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
    });

  /** Reruns until Dovecot has let go of a killed session's maildrop ([IN-USE] is exit 1). */
  async function pollUntilOk(file: string): Promise<Finished> {
    let result: Finished = { code: null, stdout: "", stderr: "" };
    for (let attempt = 0; attempt < 20; attempt++) {
      result = await finish(poll(file));
      if (result.code === 0) return result;
      await sleep(250);
    }
    return result;
  }

  const queued = async (queueDir: string) =>
    (await readdir(queueDir).catch(() => [])).filter((n) => n.endsWith(".json")).length;

  it("a second poll overlapping a running one skips the mailbox with exit 0; together each message is ingested and deleted once", async () => {
    await dovecot.deliver(
      "overlap",
      Array.from({ length: 150 }, (_, i) => generateMessage(5000 + i)),
    );
    const { file, lockFile, rawDir, queueDir } = await configFor("overlap");
    const first = poll(file);
    const firstDone = finish(first);
    while ((await listFiles(rawDir)).length < 10 && first.exitCode === null) await sleep(20);
    // Frozen mid-run, still alive: the overlap is certain, not a matter of timing.
    first.kill("SIGSTOP");
    try {
      expect(JSON.parse(await readFile(lockFile, "utf8")).pid).toBe(first.pid);
      const second = await finish(poll(file));
      expect(second.code).toBe(0);
      expect(second.stderr).toContain(
        `mailbox box is being polled by another process (pid ${first.pid})`,
      );
      const [report] = JSON.parse(second.stdout).mailboxes;
      expect(report).toMatchObject({ ingested: 0, deleted: 0, lockedBy: { pid: first.pid } });
      expect(report.error).toBeUndefined();
    } finally {
      first.kill("SIGCONT");
    }
    const result = await firstDone;
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).mailboxes[0]).toMatchObject({ ingested: 150, deleted: 150 });
    expect(await queued(queueDir)).toBe(150);
    expect(await dovecot.messageCount("overlap")).toBe(0);
    expect(await exists(lockFile)).toBe(false);
  });

  it("a lock held by a live process is respected; once that process is SIGKILLed the next poll takes it over", async () => {
    await dovecot.deliver(
      "holder",
      Array.from({ length: 5 }, (_, i) => generateMessage(6000 + i)),
    );
    const { file, lockFile, queueDir } = await configFor("holder");
    // Another process takes the lock through the real adapter, then sits on it.
    const script = [
      'const { register } = await import("tsx/esm/api");',
      "register();",
      `const { FsMailboxLock } = await import(${JSON.stringify(path.join(REPO, "lambdas/adapters/fs-lock.ts"))});`,
      `const r = await new FsMailboxLock({ dir: ${JSON.stringify(path.dirname(lockFile))} }).acquire("box");`,
      'process.stdout.write(r.held ? "held\\n" : "refused\\n");',
      "setInterval(() => {}, 1000);",
    ].join("\n");
    const holder = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise((resolve) => holder.once("exit", resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout?.once("data", (d: Buffer) =>
          d.toString().startsWith("held") ? resolve() : reject(new Error(d.toString())),
        );
      });
      const skipped = await finish(poll(file));
      expect(skipped.code).toBe(0);
      expect(skipped.stderr).toContain(
        `mailbox box is being polled by another process (pid ${holder.pid})`,
      );
      expect(await dovecot.messageCount("holder")).toBe(5);
    } finally {
      holder.kill("SIGKILL");
      await exited;
    }
    // The lock file is still there, naming a dead pid: stale, so this run takes it over.
    expect(JSON.parse(await readFile(lockFile, "utf8")).pid).toBe(holder.pid);
    const taken = await finish(poll(file));
    expect(taken.code).toBe(0);
    expect(taken.stderr).not.toContain("being polled by another process");
    expect(JSON.parse(taken.stdout).mailboxes[0]).toMatchObject({ ingested: 5, deleted: 5 });
    expect(await queued(queueDir)).toBe(5);
    expect(await exists(lockFile)).toBe(false);
  });

  it("a CLI SIGKILLed mid-run leaves its lock; the rerun takes it over and finishes", async () => {
    await dovecot.deliver(
      "killed",
      Array.from({ length: 150 }, (_, i) => generateMessage(7000 + i)),
    );
    const { file, lockFile, rawDir, queueDir } = await configFor("killed");
    const child = poll(file);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    while ((await listFiles(rawDir)).length < 20 && child.exitCode === null) await sleep(20);
    child.kill("SIGKILL");
    await exited;
    expect(JSON.parse(await readFile(lockFile, "utf8")).pid).toBe(child.pid);

    const result = await pollUntilOk(file);
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain("being polled by another process");
    expect(await queued(queueDir)).toBe(150);
    expect(await dovecot.messageCount("killed")).toBe(0);
    expect(await exists(lockFile)).toBe(false);
  });
});
