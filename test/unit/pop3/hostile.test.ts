import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../../lambdas/errors.ts";
import { Pop3Client } from "../../../lambdas/pop3/index.ts";
import { BODY_HIGH_WATER_MARK } from "../../../lambdas/pop3/limits.ts";
import { startTranscriptServer } from "../../helpers/transcript-server.ts";
import { GREETING, opening, readAll, withSession } from "./session.ts";

/** Polls `read` until it returns the same value `stableFor` times in a row (never asserts speed). */
async function settle(read: () => number, stableFor = 5, intervalMs = 20): Promise<number> {
  let last = read();
  let same = 0;
  for (let i = 0; i < 500 && same < stableFor; i++) {
    await new Promise((r) => setTimeout(r, intervalMs));
    const now = read();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

describe("hostile POP3 servers", () => {
  it("errors a RETR stream with CONNECTION_CLOSED when the server cuts mid-body", async () => {
    await withSession(
      [
        ...opening(),
        "C: RETR 1",
        "S: +OK",
        { raw: "Subject: x\r\n\r\npartial body\r\n" },
        { destroy: true },
      ],
      async ({ client }) => {
        const stream = await client.retr(1);
        await expect(readAll(stream)).rejects.toMatchObject({ code: ErrorCode.CONNECTION_CLOSED });
        await expect(client.noop()).rejects.toMatchObject({ code: ErrorCode.CONNECTION_CLOSED });
      },
    );
  });

  it("never ends a stream cleanly without the terminator, even when the size matches", async () => {
    const body = "Subject: x\r\n\r\nhi\r\n";
    await withSession(
      [...opening(), "C: RETR 1", "S: +OK", { raw: body }, { close: true }],
      async ({ client }) => {
        const stream = await client.retr(1, { expectedSize: body.length });
        await expect(readAll(stream)).rejects.toMatchObject({ code: ErrorCode.CONNECTION_CLOSED });
      },
    );
  });

  it("errors a RETR stream with SIZE_MISMATCH when the body differs from LIST, keeping the session", async () => {
    await withSession(
      [...opening(), "C: RETR 1", "S: +OK", { raw: "short\r\n.\r\n" }, "C: NOOP", "S: +OK"],
      async ({ client }) => {
        const stream = await client.retr(1, { expectedSize: 100 });
        await expect(readAll(stream)).rejects.toMatchObject({ code: ErrorCode.SIZE_MISMATCH });
        await client.noop();
      },
    );
  });

  it("fails fast with LINE_TOO_LONG on a 20 MB line and stops reading", async () => {
    const total = 20 * 1024 * 1024;
    let pushed = 0;
    const server = await startTranscriptServer([
      {
        run: async (socket: Socket) => {
          const chunk = Buffer.alloc(64 * 1024, 0x41);
          // Write with backpressure until the client hangs up: `pushed` is what the kernel took.
          while (pushed < total && !socket.destroyed) {
            if (!socket.write(chunk)) {
              await new Promise<void>((resolve) => {
                socket.once("drain", resolve);
                socket.once("close", resolve);
              });
            }
            pushed += chunk.length;
          }
        },
      },
    ]);
    try {
      await expect(
        Pop3Client.connect({ host: server.host, port: server.port, tls: "none" }),
      ).rejects.toMatchObject({
        code: ErrorCode.LINE_TOO_LONG,
      });
      await server.finished;
      // The client hung up long before the server could hand over the whole line.
      expect(pushed).toBeLessThan(total);
    } finally {
      await server.close();
    }
  });

  it("fails a command with TIMEOUT when the server stalls", async () => {
    await withSession(
      [...opening(), "C: STAT", { stall: true }],
      async ({ client }) => {
        await expect(client.stat()).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
      },
      { timeoutMs: 150 },
    );
  });

  it("keeps a listing alive that trickles in, each line within the idle timeout", async () => {
    // The idle timer restarts on each chunk received, not only on each complete response: this
    // listing takes longer than timeoutMs as a whole (12 × 100 ms against 1,000 ms).
    const lines = Array.from({ length: 12 }, (_, i) => `${i + 1} uid-${i + 1}`);
    await withSession(
      [
        ...opening(),
        "C: UIDL",
        {
          run: async (socket: Socket) => {
            socket.write("+OK\r\n");
            for (const line of lines) {
              await new Promise((resolve) => setTimeout(resolve, 100));
              socket.write(`${line}\r\n`);
            }
            socket.write(".\r\n");
          },
        },
      ],
      async ({ client }) => {
        const listed = await client.uidl();
        expect(listed.map((e) => `${e.msg} ${e.uidl}`)).toEqual(lines);
      },
      { timeoutMs: 1_000 },
    );
  });

  it("runs no idle timer while no response is awaited", async () => {
    // Regression guard for the timer restarted in place (issue 14): once the last response is
    // in, the timer must be cleared, or an idle client would fail its next command.
    await withSession(
      [...opening(), "C: NOOP", "S: +OK", "C: NOOP", "S: +OK"],
      async ({ client }) => {
        await client.noop();
        await new Promise((resolve) => setTimeout(resolve, 450));
        await expect(client.noop()).resolves.toBeUndefined();
      },
      { timeoutMs: 150 },
    );
  });

  it("errors a RETR stream with TIMEOUT when the server stalls mid-body", async () => {
    await withSession(
      [...opening(), "C: RETR 1", "S: +OK", { raw: "half a mess" }, { stall: true }],
      async ({ client }) => {
        const stream = await client.retr(1);
        await expect(readAll(stream)).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
      },
      { timeoutMs: 150 },
    );
  });

  it("fails connect with TIMEOUT when no greeting arrives", async () => {
    const server = await startTranscriptServer([{ stall: true }]);
    try {
      await expect(
        Pop3Client.connect({ host: server.host, port: server.port, tls: "none", timeoutMs: 150 }),
      ).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    } finally {
      await server.close();
    }
  });

  it("fails with CONNECT_TIMEOUT when the TLS handshake never completes", async () => {
    // A plain TCP server that never answers the ClientHello.
    const server = await startTranscriptServer([{ stall: true }]);
    try {
      await expect(
        Pop3Client.connect({
          host: server.host,
          port: server.port,
          tls: "implicit",
          connectTimeoutMs: 150,
        }),
      ).rejects.toMatchObject({ code: ErrorCode.CONNECT_TIMEOUT });
    } finally {
      await server.close();
    }
  });

  it("pauses the socket while the RETR consumer does not read, then delivers every byte", async () => {
    const size = 32 * 1024 * 1024;
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) body.write(`line ${i}\r\n`.padStart(64, "x"), i, "latin1");
    // A RETR payload ends with CRLF so that the terminator line starts a line (RFC 1939 §3).
    body.write("\r\n", size - 2, "latin1");
    const expected = createHash("sha256").update(body).digest("hex");
    let serverSocket: Socket | undefined;
    await withSession(
      [
        ...opening(),
        "C: RETR 1",
        {
          run: (socket: Socket) => {
            serverSocket = socket;
            socket.write("+OK\r\n");
            socket.write(body);
            socket.write(".\r\n");
          },
        },
      ],
      async ({ client }) => {
        const stream = await client.retr(1, { expectedSize: size });
        // Nobody reads: the client must stop pulling from the socket, so the server's own
        // buffer keeps most of the message (kernel buffers on loopback hold a few MB at most).
        const unsent = await settle(() => serverSocket?.writableLength ?? 0);
        expect(unsent).toBeGreaterThan(size / 2);
        expect(stream.readableLength).toBeLessThanOrEqual(2 * BODY_HIGH_WATER_MARK);
        // And the idle timer did not fire while the consumer held back.
        const hash = createHash("sha256");
        let length = 0;
        for await (const chunk of stream) {
          hash.update(chunk as Buffer);
          length += (chunk as Buffer).length;
        }
        expect(length).toBe(size);
        expect(hash.digest("hex")).toBe(expected);
      },
      { timeoutMs: 100 },
    );
  });

  it("rejects every pending pipelined command when the connection drops", async () => {
    await withSession(
      [
        ...opening("USER", "PIPELINING"),
        "C: USER bob",
        "S: +OK",
        "C: PASS secret",
        "S: +OK",
        "C: CAPA",
        "S: +OK",
        "S: PIPELINING",
        "S: .",
        "C: DELE 1",
        "C: DELE 2",
        "C: DELE 3",
        "S: +OK",
        { destroy: true },
      ],
      async ({ client }) => {
        await client.login({ username: "bob", password: "secret", allowInsecureAuth: true });
        const results = await Promise.allSettled([client.dele(1), client.dele(2), client.dele(3)]);
        expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected"]);
        expect((results[1] as PromiseRejectedResult).reason).toMatchObject({
          code: ErrorCode.CONNECTION_CLOSED,
        });
      },
    );
  });

  it("treats a server line nobody asked for as a PROTOCOL failure", async () => {
    await withSession(
      [GREETING, "C: CAPA", "S: -ERR no", "S: +OK surprise", { stall: true }],
      async ({ client }) => {
        // Both lines arrive in one segment, so the stray one is seen before NOOP could be sent.
        await expect(client.noop()).rejects.toMatchObject({ code: ErrorCode.PROTOCOL });
      },
    );
  });
});
