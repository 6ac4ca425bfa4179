import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { isMailIngestError } from "../../../lambdas/errors.ts";
import { parseMessage, preview } from "../../../lambdas/mime/parse.ts";
import { MemoryObjectStore } from "./memory-store.ts";
import {
  base64Lines,
  CRLF,
  countingSource,
  multipartMessage,
  pieces,
  plainMessage,
  quotedPrintable,
  sha256,
} from "./messages.ts";

const PREFIX = "parts/support/0123456789abcdef0123456789abcdef/";

function stored(store: MemoryObjectStore, key: string): Buffer {
  const bytes = store.objects.get(key)?.bytes;
  if (bytes === undefined) throw new Error(`nothing stored at ${key}`);
  return bytes;
}

describe("parseMessage attachments", () => {
  const payload = randomBytes(200_003);

  it.each([
    ["base64", base64Lines(payload)],
    ["quoted-printable", quotedPrintable(payload)],
  ])(
    "stores a %s binary attachment byte-exact with its sha256 and size",
    async (encoding, body) => {
      const raw = multipartMessage([
        { headers: ["Content-Type: text/plain; charset=utf-8"], body: "see attached" },
        {
          headers: [
            "Content-Type: application/octet-stream",
            `Content-Transfer-Encoding: ${encoding}`,
            'Content-Disposition: attachment; filename="data.bin"',
            "Content-ID: <part1@example.com>",
          ],
          body,
        },
      ]);
      const store = new MemoryObjectStore();
      const parsed = await parseMessage(Readable.from(pieces(raw, 4096)), store, PREFIX);

      expect(parsed.parseError).toBeUndefined();
      expect(parsed.attachments).toEqual([
        {
          index: 0,
          filename: "data.bin",
          contentType: "application/octet-stream",
          size: payload.length,
          sha256: sha256(payload),
          contentId: "part1@example.com",
          disposition: "attachment",
          ref: `${PREFIX}attachments/0000-data.bin`,
        },
      ]);
      expect(sha256(stored(store, `${PREFIX}attachments/0000-data.bin`))).toBe(sha256(payload));
    },
  );

  it("gives the same result when the source arrives one byte at a time", async () => {
    const raw = multipartMessage([
      { headers: ["Content-Type: text/plain"], body: "hello" },
      {
        headers: ["Content-Type: image/png", "Content-Transfer-Encoding: base64"],
        body: base64Lines(payload.subarray(0, 3000)),
      },
    ]);
    const whole = await parseMessage(Readable.from([raw]), new MemoryObjectStore(), PREFIX);
    const bytewise = await parseMessage(
      Readable.from(pieces(raw, 1)),
      new MemoryObjectStore(),
      PREFIX,
    );
    expect(bytewise).toEqual(whole);
    expect(whole.attachments[0]?.sha256).toBe(sha256(payload.subarray(0, 3000)));
  });

  it("skips attachments past maxAttachments, flags truncated and still stores the text", async () => {
    const raw = multipartMessage([
      { headers: ["Content-Type: application/pdf"], body: "one" },
      { headers: ["Content-Type: application/pdf"], body: "two" },
      { headers: ["Content-Type: application/pdf"], body: "three" },
      { headers: ["Content-Type: text/plain"], body: "body after attachments" },
    ]);
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(Readable.from([raw]), store, PREFIX, { maxAttachments: 2 });
    expect(parsed.attachments.map((a) => a.index)).toEqual([0, 1]);
    expect(parsed.truncated).toBe(true);
    expect(parsed.parseError).toBeUndefined();
    expect(stored(store, `${PREFIX}body.txt`).toString()).toBe("body after attachments");
    expect([...store.objects.keys()].filter((k) => k.includes("/attachments/"))).toHaveLength(2);
  });
});

