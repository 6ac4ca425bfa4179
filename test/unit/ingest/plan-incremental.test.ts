import { describe, expect, it } from "vitest";
import { planSession } from "../../../lambdas/ingest/plan.ts";
import type { SourceMessage, StateEntry } from "../../../lambdas/ports.ts";

const NOW = new Date("2026-11-24T12:00:00Z");
const limits = { maxMessageBytes: 1000 };

const entry = (key: string): StateEntry => ({
  uidl: key,
  id: `id-${key}`,
  ingestedAt: "2026-11-24T11:00:00Z",
  size: 10,
  sha256: `sha-${key}`,
});

const message = (uid: number): SourceMessage => ({
  key: `INBOX\n7\n${uid}`,
  uidl: `INBOX;UIDVALIDITY=7/;UID=${uid}`,
  origin: { protocol: "imap", folder: "INBOX", uidValidity: 7, uid },
  size: 10,
  ref: uid,
  ambiguous: false,
});

/** State knowing UIDs 1..n of INBOX under UIDVALIDITY 7. */
const knownUpTo = (n: number) =>
  new Map(Array.from({ length: n }, (_, i) => [`INBOX\n7\n${i + 1}`, entry(`INBOX\n7\n${i + 1}`)]));

describe("planSession with an incremental listing", () => {
  it("forgets only what the source says vanished, not every known key it did not list", () => {
    const state = knownUpTo(50);
    const plan = planSession([message(51)], state, "never", limits, NOW, {
      vanished: ["INBOX\n7\n3"],
    });
    expect(plan.vanished).toEqual(["INBOX\n7\n3"]);
    expect(plan.fetch.map((m) => m.ref)).toEqual([51]);
  });

  it("never suspects a reset from a listing that is all new by design; the source's word decides", () => {
    const state = knownUpTo(50);
    const fresh = Array.from({ length: 40 }, (_, i) => message(51 + i));
    expect(planSession(fresh, state, "never", limits, NOW, { vanished: [] }).uidlReset).toBe(false);
    expect(
      planSession(fresh, state, "never", limits, NOW, { vanished: [], reset: true }).uidlReset,
    ).toBe(true);
    // The same listing taken as complete (POP3) looks like a renumbering.
    expect(planSession(fresh, state, "never", limits, NOW).uidlReset).toBe(true);
  });

  it("a known message listed again is due for its pending action under after-ingest", () => {
    const plan = planSession([message(2)], knownUpTo(2), "after-ingest", limits, NOW, {
      vanished: [],
    });
    expect(plan.deleteKnown.map((m) => m.ref)).toEqual([2]);
    expect(plan.fetch).toEqual([]);
  });
});
