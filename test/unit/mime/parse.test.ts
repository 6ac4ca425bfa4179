import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { isMailIngestError } from "../../../lambdas/errors.ts";
import { parseMessage, preview, utf8Chunks } from "../../../lambdas/mime/parse.ts";
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
    expect(parsed.text?.content).toBe("body after attachments");
    expect([...store.objects.keys()].filter((k) => k.includes("/attachments/"))).toHaveLength(2);
  });
});

describe("parseMessage bodies", () => {
  it("carries small text and html bodies inline, with UTF-8 sizes and declared charsets, storing no object", async () => {
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
    expect(parsed.text).toEqual({
      size: Buffer.byteLength("Grüße"),
      charset: "utf-8",
      content: "Grüße",
    });
    expect(parsed.html).toEqual({
      size: Buffer.byteLength("<p>Grüße</p>"),
      charset: "iso-8859-1",
      content: "<p>Grüße</p>",
    });
    expect(store.putKeys).toEqual([]);
    expect(parsed.textPreview).toBe("Grüße");
  });

  // The threshold counts UTF-8 bytes after decoding: "é" is 2 bytes, so 32768 of them are exactly
  // 64 KiB, though the quoted-printable source is three times that.
  it.each([
    ["exactly 64 KiB", 32 * 1024, "inline"],
    ["64 KiB + 1 byte", 32 * 1024 + 1, "stored"],
  ])("carries a %s body %s", async (_name, count, where) => {
    const body = `${"é".repeat(32 * 1024)}${"x".repeat(count - 32 * 1024)}`;
    const raw = Buffer.from(
      [
        "From: a@example.com",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        quotedPrintable(Buffer.from(body, "utf8")),
      ].join(CRLF),
    );
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(Readable.from(pieces(raw, 4096)), store, PREFIX);
    const size = Buffer.byteLength(body);
    if (where === "inline") {
      expect(size).toBe(64 * 1024);
      expect(parsed.text).toEqual({ size, charset: "utf-8", content: body });
      expect(store.putKeys).toEqual([]);
    } else {
      expect(parsed.text).toEqual({ size, charset: "utf-8", ref: `${PREFIX}body.txt` });
      expect(stored(store, `${PREFIX}body.txt`).toString("utf8")).toBe(body);
    }
  });

  it("stores a large HTML body while the small text beside it stays inline", async () => {
    const html = `<p>${"<b>big</b> ".repeat(8000)}</p>`;
    const raw = Buffer.from(
      [
        "From: a@example.com",
        'Content-Type: multipart/alternative; boundary="alt"',
        "",
        "--alt",
        "Content-Type: text/plain",
        "",
        "short",
        "--alt",
        "Content-Type: text/html; charset=UTF-8",
        "",
        html,
        "--alt--",
        "",
      ].join(CRLF),
    );
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(Readable.from([raw]), store, PREFIX);
    expect(parsed.text).toEqual({ size: 5, content: "short" });
    expect(parsed.html).toEqual({
      size: Buffer.byteLength(html),
      charset: "utf-8",
      ref: `${PREFIX}body.html`,
    });
    expect(store.putKeys).toEqual([`${PREFIX}body.html`]);
    expect(stored(store, `${PREFIX}body.html`).toString("utf8")).toBe(html);
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
    const body = "0123456789".repeat(20_000);
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(
      Readable.from(pieces(plainMessage(body), 1000)),
      store,
      PREFIX,
      {
        maxTextBytes: 100_000,
      },
    );
    expect(parsed.truncated).toBe(true);
    const text = stored(store, `${PREFIX}body.txt`);
    expect(text.length).toBe(100_000);
    expect(parsed.text?.size).toBe(100_000);
    expect(body.startsWith(text.toString())).toBe(true);
  });
});

