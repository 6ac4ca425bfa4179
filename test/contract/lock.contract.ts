/** The contract every MailboxLock adapter passes (fs lock file, S3 lease). */
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HeldLock, LockResult, MailboxLock } from "../../lambdas/ports.ts";

export interface LockHarness {
  /** A new lock client on the same location, as another process would have. */
  open(): MailboxLock;
  /** Leaves a lock whose holder is gone (fs: a dead pid on this host; S3: an expired lease). */
  plantAbandoned(mailbox: string): Promise<void>;
  /** Makes the current holder's lock look abandoned, keeping it otherwise as it is. */
  abandon(mailbox: string): Promise<void>;
  /** Whether any lock object exists for the mailbox. */
  exists(mailbox: string): Promise<boolean>;
  cleanup(): Promise<void>;
}

export function held(result: LockResult): HeldLock {
  if (!result.held) throw new Error(`expected the lock, held by pid ${result.holder.pid}`);
  return result;
}

export function lockContract(name: string, setup: () => Promise<LockHarness>): void {
  describe(`MailboxLock contract: ${name}`, () => {
    let h: LockHarness;
    beforeEach(async () => {
      h = await setup();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it("grants the lock once and refuses a second caller, naming the holder's pid and host", async () => {
      const first = held(await h.open().acquire("box"));
      const second = await h.open().acquire("box");
      expect(second.held).toBe(false);
      if (second.held) return;
      expect(second.holder).toMatchObject({ pid: process.pid, host: hostname() });
      expect(Number.isNaN(Date.parse(second.holder.startedAt))).toBe(false);
      await first.release();
    });

    it("grants the lock again after release, and release leaves no lock behind", async () => {
      const lock = h.open();
      await held(await lock.acquire("box")).release();
      expect(await h.exists("box")).toBe(false);
      const again = held(await h.open().acquire("box"));
      expect(await h.exists("box")).toBe(true);
      await again.release();
      await again.release();
      expect(await h.exists("box")).toBe(false);
    });

    it("locks each mailbox on its own", async () => {
      const a = held(await h.open().acquire("a"));
      const b = held(await h.open().acquire("b"));
      expect((await h.open().acquire("a")).held).toBe(false);
      await Promise.all([a.release(), b.release()]);
    });

    it("lets exactly one of many racing callers take a free lock", async () => {
      const results = await Promise.all(Array.from({ length: 8 }, () => h.open().acquire("race")));
      const winners = results.filter((r): r is HeldLock => r.held);
      expect(winners).toHaveLength(1);
      await winners[0]?.release();
    });

    it("takes over a lock whose holder is gone", async () => {
      await h.plantAbandoned("box");
      expect(await h.exists("box")).toBe(true);
      const taken = held(await h.open().acquire("box"));
      const other = await h.open().acquire("box");
      expect(other.held).toBe(false);
      if (!other.held) expect(other.holder.pid).toBe(process.pid);
      await taken.release();
      expect(await h.exists("box")).toBe(false);
    });

    it("lets exactly one of many racing callers take over an abandoned lock", async () => {
      // Several rounds: the unsafe interleaving (two takers both remove the stale lock, one of
      // them after the other has already replaced it) needs the callers' I/O to interleave.
      for (let round = 0; round < 25; round++) {
        const mailbox = `stale${round}`;
        await h.plantAbandoned(mailbox);
        // Staggered by up to a few ms, so some takers read the stale lock after others act on it.
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) => sleep(i % 6).then(() => h.open().acquire(mailbox))),
        );
        const winners = results.filter((r): r is HeldLock => r.held);
        expect(winners).toHaveLength(1);
        expect((await h.open().acquire(mailbox)).held).toBe(false);
        await winners[0]?.release();
      }
    });

    it("never releases a lock that another caller has since taken over", async () => {
      const first = held(await h.open().acquire("box"));
      await h.abandon("box");
      const second = held(await h.open().acquire("box"));
      await first.release();
      expect(await h.exists("box")).toBe(true);
      expect((await h.open().acquire("box")).held).toBe(false);
      await second.release();
      held(await h.open().acquire("box"));
    });
  });
}
