import { once } from "node:events";
import type { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ErrorCode, type MailIngestError } from "../../../lambdas/errors.ts";
import { MAX_LINE_BYTES } from "../../../lambdas/pop3/limits.ts";
import { ResponseReader } from "../../../lambdas/pop3/reader.ts";

/** Seeded PRNG (mulberry32) so a failing split is reproducible from the printed seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** RFC 1939 §3 byte-stuffing: a CRLF-framed line starting with "." gets one more ".". */
function stuff(message: Buffer): Buffer {
  const out: number[] = [];
  let lineStart = true;
  for (let i = 0; i < message.length; i++) {
    const b = message[i] as number;
    if (lineStart && b === 0x2e) out.push(0x2e);
    out.push(b);
    lineStart = b === 0x0a && i > 0 && message[i - 1] === 0x0d;
  }
  return Buffer.from(out);
}

/** Wraps messages into a pipelined wire stream: "+OK body" + stuffed + ".CRLF" each. */
function wire(messages: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of messages) parts.push(Buffer.from("+OK body\r\n"), stuff(m), Buffer.from(".\r\n"));
  parts.push(Buffer.from("+OK after\r\n"));
  return Buffer.concat(parts);
}

function randomMessage(rand: () => number): Buffer {
  // Weighted toward the octets that matter for framing.
  const atoms = [
    ".",
    "..",
    "\r",
    "\n",
    "\r\n",
    ".\r\n",
    "\r\n.",
    "\0",
    "\xff",
    "a",
    "hello ",
    "\r\n..\r\n",
  ];
  const n = Math.floor(rand() * 40);
  let s = "";
  for (let i = 0; i < n; i++) s += atoms[Math.floor(rand() * atoms.length)];
  // A well-formed RETR payload ends in CRLF (or is empty).
  if (s.length > 0 && !s.endsWith("\r\n")) s += "\r\n";
  return Buffer.from(s, "latin1");
}

function split(data: Buffer, rand: () => number, maxChunk: number): Buffer[] {
  const chunks: Buffer[] = [];
  let i = 0;
  while (i < data.length) {
    const size = 1 + Math.floor(rand() * maxChunk);
    chunks.push(data.subarray(i, i + size));
    i += size;
  }
  return chunks;
}

interface Framed {
  lines: string[];
  bodies: Buffer[];
  fatal: MailIngestError | undefined;
}

async function frame(chunks: Buffer[], expectedSizes: number[] = []): Promise<Framed> {
  const result: Framed = { lines: [], bodies: [], fatal: undefined };
  const done: Promise<void>[] = [];
  const reader: ResponseReader = new ResponseReader({
    onLine: (text) => {
      result.lines.push(text);
      if (text !== "+OK body") return;
      const index = result.bodies.length;
      const size = expectedSizes[index];
      const body = reader.beginBody({
        ...(size !== undefined ? { expectedSize: size } : {}),
        onEnd: () => {},
      });
      const parts: Buffer[] = [];
      result.bodies.push(Buffer.alloc(0));
      body.on("data", (c: Buffer) => parts.push(c));
      done.push(
        new Promise((resolve, reject) => {
          body.on("end", () => {
            result.bodies[index] = Buffer.concat(parts);
            resolve();
          });
          body.on("error", reject);
        }),
      );
    },
    onFatal: (err) => {
      result.fatal = err;
    },
    onBlockedChange: () => {},
  });
  for (const chunk of chunks) {
    if (!reader.write(chunk)) await once(reader, "drain");
  }
  await Promise.all(done);
  return result;
}

