import { describe, expect, it } from "vitest";
import {
  countRefusals,
  PERMANENT_AFTER_REFUSALS,
  refusalsKey,
} from "../../../lambdas/ingest/refusals.ts";
import { MemoryObjectStore } from "../mime/memory-store.ts";

async function record(store: MemoryObjectStore, mailbox: string): Promise<unknown> {
  const bytes = store.objects.get(refusalsKey(mailbox))?.bytes;
  return bytes ? JSON.parse(bytes.toString("utf8")) : undefined;
}

describe("countRefusals", () => {
  it("keeps the record under state/, where the poller's DeleteObject scope reaches", () => {
    expect(refusalsKey("box")).toBe("state/~refused/box.json");
  });

  it("calls a message permanent on its third refusal, and drops counts of keys no longer listed", async () => {
    const store = new MemoryObjectStore();
    const warn = (m: string) => {
      throw new Error(m);
    };
    const listed = new Set(["a", "b"]);
    for (let run = 1; run < PERMANENT_AFTER_REFUSALS; run++) {
      const verdict = await countRefusals(store, "box", ["a", "b"], listed, warn);
      expect([...verdict.permanent]).toEqual([]);
    }
    // "b" is gone from the server: its count goes, and "a" reaches the threshold.
    const verdict = await countRefusals(store, "box", ["a"], new Set(["a"]), warn);
    expect([...verdict.permanent]).toEqual(["a"]);
    expect(verdict.counts.get("a")).toBe(PERMANENT_AFTER_REFUSALS);
    expect(await record(store, "box")).toEqual({ version: 1, refusals: { a: 3 } });
  });

  it("counts a UIDL named __proto__ like any other", async () => {
    const store = new MemoryObjectStore();
    const listed = new Set(["__proto__"]);
    for (let run = 0; run < PERMANENT_AFTER_REFUSALS - 1; run++) {
      await countRefusals(store, "box", ["__proto__"], listed, () => {});
    }
    const verdict = await countRefusals(store, "box", ["__proto__"], listed, () => {});
    expect([...verdict.permanent]).toEqual(["__proto__"]);
  });

  it("starts over from an unreadable record, and calls nothing permanent when it cannot write", async () => {
    const store = new MemoryObjectStore();
    await store.put(refusalsKey("box"), Buffer.from("{not json"));
    const verdict = await countRefusals(store, "box", ["a"], new Set(["a"]), () => {});
    expect(verdict.counts.get("a")).toBe(1);

    const failing = new MemoryObjectStore({ failKey: (k) => k.startsWith("state/~refused/") });
    await failing
      .put(refusalsKey("box"), Buffer.from(JSON.stringify({ version: 1, refusals: { a: 9 } })))
      .catch(() => {});
    const warnings: string[] = [];
    const none = await countRefusals(failing, "box", ["a"], new Set(["a"]), (m) =>
      warnings.push(m),
    );
    expect([...none.permanent]).toEqual([]);
    expect(warnings[0]).toMatch(/^could not write state\/~refused\/box\.json: /);
  });
});
