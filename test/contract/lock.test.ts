import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FsMailboxLock } from "../../lambdas/adapters/fs-lock.ts";
import { S3MailboxLease } from "../../lambdas/adapters/object-lease.ts";
import { type Fauxqs, startFauxqs } from "../helpers/fauxqs.ts";
import { held, lockContract } from "./lock.contract.ts";

/** The pid of a process that has exited, so no process has it (until the kernel reuses it). */
let deadPidOnce: Promise<number> | undefined;
function deadPid(): Promise<number> {
  deadPidOnce ??= spawnAndExit();
  return deadPidOnce;
}

async function spawnAndExit(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  if (child.pid === undefined) throw new Error("no pid");
  return child.pid;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function fsLockRecord(pid: number, host = hostname()) {
  return {
    pid,
    host,
    startedAt: new Date().toISOString(),
    token: randomBytes(16).toString("hex"),
  };
}

lockContract("FsMailboxLock", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mail-ingest-lock-"));
  const lock = () => new FsMailboxLock({ dir });
  return {
    open: lock,
    async plantAbandoned(mailbox) {
      await writeFile(lock().pathOf(mailbox), JSON.stringify(fsLockRecord(await deadPid())));
    },
    async abandon(mailbox) {
      const path = lock().pathOf(mailbox);
      const record = JSON.parse(await readFile(path, "utf8"));
      await writeFile(path, JSON.stringify({ ...record, pid: await deadPid() }));
    },
    exists: (mailbox) => exists(lock().pathOf(mailbox)),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe("FsMailboxLock", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "mail-ingest-lock-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes {pid, host, startedAt} to <state dir>/<mailbox>.lock and leaves no temp file", async () => {
    const lock = new FsMailboxLock({ dir: join(dir, "state") });
    const taken = held(await lock.acquire("shape"));
    expect(lock.pathOf("shape")).toBe(join(dir, "state", "shape.lock"));
    const record = JSON.parse(await readFile(lock.pathOf("shape"), "utf8"));
    expect(record).toMatchObject({ pid: process.pid, host: hostname() });
    expect(Date.parse(record.startedAt)).toBeLessThanOrEqual(Date.now());
    expect(await readdir(join(dir, "state"))).toEqual(["shape.lock"]);
    await taken.release();
    expect(await readdir(join(dir, "state"))).toEqual([]);
  });

  it("never takes over a lock held on another host, and names that host", async () => {
    const lock = new FsMailboxLock({ dir });
    // Its pid means nothing here, even a dead one: only that host can tell.
    await writeFile(lock.pathOf("remote"), JSON.stringify(fsLockRecord(await deadPid(), "mx2")));
    const result = await lock.acquire("remote");
    expect(result).toMatchObject({ held: false, holder: { host: "mx2" } });
  });

  it("takes over a lock with this process's pid that this process does not hold (a failed release in --every mode)", async () => {
    const lock = new FsMailboxLock({ dir });
    await writeFile(lock.pathOf("own"), JSON.stringify(fsLockRecord(process.pid)));
    await held(await lock.acquire("own")).release();
  });

  it("takes over a lock from before a reboot even if its pid is alive now", async () => {
    const lock = new FsMailboxLock({ dir });
    const record = { ...fsLockRecord(1), bootId: "00000000-0000-0000-0000-000000000000" };
    await writeFile(lock.pathOf("reboot"), JSON.stringify(record));
    // pid 1 is always alive; only the boot id says the lock is stale.
    await held(await lock.acquire("reboot")).release();
  });

  it("takes over an unreadable lock file", async () => {
    const lock = new FsMailboxLock({ dir });
    await writeFile(lock.pathOf("debris"), "");
    await held(await lock.acquire("debris")).release();
  });

  it("is not blocked by a taker that died while taking over (its claim has a dead pid)", async () => {
    const lock = new FsMailboxLock({ dir });
    const stale = fsLockRecord(await deadPid());
    await writeFile(lock.pathOf("claimed"), JSON.stringify(stale));
    const claim = `${lock.pathOf("claimed")}.t-${stale.token}.break`;
    await writeFile(claim, JSON.stringify(fsLockRecord(await deadPid())));
    const taken = held(await lock.acquire("claimed"));
    expect(JSON.parse(await readFile(lock.pathOf("claimed"), "utf8")).pid).toBe(process.pid);
    await taken.release();
  });

  it("reports the lock held while a live taker holds the claim to remove a stale one", async () => {
    const lock = new FsMailboxLock({ dir });
    const stale = fsLockRecord(await deadPid());
    await writeFile(lock.pathOf("busy"), JSON.stringify(stale));
    // pid 1 is alive: that taker is mid-takeover, so it will hold the lock next.
    const claim = `${lock.pathOf("busy")}.t-${stale.token}.break`;
    await writeFile(claim, JSON.stringify(fsLockRecord(1)));
    expect(await lock.acquire("busy")).toMatchObject({ held: false, holder: { pid: 1 } });
    expect(JSON.parse(await readFile(lock.pathOf("busy"), "utf8")).token).toBe(stale.token);
  });
});

let fauxqs: Fauxqs;
beforeAll(async () => {
  fauxqs = await startFauxqs({ conditionalPuts: true });
});
afterAll(async () => {
  await fauxqs?.stop();
});

const PREFIX = "mail/state/";

lockContract("S3MailboxLease on fauxqs", async () => {
  const bucket = await fauxqs.createBucket();
  const lease = () => new S3MailboxLease({ client: fauxqs.s3, bucket, prefix: PREFIX });
  const key = (mailbox: string) => lease().keyOf(mailbox);
  const readLease = async (mailbox: string) => {
    const out = await fauxqs.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key(mailbox) }));
    return JSON.parse((await out.Body?.transformToString()) ?? "");
  };
  const writeLease = (mailbox: string, record: unknown) =>
    fauxqs.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key(mailbox), Body: JSON.stringify(record) }),
    );
  return {
    open: lease,
    plantAbandoned: async (mailbox) => {
      await writeLease(mailbox, {
        owner: "gone",
        pid: 4242,
        host: "lambda-gone",
        startedAt: new Date(Date.now() - 120_000).toISOString(),
        expiresAt: new Date(Date.now() - 1_000).toISOString(),
      });
    },
    abandon: async (mailbox) => {
      const record = await readLease(mailbox);
      await writeLease(mailbox, { ...record, expiresAt: new Date(Date.now() - 1).toISOString() });
    },
    exists: (mailbox) =>
      fauxqs.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key(mailbox) })).then(
        () => true,
        () => false,
      ),
    cleanup: async () => undefined,
  };
});

