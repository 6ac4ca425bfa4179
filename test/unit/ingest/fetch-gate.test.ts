import { describe, expect, it } from "vitest";
import { FetchGate } from "../../../lambdas/ingest/fetch-gate.ts";

describe("FetchGate", () => {
  it("admits messages side by side while their sizes fit the budget", () => {
    const gate = new FetchGate(100);
    const a = gate.tryAcquire(40);
    const b = gate.tryAcquire(30);
    const c = gate.tryAcquire(30);
    expect([a, b, c].every((r) => r !== undefined)).toBe(true);
    expect(gate.heldBytes).toBe(100);
    expect(gate.tryAcquire(1)).toBeUndefined();
    a?.();
    expect(gate.heldBytes).toBe(60);
  });

  it("caps a message's weight at half the budget: two large ones at once, a third waits, small mail still flows beside one", async () => {
    const gate = new FetchGate(100);
    const big1 = await gate.acquire(10_000);
    expect(gate.heldBytes).toBe(50);
    // Beside one large message, smaller ones still fit.
    const small = gate.tryAcquire(20);
    expect(small).toBeDefined();
    small?.();
    const big2 = await gate.acquire(10_000);
    let third = false;
    const waiting = gate.acquire(10_000).then((release) => {
      third = true;
      return release;
    });
    await Promise.resolve();
    expect(third).toBe(false);
    big1();
    (await waiting)();
    expect(third).toBe(true);
    big2();
    expect(gate.heldBytes).toBe(0);
  });

  it("serves waiters in order, and a waiter is never overtaken by a later tryAcquire", async () => {
    const gate = new FetchGate(100);
    const first = gate.tryAcquire(40);
    const second = gate.tryAcquire(40);
    const order: string[] = [];
    const large = gate.acquire(50).then((release) => {
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
    second?.();
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
