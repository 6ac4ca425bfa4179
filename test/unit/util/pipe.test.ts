import { PassThrough, Readable, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { pipeInto } from "../../../lambdas/util/pipe.ts";

/** A sink that records what it got, taking `delayMs` per chunk (to exercise backpressure). */
function sink(options: { delayMs?: number; failOn?: number } = {}) {
  const got: Buffer[] = [];
  const dest = new Writable({
    highWaterMark: 4,
    write(chunk: Buffer, _enc, done) {
      if (options.failOn === got.length) {
        done(new Error("disk full"));
        return;
      }
      got.push(chunk);
      setTimeout(done, options.delayMs ?? 0);
    },
  });
  return { dest, got };
}

describe("pipeInto", () => {
  it("delivers every chunk in order and resolves once the sink has finished", async () => {
    const chunks = Array.from({ length: 50 }, (_, i) => Buffer.from(`chunk ${i};`));
    const { dest, got } = sink({ delayMs: 1 });
    await pipeInto(Readable.from(chunks), dest);
    expect(dest.writableFinished).toBe(true);
    expect(Buffer.concat(got).toString()).toBe(chunks.join(""));
  });

  it("holds the source back while the sink is slow (backpressure)", async () => {
    const source = new PassThrough({ highWaterMark: 8 });
    const { dest } = sink({ delayMs: 5 });
    const piped = pipeInto(source, dest);
    let accepted = 0;
    for (let i = 0; i < 20; i++) if (source.write(Buffer.alloc(8))) accepted++;
    // Each write beyond the buffers' room is refused: nothing is read faster than it is written.
    expect(accepted).toBeLessThan(5);
    source.end();
    await piped;
  });

  it("rejects with the source's error and destroys the sink with it", async () => {
    const source = new PassThrough();
    const { dest } = sink();
    const piped = pipeInto(source, dest);
    source.write("partial");
    const cause = new Error("connection reset");
    source.destroy(cause);
    await expect(piped).rejects.toBe(cause);
    expect(dest.destroyed).toBe(true);
    expect(dest.errored).toBe(cause);
  });

  it("rejects with the sink's error and destroys the source with it", async () => {
    const source = new PassThrough();
    const { dest } = sink({ failOn: 1 });
    const piped = pipeInto(source, dest);
    source.write("one");
    source.write("two");
    const err = await piped.catch((e: unknown) => e);
    expect(err).toMatchObject({ message: "disk full" });
    expect(source.destroyed).toBe(true);
    expect(source.errored).toBe(err);
  });

  it("rejects when the source closes before its end", async () => {
    const source = new PassThrough();
    const { dest } = sink();
    const piped = pipeInto(source, dest);
    source.write("half a message");
    source.destroy();
    await expect(piped).rejects.toMatchObject({ code: "ERR_STREAM_PREMATURE_CLOSE" });
    expect(dest.destroyed).toBe(true);
  });

  it("takes a stream's error after the pipe has finished, as pipeline() does, instead of leaving it uncaught", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on("uncaughtException", onUncaught);
    try {
      const source = new PassThrough({ autoDestroy: false });
      const { dest } = sink();
      const piped = pipeInto(source, dest);
      source.end("whole");
      await piped;
      // A deadline destroying a body that has just ended, say.
      source.destroy(new Error("too late"));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", onUncaught);
    }
  });

  it("resolves on the sink's writable side alone: a Duplex sink's output is the caller's", async () => {
    const tap = new PassThrough();
    const piped = pipeInto(Readable.from([Buffer.from("abc")]), tap);
    await piped;
    // Nothing read tap's output yet, and the pipe is still done.
    expect(tap.read()?.toString()).toBe("abc");
  });
});