describe("ResponseReader body framing (RFC 1939 §3)", () => {
  it("unstuffs dots and finds the terminator for every random split of random messages", async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = prng(seed);
      const messages = [randomMessage(rand), randomMessage(rand), randomMessage(rand)];
      const data = wire(messages);
      const chunks = split(data, rand, seed % 3 === 0 ? 1 : 1 + Math.floor(rand() * 16));
      const framed = await frame(
        chunks,
        messages.map((m) => m.length),
      );
      expect(framed.bodies, `seed ${seed}`).toEqual(messages);
      expect(framed.lines.at(-1), `seed ${seed}`).toBe("+OK after");
    }
  });

  it("delivers the same bytes with 1-byte chunks as with one chunk", async () => {
    const message = Buffer.from("..a\r\n.\r\n..\r\n.x\r\n\r\n.\r\r\n", "latin1");
    const data = wire([message]);
    const whole = await frame([data]);
    const bytewise = await frame([...data].map((b) => Buffer.from([b])));
    expect(whole.bodies).toEqual([message]);
    expect(bytewise.bodies).toEqual([message]);
  });

  it("treats a dot after a bare LF as data, not a line start", async () => {
    // "\n.\r\n" is inside a line in CRLF framing: neither a terminator nor a stuffed dot.
    const payload = Buffer.from("a\n.\r\nb\n..\r\n", "latin1");
    const framed = await frame([
      Buffer.from("+OK body\r\n"),
      payload,
      Buffer.from(".\r\n+OK after\r\n"),
    ]);
    expect(framed.bodies).toEqual([payload]);
    expect(framed.lines.at(-1)).toBe("+OK after");
  });

  it("passes NUL, 8-bit and bare CR bytes through untouched", async () => {
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    const message = Buffer.concat([all, Buffer.from("\r\n")]);
    const framed = await frame(split(wire([message]), prng(7), 5));
    expect(framed.bodies).toEqual([message]);
  });

  it("strips the leading dot of a dot-CR-other line and keeps the CR, at every split point", async () => {
    // ".\rX" at a line start: RFC 1939 §3 says octets other than CRLF follow, so strip the dot.
    // Only an unstuffing-unaware server sends this, so random stuffed messages never cover it.
    const data = Buffer.from("+OK body\r\n.\rX\r\n.\r\r\n.\r\n+OK after\r\n", "latin1");
    const expected = Buffer.from("\rX\r\n\r\r\n", "latin1");
    for (let cut = 1; cut < data.length; cut++) {
      const framed = await frame([data.subarray(0, cut), data.subarray(cut)]);
      expect(framed.bodies, `cut at ${cut}`).toEqual([expected]);
    }
    const bytewise = await frame([...data].map((b) => Buffer.from([b])));
    expect(bytewise.bodies).toEqual([expected]);
  });

  it("errors the stream with SIZE_MISMATCH when the body differs from the expected size", async () => {
    await expect(frame([wire([Buffer.from("abc\r\n")])], [4])).rejects.toMatchObject({
      code: ErrorCode.SIZE_MISMATCH,
    });
    await expect(frame([wire([Buffer.from("abc\r\n")])], [6])).rejects.toMatchObject({
      code: ErrorCode.SIZE_MISMATCH,
    });
  });

  it("keeps framing after a size mismatch so the next response is still read", async () => {
    const lines: string[] = [];
    const errors: unknown[] = [];
    const reader: ResponseReader = new ResponseReader({
      onLine: (line) => {
        lines.push(line.toString());
        if (lines.length === 1) {
          const body = reader.beginBody({ expectedSize: 1, onEnd: () => {} });
          body.on("error", (err) => errors.push(err));
          body.resume();
        }
      },
      onFatal: () => {},
      onBlockedChange: () => {},
    });
    reader.write(Buffer.from("+OK\r\nlonger than one octet\r\n.\r\n+OK next\r\n"));
    await new Promise((r) => setImmediate(r));
    expect(errors).toHaveLength(1);
    expect(lines).toEqual(["+OK", "+OK next"]);
  });
});

