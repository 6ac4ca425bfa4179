/**
 * The per-command response parsers (lambdas/pop3/commands/), tested directly, and the commands
 * end to end with each response dribbled one octet per write so every parser sees its lines
 * assembled across chunk borders.
 */
import type { Socket } from "node:net";
import { setImmediate as tick } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../../lambdas/errors.ts";
import { parseListLine } from "../../../lambdas/pop3/commands/list.ts";
import { parseStat } from "../../../lambdas/pop3/commands/stat.ts";
import { parseUidlLine } from "../../../lambdas/pop3/commands/uidl.ts";
import type { Step } from "../../helpers/transcript-server.ts";
import { capa, opening, readAll, USER_PASS, withSession } from "./session.ts";

/** 2^53 + 1: a digit run JavaScript numbers cannot hold exactly. */
const UNSAFE = "9007199254740993";

const protocol = { code: ErrorCode.PROTOCOL };

describe("STAT drop listing (RFC 1939 §5)", () => {
  it("reads count and size and ignores what follows", () => {
    expect(parseStat("2 320")).toEqual({ count: 2, size: 320 });
    expect(parseStat("0 0 maildrop empty")).toEqual({ count: 0, size: 0 });
    expect(parseStat("7\t4096")).toEqual({ count: 7, size: 4096 });
  });

  it("rejects a malformed drop listing with PROTOCOL", () => {
    for (const text of ["", "2", "two 320", " 2 320", "-1 5"]) {
      expect(() => parseStat(text), JSON.stringify(text)).toThrow(
        expect.objectContaining(protocol),
      );
    }
  });

  it("rejects a size beyond 2^53 - 1 instead of rounding it", () => {
    expect(() => parseStat(`1 ${UNSAFE}`)).toThrow(
      expect.objectContaining({ ...protocol, message: "POP3 STAT: number out of range" }),
    );
  });
});

describe("LIST scan listing (RFC 1939 §5)", () => {
  it("reads msg and size, tolerating extra spaces and trailing fields", () => {
    expect(parseListLine("1 120")).toEqual({ msg: 1, size: 120 });
    expect(parseListLine("2  200")).toEqual({ msg: 2, size: 200 });
    expect(parseListLine("3 300 extra-info")).toEqual({ msg: 3, size: 300 });
    expect(parseListLine("4 400\tx")).toEqual({ msg: 4, size: 400 });
  });

  it("rejects anything but digits SP digits with PROTOCOL", () => {
    for (const line of ["", "1", "1 ", "1\t120", "1 12x", "x 120", " 1 120", "1 -5"]) {
      expect(() => parseListLine(line), JSON.stringify(line)).toThrow(
        expect.objectContaining(protocol),
      );
    }
  });

  it("rejects a message number or size beyond 2^53 - 1", () => {
    expect(() => parseListLine(`${UNSAFE} 1`)).toThrow(expect.objectContaining(protocol));
    expect(() => parseListLine(`1 ${UNSAFE}`)).toThrow(expect.objectContaining(protocol));
  });
});

describe("UIDL unique-id listing (RFC 1939 §7)", () => {
  it("takes the id verbatim to the end of the line", () => {
    expect(parseUidlLine("1 whqtswO00WBw418f9t5JxYwZ")).toEqual({
      msg: 1,
      uidl: "whqtswO00WBw418f9t5JxYwZ",
    });
    // Out-of-spec ids are kept as sent; isValidUidl is the caller's judge.
    expect(parseUidlLine("2 has space\t")).toEqual({ msg: 2, uidl: "has space\t" });
    expect(parseUidlLine("3 \u00ff\u0000")).toEqual({ msg: 3, uidl: "\u00ff\u0000" });
    expect(parseUidlLine("4   padded")).toEqual({ msg: 4, uidl: "padded" });
    expect(parseUidlLine("5 ")).toEqual({ msg: 5, uidl: "" });
  });

  it("rejects a line without a message number and a space with PROTOCOL", () => {
    for (const line of ["", "1", "x abc", " 1 abc", "1\tabc"]) {
      expect(() => parseUidlLine(line), JSON.stringify(line)).toThrow(
        expect.objectContaining(protocol),
      );
    }
    expect(() => parseUidlLine(`${UNSAFE} abc`)).toThrow(expect.objectContaining(protocol));
  });
});