describe("parseMessage bodies", () => {
  it("stores text and html bodies and reports their UTF-8 sizes", async () => {
    const raw = Buffer.from(
      [
        "From: a@example.com",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="alt"',
        "",
        "--alt",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Grüße",
        "--alt",
        "Content-Type: text/html; charset=iso-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "<p>Gr=FC=DFe</p>",
        "--alt--",
        "",
      ].join(CRLF),
    );
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(Readable.from([raw]), store, PREFIX);
    expect(parsed.text).toEqual({ ref: `${PREFIX}body.txt`, size: Buffer.byteLength("Grüße") });
    expect(parsed.html).toEqual({
      ref: `${PREFIX}body.html`,
      size: Buffer.byteLength("<p>Grüße</p>"),
    });
    expect(stored(store, `${PREFIX}body.html`).toString("utf8")).toBe("<p>Grüße</p>");
    expect(parsed.textPreview).toBe("Grüße");
  });

  it("cuts textPreview to at most 1024 UTF-8 bytes on a character boundary", async () => {
    // 1023 ASCII bytes then 4-byte emoji: a byte cut at 1024 would split the emoji.
    const body = `${"a".repeat(1023)}😀${"é".repeat(2000)}`;
    const parsed = await parseMessage(
      Readable.from([plainMessage(body)]),
      new MemoryObjectStore(),
      PREFIX,
    );
    const text = parsed.textPreview ?? "";
    expect(text).toBe("a".repeat(1023));
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(1024);

    const accented = preview("é".repeat(2000), 1024);
    expect(Buffer.byteLength(accented)).toBe(1024);
    expect(Buffer.from(accented, "utf8").toString("utf8")).toBe(accented);
    expect(accented).not.toContain("\uFFFD");
    expect(preview("x€", 3)).toBe("x");
  });

  it("caps buffered text at maxTextBytes, flags truncated and reports the stored size", async () => {
    const body = "0123456789".repeat(10_000);
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(
      Readable.from(pieces(plainMessage(body), 1000)),
      store,
      PREFIX,
      {
        maxTextBytes: 5000,
      },
    );
    expect(parsed.truncated).toBe(true);
    const text = stored(store, `${PREFIX}body.txt`);
    expect(text.length).toBe(5000);
    expect(parsed.text?.size).toBe(5000);
    expect(body.startsWith(text.toString())).toBe(true);
  });
});

describe("parseMessage headers", () => {
  it("maps headers to schema v1: addresses, ids, list, auto-submitted, auth results", async () => {
    const raw = Buffer.from(
      [
        "Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=example.com;",
        " dkim=fail (bad sig) header.d=example.com; dmarc=pass",
        "Authentication-Results: forged.example; spf=fail; dkim=pass",
        'From: "Doe, Jane" <jane@example.com>',
        "To: team: a@example.com, B <b@example.com>;, c@example.com",
        "Cc: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>",
        "Reply-To: replies@example.com",
        "Subject: =?utf-8?b?SGVsbG8g8J+YgA==?=",
        "Date: Tue, 1 Jul 2003 10:52:37 +0200",
        "Message-ID: <m1@example.com>",
        "In-Reply-To: <m0@example.com>",
        "References: <r1@example.com>",
        "  <m0@example.com>",
        "List-Id: Support list <support.example.com>",
        "Auto-Submitted: Auto-Replied (vacation)",
        "",
        "body",
      ].join(CRLF),
    );
    const parsed = await parseMessage(Readable.from([raw]), new MemoryObjectStore(), PREFIX);
    expect(parsed.headers).toEqual({
      messageId: "<m1@example.com>",
      date: "2003-07-01T08:52:37.000Z",
      subject: "Hello 😀",
      from: [{ name: "Doe, Jane", address: "jane@example.com" }],
      to: [
        { address: "a@example.com" },
        { name: "B", address: "b@example.com" },
        { address: "c@example.com" },
      ],
      cc: [{ name: "Jörg", address: "jorg@example.com" }],
      replyTo: [{ address: "replies@example.com" }],
      inReplyTo: "<m0@example.com>",
      references: ["<r1@example.com>", "<m0@example.com>"],
      listId: "support.example.com",
      autoSubmitted: "auto-replied",
    });
    expect(parsed.authResults).toEqual({ spf: "pass", dkim: "fail", dmarc: "pass" });
  });

  it("reports an unparseable Date as null instead of the current time", async () => {
    const parsed = await parseMessage(
      Readable.from([plainMessage("x", ["Date: not a date at all"])]),
      new MemoryObjectStore(),
      PREFIX,
    );
    expect(parsed.headers.date).toBeNull();
    expect(parsed.headers.messageId).toBeNull();
    expect(parsed.authResults).toBeUndefined();
  });
});

