import { describe, expect, it } from "vitest";
import { FetchGate } from "../../../lambdas/ingest/fetch-gate.ts";

describe("FetchGate", () => {
  it("admits messages side by side while their sizes fit the budget", () => {
    const gate = new FetchGate(100);
    const a = gate.tryAcquire(40);
    const b = gate.tryAcquire(60);
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(gate.heldBytes).toBe(100);
    expect(gate.tryAcquire(1)).toBeUndefined();
    a?.();
    expect(gate.heldBytes).toBe(60);
  });

  it("caps a message's weight at the budget, so one larger than the budget runs alone", async () => {
    const gate = new FetchGate(100);
    const big = await gate.acquire(10_000);
    expect(gate.heldBytes).toBe(100);
    let small = false;
    const waiting = gate.acquire(1).then((release) => {
      small = true;
      return release;
    });
    await Promise.resolve();
    expect(small).toBe(false);
    big();
    (await waiting)();
    expect(small).toBe(true);
    expect(gate.heldBytes).toBe(0);
  });

  it("serves waiters in order, and a waiter is never overtaken by a later tryAcquire", async () => {
    const gate = new FetchGate(100);
    const first = gate.tryAcquire(80);
    const order: string[] = [];
    const large = gate.acquire(100).then((release) => {
      order.push("large");
      return release;
    });
    // 20 bytes are free, but the large message waits first: a small one must not slip past it.
    expect(gate.tryAcquire(10)).toBeUndefined();
    const small = gate.acquire(10).then((release) => {
      order.push("small");
      return release;
    });
    first?.();
    (await large)();
    (await small)();
    expect(order).toEqual(["large", "small"]);
  });

  it("gives back a weight once, however often its release is called", () => {
    const gate = new FetchGate(100);
    const a = gate.tryAcquire(30);
    gate.tryAcquire(30);
    a?.();
    a?.();
    expect(gate.heldBytes).toBe(30);
  });

  it("counts an empty message, which still holds a parse and a commit", () => {
    const gate = new FetchGate(2);
    expect(gate.tryAcquire(0)).toBeDefined();
    expect(gate.tryAcquire(0)).toBeDefined();
    expect(gate.tryAcquire(0)).toBeUndefined();
  });
});