/** A server step that writes `lines` (CRLF added) one octet per write, Nagle off. */
function dribble(...lines: string[]): Step {
  return {
    run: async (socket: Socket) => {
      socket.setNoDelay(true);
      const bytes = Buffer.from(lines.map((l) => `${l}\r\n`).join(""), "latin1");
      for (let i = 0; i < bytes.length; i++) {
        await new Promise<void>((resolve, reject) =>
          socket.write(bytes.subarray(i, i + 1), (err) => (err ? reject(err) : resolve())),
        );
        await tick();
      }
    },
  };
}

describe("commands over a server that sends one octet per write", () => {
  it("parses STAT, LIST, UIDL, CAPA and the RETR and TOP bodies", async () => {
    await withSession(
      [
        "S: +OK ready",
        "C: CAPA",
        dribble("+OK", "USER", "UIDL", "..X-STUFFED", "."),
        ...USER_PASS,
        ...capa("USER", "UIDL"),
        "C: STAT",
        dribble("+OK 2 320"),
        "C: LIST",
        dribble("+OK 2 messages", "1 120", "2 200 extra", "."),
        "C: LIST 2",
        dribble("+OK 2 200"),
        "C: UIDL",
        dribble("+OK", "1 a1", "2 ..b2", "."),
        "C: UIDL 2",
        dribble("+OK 2 .b2"),
        "C: TOP 1 0",
        dribble("+OK", "Subject: hi", "", "."),
        "C: RETR 2",
        dribble("+OK", "..dot", ".", "+OK after the body"),
        "C: NOOP",
      ],
      async ({ client }) => {
        expect(client.capabilities.raw).toEqual(["USER", "UIDL", ".X-STUFFED"]);
        await client.login({ username: "bob", password: "secret", allowInsecureAuth: true });
        expect(await client.stat()).toEqual({ count: 2, size: 320 });
        expect(await client.list()).toEqual([
          { msg: 1, size: 120 },
          { msg: 2, size: 200 },
        ]);
        expect(await client.list(2)).toEqual({ msg: 2, size: 200 });
        expect(await client.uidl()).toEqual([
          { msg: 1, uidl: "a1" },
          // Stuffing is only undone at the start of a line (RFC 1939 §3), never inside an id.
          { msg: 2, uidl: "..b2" },
        ]);
        expect(await client.uidl(2)).toEqual({ msg: 2, uidl: ".b2" });
        expect((await readAll(await client.top(1, 0))).toString()).toBe("Subject: hi\r\n\r\n");
        expect((await readAll(await client.retr(2, { expectedSize: 6 }))).toString()).toBe(
          ".dot\r\n",
        );
        // The "+OK" dribbled right after the terminator answers the next command.
        await client.noop();
      },
    );
  });
});

describe("CAPA after STLS and login (RFC 2449 §5, RFC 2595 §4)", () => {
  it("keeps the capabilities read before login when CAPA is refused after it", async () => {
    await withSession(
      [
        ...opening("USER", "PIPELINING", "EXPIRE 30"),
        ...USER_PASS,
        "C: CAPA",
        "S: -ERR not now",
        // With the pre-login PIPELINING still known, both commands are written before a reply.
        "C: NOOP",
        "C: STAT",
        "S: +OK",
        "S: +OK 0 0",
      ],
      async ({ client }) => {
        await client.login({ username: "bob", password: "secret", allowInsecureAuth: true });
        expect(client.capabilities).toMatchObject({ user: true, pipelining: true, expire: 30 });
        await Promise.all([client.noop(), client.stat()]);
      },
    );
  });
});
