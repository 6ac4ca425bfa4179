/**
 * The memory bound shared by the sessions of one process. Each session bounds its own memory by
 * its windows (session.ts: fetches ahead, commits in flight), but a process runs several sessions
 * at once (the CLI's `concurrency`, the poller's batch of mailboxes), and a message's memory is
 * not all windowed: its parse holds decoded text up to 16 MiB, and an S3 upload buffers whole
 * parts. So every message fetched holds a weight, its listed size capped at half the budget, and
 * the weights held at once never exceed the budget. Small mail from many mailboxes flows side by
 * side, and at most two large messages are fetched at once, whichever sessions they belong to.
 * Half, not all: with the whole budget a large message would hold up every other mailbox's
 * small mail for its whole download (measured, bench --fleet: a batch of 10 mailboxes with one
 * 100 MB message took 13.5 s instead of 7.4 s).
 *
 * Deadlock-free by construction: a session waits ({@link FetchGate.acquire}) only while it has no
 * fetch sent ahead, so what it holds belongs to messages already read off the wire, whose
 * commits finish without the gate and release it. Waiters are served in order, and a waiter
 * stops later {@link FetchGate.tryAcquire} calls from overtaking it, so a large message is never
 * starved by a stream of small ones.
 */

/** Gives back what an acquire took; calling it again does nothing. */
export type GateRelease = () => void;

/**
 * The default budget, bytes. Sized against a poller's default 512 MiB: a 340 MB message measured
 * 151 MiB peak RSS on the fs backend and 234 MiB on S3 alone (~130 MiB above an idle process), so
 * two at once fit with room.
 */
export const DEFAULT_FETCH_BUDGET_BYTES = 64 * 1024 * 1024;

export class FetchGate {
  private held = 0;
  private readonly waiters: { readonly weight: number; readonly grant: () => void }[] = [];

  /** The most one message weighs: half the budget. */
  readonly largestWeight: number;

  constructor(readonly budgetBytes: number = DEFAULT_FETCH_BUDGET_BYTES) {
    if (!(budgetBytes >= 2)) throw new RangeError("the fetch budget must be at least 2 bytes");
    this.largestWeight = Math.floor(budgetBytes / 2);
  }

  /** Bytes held by the messages being fetched or committed right now. */
  get heldBytes(): number {
    return this.held;
  }

  /** Takes the weight of a message of `size` bytes now, or returns undefined if it does not fit. */
  tryAcquire(size: number): GateRelease | undefined {
    const weight = this.weightOf(size);
    if (this.waiters.length > 0 || this.held + weight > this.budgetBytes) return undefined;
    this.held += weight;
    return this.releaser(weight);
  }

  /** Takes the weight of a message of `size` bytes, waiting in line until it fits. */
  acquire(size: number): Promise<GateRelease> {
    const now = this.tryAcquire(size);
    if (now) return Promise.resolve(now);
    const weight = this.weightOf(size);
    return new Promise((resolve) => {
      this.waiters.push({ weight, grant: () => resolve(this.releaser(weight)) });
    });
  }

  private weightOf(size: number): number {
    // An empty message still holds a parse and a commit.
    return Math.max(1, Math.min(size, this.largestWeight));
  }

  private releaser(weight: number): GateRelease {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= weight;
      for (let next = this.waiters[0]; next; next = this.waiters[0]) {
        if (this.held + next.weight > this.budgetBytes) break;
        this.waiters.shift();
        this.held += next.weight;
        next.grant();
      }
    };
  }
}
