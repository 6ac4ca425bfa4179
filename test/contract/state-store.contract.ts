/**
 * The StateStore contract, written once and run against every adapter (see state-store.test.ts).
 * Each harness opens fresh instances over the same storage, to prove checkpoints are durable
 * rather than cached, and configures small compaction thresholds so compaction happens here.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, isMailIngestError } from "../../lambdas/errors.ts";
import type { StateEntry, StateStore } from "../../lambdas/ports.ts";

export interface StateStoreHarness {
  /** A new store instance over the harness's storage. */
  open(): StateStore;
  /**
   * Stores `text` as the next operation of `mailbox`, bypassing the codec, as a damaged disk or
   * a buggy writer would (fs: a log line; object: a delta). Returns how a warning names it
   * (`file:line`, or the key).
   */
  inject(mailbox: string, text: string): Promise<string>;
  cleanup(): Promise<void>;
}

export function stateStoreContract(name: string, setup: () => Promise<StateStoreHarness>): void {
  describe(`StateStore contract: ${name}`, () => {
    let h: StateStoreHarness;
    beforeEach(async () => {
      h = await setup();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it("loads an empty map for a mailbox never written", async () => {
      expect(await h.open().load("never-seen")).toEqual(new Map());
    });

    it("round-trips recorded entries with and without a Message-ID", async () => {
      const store = h.open();
      const a = entry("uidl-a", { messageId: "<a@example.org>" });
      const b = entry("uidl-b");
      await store.record("inbox", [a, b]);
      const loaded = await store.load("inbox");
      expect(loaded).toEqual(
        new Map([
          ["uidl-a", a],
          ["uidl-b", b],
        ]),
      );
      expect(loaded.get("uidl-b")).not.toHaveProperty("messageId");
    });

    it("keeps each checkpoint across a new instance (durable, not cached)", async () => {
      const writer = h.open();
      for (let i = 0; i < 5; i += 1) await writer.record("inbox", [entry(`u${i}`)]);
      await writer.forget("inbox", ["u1"]);
      const loaded = await h.open().load("inbox");
      expect([...loaded.keys()].sort()).toEqual(["u0", "u2", "u3", "u4"]);
    });

    it("forgets UIDLs, ignores unknown ones, and lets a later record win over a forget", async () => {
      const store = h.open();
      await store.record("inbox", [entry("x"), entry("y")]);
      await store.forget("inbox", ["x", "not-there"]);
      expect([...(await h.open().load("inbox")).keys()]).toEqual(["y"]);
      const again = entry("x", { size: 99 });
      await store.record("inbox", [again]);
      expect((await h.open().load("inbox")).get("x")).toEqual(again);
    });

    it("replaces an entry recorded twice with the latest version", async () => {
      const store = h.open();
      await store.record("inbox", [entry("dup", { size: 1 })]);
      await store.record("inbox", [entry("dup", { size: 2 })]);
      expect((await h.open().load("inbox")).get("dup")?.size).toBe(2);
    });

    it("keeps mailboxes apart", async () => {
      const store = h.open();
      await store.record("alice", [entry("same-uidl", { id: "alice-id" })]);
      await store.record("bob", [entry("same-uidl", { id: "bob-id" })]);
      await store.forget("alice", ["same-uidl"]);
      expect((await h.open().load("alice")).size).toBe(0);
      expect((await h.open().load("bob")).get("same-uidl")?.id).toBe("bob-id");
    });

    it("treats empty record and forget calls as no-ops", async () => {
      const store = h.open();
      await store.record("inbox", []);
      await store.forget("inbox", []);
      expect((await store.load("inbox")).size).toBe(0);
    });

    it("matches an in-memory model through many operations, reloads and compactions", async () => {
      const model = new Map<string, StateEntry>();
      let random = 42;
      const next = (n: number) => {
        random = (random * 1103515245 + 12345) % 2 ** 31;
        return random % n;
      };
      let store = h.open();
      for (let step = 0; step < 150; step += 1) {
        const uidl = `u${next(12)}`;
        const roll = next(10);
        if (roll < 6) {
          const e = entry(uidl, { size: step });
          await store.record("model", [e]);
          model.set(uidl, e);
        } else if (roll < 9) {
          await store.forget("model", [uidl]);
          model.delete(uidl);
        } else {
          store = h.open();
          expect(await store.load("model")).toEqual(model);
        }
      }
      expect(await h.open().load("model")).toEqual(model);
      expect(await h.open().load("model")).toEqual(model);
    });

    it("skips an unreadable operation with a warning naming it, loads the ones around it, and keeps working", async () => {
      const store = h.open();
      await store.record("inbox", [entry("before")]);
      const where = await h.inject("inbox", "{not json");
      await store.record("inbox", [entry("after")]);
      const warnings: string[] = [];
      const loaded = await h.open().load("inbox", { onWarning: (m) => warnings.push(m) });
      expect([...loaded.keys()].sort()).toEqual(["after", "before"]);
      expect(warnings[0]).toBe(
        `state ${where}: unreadable (not JSON), skipped; an unknown number of messages may be fetched again under the same ids, which consumers dedupe`,
      );
      const writer = h.open();
      await writer.load("inbox");
      await writer.record("inbox", [entry("later")]);
      await writer.forget("inbox", ["before"]);
      const again: string[] = [];
      const reloaded = await h.open().load("inbox", { onWarning: (m) => again.push(m) });
      expect([...reloaded.keys()].sort()).toEqual(["after", "later"]);
      expect(again).toEqual([]);
    });

    it("keeps the readable entries of a partly corrupt record and says how many may be re-fetched", async () => {
      const bad = [entry("ok-1"), { ...entry("bad"), sha256: null }, "junk", entry("ok-2")];
      const where = await h.inject("inbox", JSON.stringify({ op: "record", entries: bad }));
      const warnings: string[] = [];
      const loaded = await h.open().load("inbox", { onWarning: (m) => warnings.push(m) });
      expect([...loaded.keys()].sort()).toEqual(["ok-1", "ok-2"]);
      expect(warnings[0]).toBe(
        `state ${where}: 2 of 4 recorded entries unreadable (entry 2: sha256 is not a string), skipped; up to 2 message(s) may be fetched again under the same ids, which consumers dedupe`,
      );
    });

    // 65 characters: the config's one mailbox-id rule caps ids at 64 (the codec once allowed more).
    it.each(["", "../up", "a/b", ".", "..", "sp ace", "nul\0", "x".repeat(65)])(
      "rejects the unsafe mailbox id %j with CONFIG_INVALID",
      async (mailbox) => {
        const store = h.open();
        const err = await store.record(mailbox, [entry("u")]).catch((e: unknown) => e);
        expect(isMailIngestError(err, ErrorCode.CONFIG_INVALID)).toBe(true);
        await expect(store.load(mailbox)).rejects.toMatchObject({ code: ErrorCode.CONFIG_INVALID });
      },
    );
  });
}

export function entry(uidl: string, overrides: Partial<StateEntry> = {}): StateEntry {
  return {
    uidl,
    id: `id-${uidl}`,
    ingestedAt: "2024-05-01T12:00:00.000Z",
    size: 1234,
    sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ...overrides,
  };
}