describe("ResponseReader line framing", () => {
  it("frames several lines in one chunk and one line over many chunks", async () => {
    const framed = await frame([
      Buffer.from("+OK a\r\n-ERR b\r\n+O"),
      Buffer.from("K c\r"),
      Buffer.from("\n"),
    ]);
    expect(framed.lines).toEqual(["+OK a", "-ERR b", "+OK c"]);
  });

  it("fails with LINE_TOO_LONG once a line passes the limit, without reading the rest", async () => {
    const framed = await frame([Buffer.alloc(MAX_LINE_BYTES + 2, 0x41), Buffer.from("\r\n")]);
    expect(framed.fatal?.code).toBe(ErrorCode.LINE_TOO_LONG);
    expect(framed.lines).toEqual([]);
  });

  it("accepts a line of exactly the limit", async () => {
    const framed = await frame([Buffer.alloc(MAX_LINE_BYTES, 0x41), Buffer.from("\r\n")]);
    expect(framed.fatal).toBeUndefined();
    expect(framed.lines[0]).toHaveLength(MAX_LINE_BYTES);
  });

  it("frames many lines of any length and octet, cut anywhere, with a body among them", async () => {
    // Lines are decoded a window at a time (LINE_WINDOW, 4 KiB): lines across window and chunk
    // borders, longer than the window, empty, high octets, bare LF, and a body that starts in the
    // middle of a window must all come out as framed one by one.
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const lines: string[] = [];
    const wire: Buffer[] = [];
    for (let i = 0; i < 600; i++) {
      if (i === 300) {
        lines.push("+OK body");
        wire.push(Buffer.from("+OK body\r\nbody line\r\n..stuffed\r\n.\r\n", "latin1"));
        continue;
      }
      const length = random(10) === 0 ? 4000 + random(3000) : random(40);
      const bytes = Buffer.alloc(length);
      for (let j = 0; j < length; j++) {
        const b = random(256);
        bytes[j] = b === 0x0a || b === 0x0d ? 0x41 : b;
      }
      lines.push(bytes.toString("latin1"));
      wire.push(bytes, Buffer.from(random(5) === 0 ? "\n" : "\r\n"));
    }
    const all = Buffer.concat(wire);
    const chunks: Buffer[] = [];
    for (let at = 0; at < all.length; ) {
      const size = 1 + random(random(4) === 0 ? 20_000 : 300);
      chunks.push(all.subarray(at, at + size));
      at += size;
    }
    const framed = await frame(chunks);
    expect(framed.fatal).toBeUndefined();
    expect(framed.lines).toEqual(lines);
    expect(framed.bodies.map((b) => b.toString("latin1"))).toEqual(["body line\r\n.stuffed\r\n"]);
  });

  it("drops everything after halt (STLS +OK injection)", async () => {
    const lines: string[] = [];
    const reader: ResponseReader = new ResponseReader({
      onLine: (line) => {
        lines.push(line.toString());
        reader.halt();
      },
      onFatal: () => {},
      onBlockedChange: () => {},
    });
    reader.write(Buffer.from("+OK begin TLS\r\n+OK injected\r\n"));
    reader.write(Buffer.from("+OK more\r\n"));
    expect(lines).toEqual(["+OK begin TLS"]);
  });
});

describe("ResponseReader backpressure", () => {
  it("holds input while the body is not read and resumes when it is", async () => {
    let body: Readable | undefined;
    const blocked: boolean[] = [];
    const reader: ResponseReader = new ResponseReader({
      onLine: () => {
        body = reader.beginBody({ onEnd: () => {} });
      },
      onFatal: () => {},
      onBlockedChange: (b) => blocked.push(b),
    });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    reader.write(Buffer.from("+OK\r\n"));
    let accepted = 0;
    for (let i = 0; i < 20; i++) {
      if (!reader.write(chunk)) break;
      accepted++;
    }
    // The stream buffers up to its high-water mark, then the writer is told to stop.
    expect(accepted).toBeLessThan(4);
    expect(reader.blocked).toBe(true);
    expect(body?.readableLength).toBeLessThanOrEqual(128 * 1024);
    const drained = once(reader, "drain");
    body?.resume();
    await drained;
    expect(blocked).toEqual([true, false]);
  });
});