describe("parseMessage headers", () => {
  it("maps headers to schema v2: addresses, ids, list, auto-submitted, auth results", async () => {
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
      deliveredTo: [],
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

/** A message whose root is `contentType` with the given body lines (RFC 8551 / RFC 3156 shapes). */
function rooted(contentType: string, body: readonly string[]): Buffer {
  return Buffer.from(
    [
      "From: a@example.com",
      "To: b@example.com",
      "Subject: secure",
      "MIME-Version: 1.0",
      `Content-Type: ${contentType}`,
      "",
      ...body,
      "",
    ].join(CRLF),
  );
}

const SIGNED_TEXT = ["Content-Type: text/plain", "", "signed text"];

describe("parseMessage security", () => {
  it.each<[string, Buffer, unknown]>([
    [
      "S/MIME detached signature (multipart/signed, pkcs7-signature)",
      rooted(
        'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="s"',
        [
          "--s",
          ...SIGNED_TEXT,
          "--s",
          'Content-Type: application/pkcs7-signature; name="smime.p7s"',
          "Content-Transfer-Encoding: base64",
          'Content-Disposition: attachment; filename="smime.p7s"',
          "",
          "MIIGzAYJKoZIhvcNAQcCoIIGvTCCBrkCAQExDTALBglghkgBZQMEAgEwCwYJKoZI",
          "--s--",
        ],
      ),
      { signed: "smime" },
    ],
    [
      "S/MIME detached signature with the x- protocol of RFC 2311",
      rooted('multipart/signed; protocol="application/x-pkcs7-signature"; boundary="s"', [
        "--s",
        ...SIGNED_TEXT,
        "--s",
        "Content-Type: application/x-pkcs7-signature",
        "",
        "sig",
        "--s--",
      ]),
      { signed: "smime" },
    ],
    [
      "S/MIME opaque signature (pkcs7-mime signed-data)",
      rooted('application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"', [
        "MIIGzAYJKoZIhvcNAQcCoIIGvTCCBrkCAQExDTALBglghkgBZQMEAgEwCwYJKoZI",
      ]),
      { signed: "smime" },
    ],
    [
      "S/MIME encryption (pkcs7-mime enveloped-data)",
      rooted('application/pkcs7-mime; smime-type="enveloped-data"; name=smime.p7m', [
        "MIIBhgYJKoZIhvcNAQcDoIIBdzCCAXMCAQAxggEuMIIBKgIBADASMA0xCzAJBgNV",
      ]),
      { encrypted: "smime" },
    ],
    [
      "PGP/MIME signature",
      rooted(
        'multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="p"',
        [
          "--p",
          ...SIGNED_TEXT,
          "--p",
          'Content-Type: application/pgp-signature; name="signature.asc"',
          "",
          "-----BEGIN PGP SIGNATURE-----",
          "iHUEARYIAB0WIQQ=",
          "-----END PGP SIGNATURE-----",
          "--p--",
        ],
      ),
      { signed: "pgp" },
    ],
    [
      "PGP/MIME encryption",
      rooted('multipart/encrypted; protocol="application/pgp-encrypted"; boundary="e"', [
        "--e",
        "Content-Type: application/pgp-encrypted",
        "",
        "Version: 1",
        "--e",
        'Content-Type: application/octet-stream; name="encrypted.asc"',
        "",
        "-----BEGIN PGP MESSAGE-----",
        "hF4DAAAAAAAAAAASAQdA",
        "-----END PGP MESSAGE-----",
        "--e--",
      ]),
      { encrypted: "pgp" },
    ],
    [
      "a signature inside an encryption (both layers)",
      rooted('multipart/encrypted; protocol="application/pgp-encrypted"; boundary="e"', [
        "--e",
        'Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary="p"',
        "",
        "--p",
        ...SIGNED_TEXT,
        "--p",
        "Content-Type: application/pgp-signature",
        "",
        "sig",
        "--p--",
        "--e--",
      ]),
      { signed: "pgp", encrypted: "pgp" },
    ],
  ])("detects %s", async (_name, raw, security) => {
    const parsed = await parseMessage(Readable.from([raw]), new MemoryObjectStore(), PREFIX);
    expect(parsed.parseError).toBeUndefined();
    expect(parsed.security).toEqual(security);
  });

  it("stores encrypted content as it is, never decrypted", async () => {
    const ciphertext = randomBytes(3000);
    const raw = rooted('application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"', []);
    const withBody = Buffer.concat([
      Buffer.from(
        raw
          .toString("latin1")
          .replace(
            "Content-Type: application/pkcs7-mime",
            "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\nContent-Type: application/pkcs7-mime",
          ),
        "latin1",
      ),
      Buffer.from(base64Lines(ciphertext)),
    ]);
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(Readable.from([withBody]), store, PREFIX);
    expect(parsed.security).toEqual({ encrypted: "smime" });
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]?.sha256).toBe(sha256(ciphertext));
    expect(sha256(stored(store, parsed.attachments[0]?.ref ?? ""))).toBe(sha256(ciphertext));
  });

  it.each<[string, Buffer]>([
    ["a plain message", plainMessage("hello")],
    [
      "multipart/signed with an unknown protocol",
      rooted('multipart/signed; protocol="application/x-unknown"; boundary="s"', [
        "--s",
        ...SIGNED_TEXT,
        "--s--",
      ]),
    ],
    ["pkcs7-mime certs-only", rooted("application/pkcs7-mime; smime-type=certs-only", ["MIIB"])],
    [
      // Inline, so the parser walks into the forwarded message's own parts.
      "a signed message forwarded inline (it describes that message, not this one)",
      multipartMessage([
        { headers: ["Content-Type: text/plain"], body: "see the forwarded mail" },
        {
          headers: ["Content-Type: message/rfc822", "Content-Disposition: inline"],
          body: rooted('multipart/signed; protocol="application/pgp-signature"; boundary="p"', [
            "--p",
            ...SIGNED_TEXT,
            "--p",
            "Content-Type: application/pgp-signature",
            "",
            "sig",
            "--p--",
          ]),
        },
      ]),
    ],
  ])("reports no security for %s", async (_name, raw) => {
    const parsed = await parseMessage(Readable.from([raw]), new MemoryObjectStore(), PREFIX);
    expect(parsed.security).toBeUndefined();
  });
});

describe("parseMessage delivery facts and header list", () => {
  const HEADERS = [
    "Return-Path: <sender@example.com>",
    "Delivered-To: Support@Example.com",
    "X-Original-To: help@example.com",
    "Envelope-To: support@example.com, catchall@example.com",
    "Received: from mx.example.net (mx.example.net [192.0.2.1])",
    "\tby mail.example.com with ESMTPS id abc;",
    "\tTue, 1 Jul 2003 10:52:40 +0200",
    "X-Spam-Status: Yes, score=7.3 required=5.0 tests=BAYES_99,",
    "\tHTML_MESSAGE autolearn=no version=3.4.6",
    "X-Spam-Flag: NO",
    "X-MS-Exchange-Organization-SCL: 5",
    "Delivered-To: support@example.com",
    "From: =?iso-8859-1?q?J=F6rg?= <jorg@example.com>",
    "To: support@example.com",
    "Subject: =?utf-8?b?R3LDvMOfZQ==?= =?utf-8?b?IGF1cyBLw7Zsbg==?=",
    "X-Custom-Rule: Ünïcode raw",
    "MIME-Version: 1.0",
    'Content-Type: text/plain; charset="utf-8"',
  ];

  it("reads deliveredTo topmost first and deduplicated, spam verdicts, and every header in order", async () => {
    const raw = Buffer.from([...HEADERS, "", "body"].join(CRLF), "utf8");
    const parsed = await parseMessage(Readable.from([raw]), new MemoryObjectStore(), PREFIX);
    expect(parsed.headers.deliveredTo).toEqual([
      "Support@Example.com",
      "help@example.com",
      "catchall@example.com",
    ]);
    // X-Spam-Status wins over the contradicting X-Spam-Flag fallback.
    expect(parsed.spam).toEqual({ flag: true, score: 7.3, scl: 5 });
    expect(parsed.headerList).toEqual([
      { name: "Return-Path", value: "<sender@example.com>" },
      { name: "Delivered-To", value: "Support@Example.com" },
      { name: "X-Original-To", value: "help@example.com" },
      { name: "Envelope-To", value: "support@example.com, catchall@example.com" },
      {
        name: "Received",
        value:
          "from mx.example.net (mx.example.net [192.0.2.1])\tby mail.example.com with ESMTPS id abc;\tTue, 1 Jul 2003 10:52:40 +0200",
      },
      {
        name: "X-Spam-Status",
        value:
          "Yes, score=7.3 required=5.0 tests=BAYES_99,\tHTML_MESSAGE autolearn=no version=3.4.6",
      },
      { name: "X-Spam-Flag", value: "NO" },
      { name: "X-MS-Exchange-Organization-SCL", value: "5" },
      { name: "Delivered-To", value: "support@example.com" },
      { name: "From", value: "Jörg <jorg@example.com>" },
      { name: "To", value: "support@example.com" },
      { name: "Subject", value: "Grüße aus Köln" },
      { name: "X-Custom-Rule", value: "Ünïcode raw" },
      { name: "MIME-Version", value: "1.0" },
      { name: "Content-Type", value: 'text/plain; charset="utf-8"' },
    ]);
    expect(parsed.headerListTruncated).toBeUndefined();
  });

  it("leaves spam out and deliveredTo empty when the message has none of those headers", async () => {
    const parsed = await parseMessage(
      Readable.from([plainMessage("x")]),
      new MemoryObjectStore(),
      PREFIX,
    );
    expect(parsed.spam).toBeUndefined();
    expect(parsed.headers.deliveredTo).toEqual([]);
    expect(parsed.headerList.map((h) => h.name)).toEqual([
      "From",
      "To",
      "Subject",
      "Content-Type",
      "Content-Transfer-Encoding",
    ]);
  });

  it("stops headerList at 64 KiB of names and values, whole fields only, and flags it", async () => {
    // 40 fields of ~2 KiB each: ~80 KiB, so the list must stop part way.
    const big = Array.from({ length: 40 }, (_, i) => `X-Filler-${i}: ${"v".repeat(2000)}`);
    const raw = Buffer.from([...big, "From: a@example.com", "", "body"].join(CRLF));
    const parsed = await parseMessage(Readable.from([raw]), new MemoryObjectStore(), PREFIX);
    expect(parsed.headerListTruncated).toBe(true);
    const bytes = parsed.headerList.reduce(
      (sum, h) => sum + Buffer.byteLength(h.name) + Buffer.byteLength(h.value),
      0,
    );
    expect(bytes).toBeLessThanOrEqual(64 * 1024);
    expect(bytes + 2011).toBeGreaterThan(64 * 1024);
    expect(parsed.headerList.map((h) => h.name)).toEqual(
      big.slice(0, parsed.headerList.length).map((line) => line.slice(0, line.indexOf(":"))),
    );
    expect(parsed.headerList.every((h) => h.value === "v".repeat(2000))).toBe(true);
    // The fields themselves still parse: the bound applies to the list only.
    expect(parsed.headers.from).toEqual([{ address: "a@example.com" }]);
  });
});

describe("utf8Chunks", () => {
  it("never splits a surrogate pair across chunks, so a stored body decodes whole", () => {
    // An emoji straddling the 64 Ki-character chunk border.
    const text = `${"a".repeat(64 * 1024 - 1)}😀${"b".repeat(10)}`;
    const chunks = [...utf8Chunks(text)];
    expect(chunks.length).toBe(2);
    expect(chunks.every((c) => !c.toString("utf8").includes("\uFFFD"))).toBe(true);
    expect(Buffer.concat(chunks).toString("utf8")).toBe(text);
  });
});
