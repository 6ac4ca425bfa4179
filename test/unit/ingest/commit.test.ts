/**
 * The commit sequence against fake ports that log every call: queue → state → mark → close →
 * forget, in that order, and nothing marked or forgotten on weaker evidence.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ErrorCode, isMailIngestError, MailIngestError } from "../../../lambdas/errors.ts";
import { CommitSequence, type Committable } from "../../../lambdas/ingest/commit.ts";
import type {
  MailSource,
  MessageQueue,
  SourceMessage,
  StateStore,
} from "../../../lambdas/ports.ts";

interface World {
  readonly calls: string[];
  readonly warnings: string[];
  readonly commit: CommitSequence;
  readonly source: MailSource;
  /** Fails the source's pending close(), as dropping a real connection does. */
  closeFail?: (err: Error) => void;
}

function message(key: string, ambiguous = false): SourceMessage {
  return {
    key,
    uidl: key,
    origin: { protocol: "pop3", uidl: key },
    size: 10,
    ref: Number(key.replace(/\D/g, "")) || 1,
    ambiguous,
  };
}

function item(key: string, ambiguous = false): Committable {
  return {
    message: message(key, ambiguous),
    entry: { id: `id-${key}`, body: "{}" },
    state: {
      uidl: key,
      id: `id-${key}`,
      ingestedAt: "2026-01-01T00:00:00Z",
      size: 10,
      sha256: "x",
    },
  };
}

function world(
  options: {
    queueFails?: boolean;
    stateFails?: boolean;
    closeFails?: boolean;
    closeHangs?: boolean;
    markAfterCommit?: boolean;
  } = {},
): World {
  const calls: string[] = [];
  const warnings: string[] = [];
  const w: Partial<World> & { calls: string[]; warnings: string[] } = { calls, warnings };
  const queue: MessageQueue = {
    maxBodyBytes: 1024,
    send: async (entries) => {
      calls.push(`send ${entries.map((e) => e.id).join(",")}`);
      if (options.queueFails) throw new Error("ENOSPC: no space left on device, write");
    },
  };
  const state: StateStore = {
    load: async () => new Map(),
    record: async (_mailbox, entries) => {
      calls.push(`record ${entries.map((e) => e.uidl).join(",")}`);
      if (options.stateFails) throw new Error("EIO: i/o error, write");
    },
    forget: async (_mailbox, keys) => {
      calls.push(`forget ${[...keys].sort().join(",")}`);
    },
  };
  const source: MailSource = {
    list: async () => ({ messages: [] }),
    fetch: async () => {
      throw new Error("not used");
    },
    markDone: async (m) => {
      calls.push(`mark ${m.key}`);
    },
    close: () => {
      calls.push("close");
      if (options.closeFails) return Promise.reject(new Error("connection reset"));
      if (options.closeHangs) {
        return new Promise<void>((_, reject) => {
          w.closeFail = reject;
        });
      }
      return Promise.resolve();
    },
    abort: () => {
      calls.push("abort");
      w.closeFail?.(new Error("connection closed by the client"));
    },
  };
  const commit = new CommitSequence({
    mailbox: "box",
    queue,
    state,
    source,
    markAfterCommit: options.markAfterCommit ?? true,
    warn: (m) => warnings.push(m),
  });
  return Object.assign(w, { commit, source }) as World;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("CommitSequence", () => {
  it("queues, then checkpoints, then marks, and forgets the marked keys only after close succeeds", async () => {
    const w = world();
    for (let i = 1; i <= 3; i++) expect(w.commit.add(item(`u${i}`))).toBeUndefined();
    expect(w.calls).toEqual([]);
    await w.commit.flush();
    await w.commit.close();
    expect(w.calls).toEqual([
      "send id-u1,id-u2,id-u3",
      "record u1,u2,u3",
      "mark u1",
      "mark u2",
      "mark u3",
      "close",
      "forget u1,u2,u3",
    ]);
    expect(w.commit.markedCount).toBe(3);
  });

  // Regression guard for issue 14: one checkpoint (an S3 PUT) per 20 messages, not per 10.
  it("flushes by itself once a checkpoint batch (20) is full, with one send and one record", async () => {
    const w = world({ markAfterCommit: false });
    for (let i = 1; i <= 19; i++) expect(w.commit.add(item(`u${i}`))).toBeUndefined();
    const flush = w.commit.add(item("u20"));
    expect(flush).toBeInstanceOf(Promise);
    await flush;
    expect(w.calls).toEqual([
      `send ${Array.from({ length: 20 }, (_, i) => `id-u${i + 1}`).join(",")}`,
      `record ${Array.from({ length: 20 }, (_, i) => `u${i + 1}`).join(",")}`,
    ]);
  });

  it("checkpoints and marks nothing when the queue refuses, and names the cause", async () => {
    const w = world({ queueFails: true });
    w.commit.add(item("u1"));
    const err = await w.commit.flush().catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.QUEUE_FAILED)).toBe(true);
    expect((err as Error).message).toMatch(/queueing failed: ENOSPC: no space left on device/);
    expect(w.calls).toEqual(["send id-u1"]);
  });

  it("marks nothing when the checkpoint fails", async () => {
    const w = world({ stateFails: true });
    w.commit.add(item("u1"));
    const err = await w.commit.flush().catch((e: unknown) => e);
    expect(isMailIngestError(err, ErrorCode.STORE_FAILED)).toBe(true);
    expect(w.calls).toEqual(["send id-u1", "record u1"]);
  });

  it("never marks a message whose identity is ambiguous", async () => {
    const w = world();
    w.commit.add(item("u1", true));
    w.commit.add(item("u2"));
    await w.commit.flush();
    await w.commit.close();
    expect(w.calls.filter((c) => c.startsWith("mark"))).toEqual(["mark u2"]);
  });

  it("counts nothing as done and forgets nothing when close fails", async () => {
    const w = world({ closeFails: true });
    w.commit.add(item("u1"));
    await w.commit.flush();
    await w.commit.close();
    expect(w.commit.markedCount).toBe(0);
    expect(w.calls).not.toContain("forget u1");
    expect(w.calls).toContain("abort");
    expect(w.warnings.join("\n")).toMatch(/QUIT failed, so 1 DELE\(s\) were not committed/);
  });

  it("drops the connection when close is not answered by the deadline plus its grace", async () => {
    vi.useFakeTimers();
    const w = world({ closeHangs: true });
    w.commit.add(item("u1"));
    await w.commit.flush();
    const closing = w.commit.close(Date.now() + 1_000);
    await vi.advanceTimersByTimeAsync(10_999);
    expect(w.calls).not.toContain("abort");
    await vi.advanceTimersByTimeAsync(2);
    await closing;
    expect(w.calls).toContain("abort");
    expect(w.commit.markedCount).toBe(0);
    expect(w.calls).not.toContain("forget u1");
  });

  it("abort commits nothing", async () => {
    const w = world();
    w.commit.add(item("u1"));
    await w.commit.flush();
    await w.commit.abort();
    expect(w.commit.markedCount).toBe(0);
    expect(w.calls).toEqual(["send id-u1", "record u1", "mark u1", "abort"]);
  });

  it("keeps an adapter's own typed error as it is", async () => {
    const w = world();
    const typed = new MailIngestError(ErrorCode.QUEUE_FAILED, "SendMessageBatch failed");
    (w.commit as unknown as { deps: { queue: MessageQueue } }).deps.queue.send = async () => {
      throw typed;
    };
    w.commit.add(item("u1"));
    await expect(w.commit.flush()).rejects.toBe(typed);
  });
});
