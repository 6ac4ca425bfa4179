/**
 * The pipeline behaviour POP3 and IMAP share, run once per protocol against the same Dovecot:
 * the per-run cap, the deadline (passed before the run, and reached mid-run), a queue failing
 * mid-session, and a real full disk (a 3 MB tmpfs). POP3 deletes after ingest and IMAP moves to another folder, so "what
 * the server still holds in INBOX" is the same check for both: only committed messages left.
 * Messages are seeded straight into the Maildir (no APPEND) to keep the suite quick.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ErrorCode } from "../../lambdas/errors.ts";
import type { MessageQueue } from "../../lambdas/ports.ts";
import {
  type DovecotHandle,
  describeDovecot,
  imapAvailable,
  implicitTlsImapMailbox,
  implicitTlsMailbox,
  startDovecot,
} from "../helpers/dovecot.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type FsWorld, fsWorld, sha256, tempFiles, wrapStore } from "../helpers/pipeline.ts";
import { mountTmpfs, type Tmpfs, tmpfsAvailable } from "../helpers/tmpfs.ts";

const PROTOCOLS = (["pop3", "imap"] as const).filter((p) => p === "pop3" || imapAvailable);
type Protocol = (typeof PROTOCOLS)[number];
const SCENARIOS = ["cap", "late", "deadline", "enospc", "disk"] as const;
const itWithTmpfs = (await tmpfsAvailable()) ? it : it.skip;

describeDovecot.each(PROTOCOLS)("shared pipeline behaviour over %s", (protocol: Protocol) => {
  let dovecot: DovecotHandle;
  const worlds: FsWorld[] = [];
  const disks: Tmpfs[] = [];
  let seed = 0;

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: SCENARIOS.map((s) => ({ user: `${protocol}-${s}`, password: `pw-${s}` })),
    });
  });
  afterAll(async () => {
    await dovecot?.stop();
    // Unmount first: a world's data dir may be the mount point itself.
    for (const d of disks) await d.unmount();
    for (const w of worlds) await w.cleanup();
  });

  /** Seeds `count` messages into the user's INBOX and returns them with a world polling it. */
  async function setup(
    scenario: (typeof SCENARIOS)[number],
    count: number,
    options: { attachmentBytes?: number; baseDir?: string } = {},
  ) {
    const user = `${protocol}-${scenario}`;
    const { attachmentBytes, baseDir } = options;
    const messages = Array.from({ length: count }, () =>
      generateMessage(
        seed++,
        attachmentBytes ? { withAttachment: true, attachmentBytes } : undefined,
      ),
    );
    await dovecot.deliver(user, messages);
    // What takes a committed message off the server: DELE at QUIT, or UID MOVE at once.
    const mailbox =
      protocol === "pop3"
        ? { ...implicitTlsMailbox(dovecot, user), delete: "after-ingest" }
        : {
            ...implicitTlsImapMailbox(dovecot, user),
            afterIngest: { moveTo: "Processed", create: true },
          };
    const world = await fsWorld(mailbox, `pw-${scenario}`, baseDir);
    worlds.push(world);
    return { user, messages, world };
  }

  /** Every message gone from INBOX is stored byte-exact and queued; returns how many are left. */
  async function expectOnlyCommittedRemoved(user: string, world: FsWorld, sent: Buffer[]) {
    const left = await dovecot.messageCount(user);
    const raw = new Set((await world.raw()).values());
    const queued = new Set((await world.queue()).map((q) => q.sha256));
    const committed = sent.filter((m) => raw.has(sha256(m)) && queued.has(sha256(m)));
    expect(left).toBe(sent.length - committed.length);
    return left;
  }

  /** A rerun drains the rest: each message stored and queued exactly once, INBOX empty. */
  async function expectRerunCompletes(user: string, world: FsWorld, sent: Buffer[]) {
    const rerun = await world.poll();
    expect(rerun.error).toBeUndefined();
    expect(await dovecot.messageCount(user)).toBe(0);
    expect([...(await world.raw()).values()].sort()).toEqual(sent.map(sha256).sort());
    const queued = await world.queue();
    expect(queued).toHaveLength(sent.length);
    expect(new Set(queued.map((q) => q.id)).size).toBe(sent.length);
    for (const q of queued) expect(q).toMatchObject({ source: { protocol } });
  }

  it("caps a run at maxMessagesPerRun, leaves the rest on the server and takes it next run", async () => {
    const { user, messages, world } = await setup("cap", 7);
    const first = await world.poll({ mailbox: { maxMessagesPerRun: 5 } });
    expect(first.error).toBeUndefined();
    expect(first).toMatchObject({ ingested: 5, remaining: 2 });
    expect(await expectOnlyCommittedRemoved(user, world, messages)).toBe(2);
    const second = await world.poll({ mailbox: { maxMessagesPerRun: 5 } });
    expect(second).toMatchObject({ ingested: 2, remaining: 0 });
    expect(await world.poll()).toMatchObject({ listed: 0, ingested: 0 });
    await expectRerunCompletes(user, world, messages);
  });

  it("with the deadline already passed, fetches nothing, changes nothing and reports all as remaining", async () => {
    const { user, messages, world } = await setup("late", 4);
    const report = await world.poll({ deadline: Date.now() - 1 });
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ ingested: 0, remaining: 4 });
    expect(await dovecot.messageCount(user)).toBe(4);
    expect((await world.raw()).size).toBe(0);
    await expectRerunCompletes(user, world, messages);
  });

  it("a deadline reached mid-run stops the run cleanly: only committed messages leave INBOX, a rerun completes", async () => {
    const total = 50;
    // Messages larger than the streams' buffers (tee, raw and parser sides: 16 KiB each), so a
    // download whose store write waits is stuck mid-body. A small one would be read off the
    // wire whole into those buffers, and nothing would be left to abandon (a CI flake).
    const { user, messages, world } = await setup("deadline", total, {
      attachmentBytes: 256 * 1024,
    });
    // Far enough ahead that some messages are committed before it even on a loaded machine.
    const deadline = Date.now() + 1_500;
    // After the first few objects, every store write waits for the deadline to pass: the
    // downloads feeding them stall (backpressure) and are abandoned at the deadline, and no
    // new one is started. No race: the store waits for the deadline rather than guessing it.
    const inner = world.deps.store;
    let puts = 0;
    const store = wrapStore(inner, {
      put: async (key, body, options) => {
        if (++puts > 12) while (Date.now() <= deadline) await sleep(20);
        return inner.put(key, body, options);
      },
    });
    const first = await world.poll({ deadline, deps: { store } });
    expect(first.error).toBeUndefined();
    expect(first.ingested).toBeGreaterThan(0);
    expect(first.ingested).toBeLessThan(total);
    expect(first.ingested + first.remaining).toBe(total);
    // Downloads held by the store at the deadline were abandoned, not waited for.
    expect(first.stalled?.length ?? 0).toBeGreaterThan(0);
    expect(await expectOnlyCommittedRemoved(user, world, messages)).toBe(total - first.ingested);
    expect(await tempFiles(world.dir)).toEqual([]);
    await expectRerunCompletes(user, world, messages);
  });

  it("a full disk at the queue ends the session with a clear error, removes only committed messages, and a rerun completes", async () => {
    const total = 45;
    const { user, messages, world } = await setup("enospc", total);
    let sends = 0;
    const queue: MessageQueue = {
      maxBodyBytes: world.deps.queue.maxBodyBytes,
      send: async (entries) => {
        // The second checkpoint batch fails as a real full disk does (errno 28).
        if (++sends === 2) {
          throw Object.assign(new Error("ENOSPC: no space left on device, write"), {
            code: "ENOSPC",
            errno: -28,
          });
        }
        await world.deps.queue.send(entries);
      },
    };
    const failed = await world.poll({ deps: { queue } });
    expect(failed.errorCode).toBe(ErrorCode.QUEUE_FAILED);
    expect(failed.error).toMatch(/ENOSPC|no space/);
    expect(failed.ingested).toBeGreaterThan(0);
    expect(failed.ingested).toBeLessThan(total);
    expect(await expectOnlyCommittedRemoved(user, world, messages)).toBeGreaterThan(0);
    expect(await tempFiles(world.dir)).toEqual([]);
    await expectRerunCompletes(user, world, messages);
  });

  itWithTmpfs(
    "a real full disk (3 MB tmpfs) ends the session with ENOSPC named, removes only committed messages, and a rerun completes once space is freed",
    async () => {
      const mounted = await mountTmpfs(3 * 1024 * 1024);
      if ("unavailable" in mounted) throw new Error(mounted.unavailable);
      disks.push(mounted);
      // 40 messages of ~200 KB: far more than 3 MB once stored raw + parts.
      const { user, messages, world } = await setup("disk", 40, {
        attachmentBytes: 150_000,
        baseDir: mounted.dir,
      });
      const report = await world.poll();
      expect(report.error).toMatch(/^mailbox box: .*ENOSPC: no space left on device/);
      expect(await expectOnlyCommittedRemoved(user, world, messages)).toBeGreaterThan(0);
      expect(await tempFiles(world.dir)).toEqual([]);
      await mounted.resize(64 * 1024 * 1024);
      await expectRerunCompletes(user, world, messages);
    },
  );
});
