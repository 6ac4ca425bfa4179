import { describe, expect, it } from "vitest";
import { joinListing } from "../../../lambdas/adapters/pop3-source.ts";
import { dueForDeletion, planSession } from "../../../lambdas/ingest/plan.ts";
import type { StateEntry } from "../../../lambdas/ports.ts";

const NOW = new Date("2026-11-24T12:00:00Z");
const limits = { maxMessageBytes: 1000 };

function entry(uidl: string, ingestedAt = "2026-11-24T11:00:00Z"): StateEntry {
  return { uidl, id: `id-${uidl}`, ingestedAt, size: 10, sha256: "00" };
}

function listing(uidls: string[], size = 10) {
  return joinListing(
    uidls.map((uidl, i) => ({ msg: i + 1, uidl })),
    uidls.map((_, i) => ({ msg: i + 1, size })),
  );
}

describe("joinListing", () => {
  it("joins UIDL and LIST by message number and drops messages missing from either", () => {
    const joined = joinListing(
      [
        { msg: 2, uidl: "b" },
        { msg: 1, uidl: "a" },
        { msg: 3, uidl: "c" },
      ],
      [
        { msg: 1, size: 5 },
        { msg: 2, size: 7 },
      ],
    );
    expect(joined.map((m) => [m.ref, m.uidl, m.size])).toEqual([
      [1, "a", 5],
      [2, "b", 7],
    ]);
  });

  it("gives each copy of a duplicated UIDL its own key and flags the whole group", () => {
    const joined = listing(["x", "y", "x", "x"]);
    expect(joined.map((m) => m.key)).toEqual(["x", "y", "x\u00002", "x\u00003"]);
    expect(joined.map((m) => m.ambiguous)).toEqual([true, false, true, true]);
  });
});

describe("planSession", () => {
  it("fetches only UIDLs not in state, in server order", () => {
    const plan = planSession(
      listing(["a", "b", "c"]),
      new Map([["b", entry("b")]]),
      "never",
      limits,
      NOW,
    );
    expect(plan.fetch.map((m) => m.uidl)).toEqual(["a", "c"]);
    expect(plan.newCount).toBe(2);
    expect(plan.deleteKnown).toEqual([]);
  });

  it("prunes state entries whose UIDL vanished from the server", () => {
    const state = new Map([
      ["a", entry("a")],
      ["gone", entry("gone")],
    ]);
    expect(planSession(listing(["a"]), state, "never", limits, NOW).vanished).toEqual(["gone"]);
  });

  it("skips messages over maxMessageBytes and never schedules them for deletion", () => {
    const listed = joinListing(
      [
        { msg: 1, uidl: "small" },
        { msg: 2, uidl: "huge" },
      ],
      [
        { msg: 1, size: 10 },
        { msg: 2, size: 5000 },
      ],
    );
    const plan = planSession(listed, new Map(), "after-ingest", limits, NOW);
    expect(plan.fetch.map((m) => m.uidl)).toEqual(["small"]);
    expect(plan.tooLarge.map((m) => m.uidl)).toEqual(["huge"]);
    expect(plan.deleteKnown).toEqual([]);
  });

  it("caps the run by message count and by bytes, deferring the rest", () => {
    const byCount = planSession(
      listing(["a", "b", "c"]),
      new Map(),
      "never",
      { ...limits, maxMessagesPerRun: 2 },
      NOW,
    );
    expect(byCount.fetch.map((m) => m.uidl)).toEqual(["a", "b"]);
    expect(byCount.deferred).toBe(1);
    const byBytes = planSession(
      listing(["a", "b", "c"], 10),
      new Map(),
      "never",
      { ...limits, maxBytesPerRun: 25 },
      NOW,
    );
    expect(byBytes.fetch.map((m) => m.uidl)).toEqual(["a", "b"]);
    expect(byBytes.deferred).toBe(1);
  });

  it("lets one message larger than maxBytesPerRun through so the mailbox never stalls", () => {
    const plan = planSession(
      listing(["a", "b"], 100),
      new Map(),
      "never",
      { ...limits, maxBytesPerRun: 50 },
      NOW,
    );
    expect(plan.fetch.map((m) => m.uidl)).toEqual(["a"]);
    expect(plan.deferred).toBe(1);
  });

  it("deletes known messages under after-ingest, but never copies of a duplicated UIDL", () => {
    const state = new Map([
      ["a", entry("a")],
      ["d", entry("d")],
      ["d\u00002", entry("d\u00002")],
    ]);
    const plan = planSession(listing(["a", "d", "d"]), state, "after-ingest", limits, NOW);
    expect(plan.deleteKnown.map((m) => m.key)).toEqual(["a"]);
    expect(plan.duplicateUidls).toEqual(["d"]);
  });

  it("deletes under afterDays only once the message has been ingested that long", () => {
    const state = new Map([
      ["old", entry("old", "2026-11-20T12:00:00Z")],
      ["young", entry("young", "2026-11-23T12:00:01Z")],
    ]);
    const plan = planSession(listing(["old", "young"]), state, { afterDays: 1 }, limits, NOW);
    expect(plan.deleteKnown.map((m) => m.uidl)).toEqual(["old"]);
  });

  it("detects a UIDL reset when most listed UIDLs are unknown but the count is stable", () => {
    const old = Array.from({ length: 20 }, (_, i) => `old${i}`);
    const state = new Map(old.map((u) => [u, entry(u)]));
    const renumbered = Array.from({ length: 20 }, (_, i) => `new${i}`);
    expect(planSession(listing(renumbered), state, "never", limits, NOW).uidlReset).toBe(true);
    // Ordinary growth: everything known plus a few new ones is not a reset.
    expect(planSession(listing([...old, "n1", "n2"]), state, "never", limits, NOW).uidlReset).toBe(
      false,
    );
    // A mailbox emptied by another client and refilled with a little new mail is not a reset.
    expect(planSession(listing(["n1", "n2"]), state, "never", limits, NOW).uidlReset).toBe(false);
  });
});

describe("dueForDeletion", () => {
  it("never deletes under the never policy and treats an unparseable date as not due", () => {
    expect(dueForDeletion(entry("a", "2000-01-01T00:00:00Z"), "never", NOW)).toBe(false);
    expect(dueForDeletion(entry("a", "garbage"), { afterDays: 0 }, NOW)).toBe(false);
    expect(dueForDeletion(entry("a"), { afterDays: 0 }, NOW)).toBe(true);
  });
});