describe("S3MailboxLease on fauxqs", () => {
  let bucket: string;
  const lease = (ttlMs?: number) =>
    new S3MailboxLease({ client: fauxqs.s3, bucket, prefix: PREFIX, ttlMs });
  const readLease = async (mailbox: string) => {
    const out = await fauxqs.s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: `${PREFIX}${mailbox}/lease.json` }),
    );
    return JSON.parse((await out.Body?.transformToString()) ?? "");
  };
  beforeAll(async () => {
    bucket = await fauxqs.createBucket();
  });

  it("keeps the lease under the state prefix, with owner, pid, host and expiresAt", async () => {
    const before = Date.now();
    const taken = held(await lease().acquire("shape", { ttlMs: 60_000 }));
    const record = await readLease("shape");
    expect(record).toMatchObject({ pid: process.pid, host: hostname() });
    expect(record.owner).toMatch(/^[0-9a-f]{32}$/);
    expect(Date.parse(record.expiresAt)).toBeGreaterThanOrEqual(before + 60_000);
    await taken.release();
  });

  it("renews a TTL lease while held, so a session longer than the TTL keeps it", async () => {
    const taken = held(await lease().acquire("renew", { ttlMs: 300 }));
    const first = Date.parse((await readLease("renew")).expiresAt);
    await sleep(1_000);
    // Three TTLs later: without renewal the lease would have lapsed and been taken over.
    expect((await lease().acquire("renew")).held).toBe(false);
    expect(Date.parse((await readLease("renew")).expiresAt)).toBeGreaterThan(first + 500);
    expect(taken.lost.aborted).toBe(false);
    await taken.release();
  });

  it("never renews a fixed expiry (a Lambda's timeout): the lease lapses and another run takes it", async () => {
    const expiresAt = Date.now() + 300;
    const taken = held(await lease().acquire("fixed", { expiresAt }));
    expect(Date.parse((await readLease("fixed")).expiresAt)).toBe(expiresAt);
    await sleep(600);
    expect(taken.lost.aborted).toBe(true);
    const next = held(await lease().acquire("fixed"));
    await taken.release();
    expect((await lease().acquire("fixed")).held).toBe(false);
    await next.release();
  });

  describe("shared by holders exclusive among themselves (the pollers of one jobs queue)", () => {
    const KEEP_MS = 3_600_000;
    const fleet = (owner = "fleet-a", runMs = 60_000) => ({
      expiresAt: Date.now() + runMs,
      shared: { owner, keepMs: KEEP_MS },
    });
    const etag = async (mailbox: string) =>
      (
        await fauxqs.s3.send(
          new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${mailbox}/lease.json` }),
        )
      ).ETag;

    it("is written once, kept on release, reused by the same owner without a write, and blocks everyone else", async () => {
      const before = Date.now();
      const first = held(await lease().acquire("shared", fleet()));
      expect(Date.parse((await readLease("shared")).expiresAt)).toBeGreaterThanOrEqual(
        before + KEEP_MS,
      );
      await first.release();
      const written = await etag("shared");
      expect(written).toBeDefined();
      // The next poller (another container): no write, the lease is the same object.
      const second = held(await lease().acquire("shared", fleet()));
      expect(await etag("shared")).toBe(written);
      // A CLI, and another deployment's pollers, wait for it like for any live lease.
      expect((await lease().acquire("shared")).held).toBe(false);
      expect((await lease().acquire("shared", fleet("fleet-b"))).held).toBe(false);
      await second.release();
      expect(await etag("shared")).toBe(written);
    });

    it("is renewed by its owner when it would lapse before the run ends", async () => {
      const short = held(await lease().acquire("renewed", fleet("fleet-a", 60_000)));
      await short.release();
      const written = await etag("renewed");
      // A run that may last past the kept expiry (a timeout longer than KEEP_MS) renews it.
      const longRun = held(await lease().acquire("renewed", fleet("fleet-a", KEEP_MS + 60_000)));
      expect(await etag("renewed")).not.toBe(written);
      expect(Date.parse((await readLease("renewed")).expiresAt)).toBeGreaterThanOrEqual(
        Date.now() + KEEP_MS,
      );
      await longRun.release();
    });

    it("waits for a live lease of a plain holder (a CLI) and takes it over once it lapsed", async () => {
      const cli = held(await lease().acquire("cli-first", { ttlMs: 60_000 }));
      expect((await lease().acquire("cli-first", fleet())).held).toBe(false);
      const record = await readLease("cli-first");
      await fauxqs.s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `${PREFIX}cli-first/lease.json`,
          Body: JSON.stringify({ ...record, expiresAt: new Date(Date.now() - 1).toISOString() }),
        }),
      );
      const taken = held(await lease().acquire("cli-first", fleet()));
      expect((await readLease("cli-first")).owner).toBe("fleet-a");
      await taken.release();
      await cli.release();
      expect((await readLease("cli-first")).owner).toBe("fleet-a");
    });
  });

  it("a holder whose lapsed lease was taken over learns it at its next renewal and never overwrites the new holder", async () => {
    const first = held(await lease().acquire("lost", { ttlMs: 600 }));
    const record = await readLease("lost");
    // The holder stalled past its expiry (a frozen process): the lease lapsed.
    await fauxqs.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${PREFIX}lost/lease.json`,
        Body: JSON.stringify({ ...record, expiresAt: new Date(Date.now() - 1).toISOString() }),
      }),
    );
    const second = held(await lease().acquire("lost", { ttlMs: 60_000 }));
    const owner = (await readLease("lost")).owner;
    await new Promise((resolve) => first.lost.addEventListener("abort", resolve));
    expect((await readLease("lost")).owner).toBe(owner);
    await first.release();
    expect((await readLease("lost")).owner).toBe(owner);
    await second.release();
  });
});