describe("parseMessage streaming guarantees", () => {
  it("does not read the source ahead while the store is blocked (backpressure)", async () => {
    const attachment = Buffer.alloc(57 * 1000 * 600, 0x5a); // ~34 MB decoded
    const encoded = Buffer.from(`${base64Lines(attachment)}${CRLF}`);
    const raw = multipartMessage([
      {
        headers: ["Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64"],
        body: encoded,
      },
    ]);
    let open = false;
    let unblock: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      unblock = resolve;
    });
    const store = new MemoryObjectStore({
      keepBytes: false,
      beforeChunk: async () => {
        if (!open) await gate;
      },
    });
    const source = countingSource(() => pieces(raw, 64 * 1024));
    const parsing = parseMessage(source.stream, store, PREFIX);

    let last = -1;
    while (source.pulled() !== last) {
      last = source.pulled();
      await sleep(100);
    }
    // Pipeline buffers (parser, splitter, decoder, hasher) hold well under 4 MiB of 45 MB.
    expect(source.pulled()).toBeLessThan(4 * 1024 * 1024);
    expect(source.ended()).toBe(false);

    open = true;
    unblock();
    const parsed = await parsing;
    expect(source.ended()).toBe(true);
    expect(parsed.attachments[0]?.sha256).toBe(sha256(attachment));
  });

  it("keeps memory bounded for a 300 MB message whose bulk is an attachment", async () => {
    const line = Buffer.from(base64Lines(Buffer.alloc(57 * 1000, 7)) + CRLF);
    const lines = Math.ceil((300 * 1024 * 1024) / line.length);
    function* message(): Generator<Buffer> {
      yield Buffer.from(
        [
          "From: a@example.com",
          "Content-Type: multipart/mixed; boundary=XX",
          "",
          "--XX",
          "Content-Type: application/octet-stream",
          "Content-Transfer-Encoding: base64",
          "",
          "",
        ].join(CRLF),
      );
      for (let i = 0; i < lines; i++) yield line;
      yield Buffer.from(`--XX--${CRLF}`);
    }
    const store = new MemoryObjectStore({ keepBytes: false });
    const source = countingSource(message);
    const before = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
    }, 10);
    const parsed = await parseMessage(source.stream, store, PREFIX).finally(() =>
      clearInterval(sampler),
    );
    expect(source.pulled()).toBeGreaterThan(300 * 1024 * 1024);
    expect(parsed.attachments[0]?.size).toBe(lines * 57 * 1000);
    expect(peak).toBeLessThan(64 * 1024 * 1024);
  });

  it("rejects with STORE_FAILED when the store fails, after reading the whole source", async () => {
    const raw = multipartMessage([
      { headers: ["Content-Type: application/pdf"], body: "x".repeat(100_000) },
      { headers: ["Content-Type: application/pdf"], body: "y".repeat(100_000) },
    ]);
    const store = new MemoryObjectStore({ failKey: (key) => key.includes("/attachments/0000") });
    const source = countingSource(() => pieces(raw, 1024));
    const error = await parseMessage(source.stream, store, PREFIX).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isMailIngestError(error, "STORE_FAILED")).toBe(true);
    expect(source.ended()).toBe(true);
  });

  it("rejects with the source's error when the source breaks mid-attachment, storing no partial object", async () => {
    const head = multipartMessage([
      { headers: ["Content-Type: application/pdf"], body: "z".repeat(300_000) },
    ]).subarray(0, 200_000);
    const source = new Readable({
      read() {
        this.push(head);
        this.destroy(new Error("connection reset"));
      },
    });
    const store = new MemoryObjectStore();
    await expect(parseMessage(source, store, PREFIX)).rejects.toThrow("connection reset");
    expect(store.objects.size).toBe(0);
  });
});
