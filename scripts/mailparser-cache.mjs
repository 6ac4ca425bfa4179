#!/usr/bin/env node
/**
 * Makes the V8 code cache of the CLI's vendored mailparser (`dist/cli/mailparser.cjs`, see
 * lambdas/mime/mailparser-loader.ts), run by scripts/build.mjs in a fresh Node after tsc: V8
 * accepts a cache only under the flags it was made with, and a plain `node` is how the CLI runs.
 *
 * The bundle is loaded and then parses a few sample messages through the project's own
 * parseMessage before the cache is taken, so the cache holds the bytecode of the functions a
 * parse runs (V8 compiles a function on its first call), not only of the modules' top levels.
 *
 * Usage: node scripts/mailparser-cache.mjs <dist>/cli/mailparser.cjs
 */
import { writeFileSync } from "node:fs";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

const DIST = fileURLToPath(new URL("../dist/", import.meta.url));
const file = process.argv[2];
if (!file) throw new Error("usage: mailparser-cache.mjs <bundle file>");

const { loadVendored, CODE_CACHE_SUFFIX } = await import(`${DIST}lambdas/util/vendored.js`);
const { useMailparser } = await import(`${DIST}lambdas/mime/mailparser-loader.js`);
const { parseMessage } = await import(`${DIST}lambdas/mime/parse.js`);

const vendored = loadVendored(file);
if (!vendored) throw new Error(`no mailparser bundle at ${file}`);
useMailparser(vendored.module);

/** Holds what a parse stores, in memory: nested.ts reads an attached message back to open it. */
const objects = new Map();
const store = {
  async put(key, body) {
    const chunks = [];
    if (body instanceof Readable) for await (const chunk of body) chunks.push(chunk);
    else chunks.push(body);
    objects.set(key, Buffer.concat(chunks));
    return {};
  },
  async get(key) {
    const bytes = objects.get(key);
    return bytes === undefined ? null : Readable.from([bytes]);
  },
  async head(key) {
    const bytes = objects.get(key);
    return bytes === undefined ? null : { size: bytes.length };
  },
  async delete(key) {
    objects.delete(key);
  },
  async *list(prefix) {
    for (const key of objects.keys()) if (key.startsWith(prefix)) yield key;
  },
  uri: (key) => `memory:${key}`,
};

const crlf = (lines) => Buffer.from(`${lines.join("\r\n")}\r\n`, "latin1");
const base64 = (text) => Buffer.from(text).toString("base64");
/** The shapes of the bench corpus and of common mail: plain, HTML, alternative, attachments. */
const samples = [
  crlf([
    "From: Alice Example <alice@example.com>",
    'To: bob@example.org, "Carol" <carol@example.net>',
    "Subject: =?utf-8?q?Caf=C3=A9_report?=",
    "Date: Mon, 30 Nov 2026 10:00:00 +0000",
    "Message-ID: <warm-1@example.com>",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Hello=2C caf=C3=A9 at https://example.com/a?b=3Dc",
    "-- ",
    "Alice",
  ]),
  crlf([
    "From: =?iso-8859-1?b?Sm9zw6k=?= <jose@example.com>",
    "To: team@example.org",
    "Subject: =?iso-8859-1?q?R=E9sum=E9?=",
    "Date: Tue, 01 Dec 2026 08:30:00 -0500",
    "In-Reply-To: <warm-1@example.com>",
    "References: <warm-1@example.com>",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="outer"',
    "",
    "--outer",
    'Content-Type: multipart/alternative; boundary="alt"',
    "",
    "--alt",
    "Content-Type: text/plain; charset=iso-8859-1",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "R=E9sum=E9 attached.",
    "--alt",
    "Content-Type: text/html; charset=utf-8",
    "",
    "<html><body><p>R&eacute;sum&eacute; <b>attached</b>.</p><ul><li>one</li></ul></body></html>",
    "--alt--",
    "--outer",
    'Content-Type: application/pdf; name="cv.pdf"',
    'Content-Disposition: attachment; filename="cv.pdf"',
    "Content-Transfer-Encoding: base64",
    "",
    base64("%PDF-1.4 warm-up attachment bytes ".repeat(40)).replace(/.{76}/g, "$&\r\n"),
    "--outer",
    "Content-Type: message/rfc822",
    "",
    "From: inner@example.com",
    "Subject: inner",
    "Content-Type: text/plain",
    "",
    "inner body",
    "--outer--",
  ]),
  crlf([
    "From: news@example.com",
    "To: reader@example.org",
    "Subject: HTML only",
    "MIME-Version: 1.0",
    "Content-Type: text/html; charset=windows-1252",
    "Content-Transfer-Encoding: base64",
    "",
    base64("<div><h1>News</h1><table><tr><td>a</td></tr></table><a href='x'>link</a></div>"),
  ]),
];

// Several rounds: V8 compiles some functions lazily only once they run again.
for (let round = 0; round < 3; round++) {
  for (const [i, sample] of samples.entries()) {
    await parseMessage(Readable.from([sample]), store, `warm/${round}/${i}`);
  }
}
writeFileSync(`${file}${CODE_CACHE_SUFFIX}`, vendored.script.createCachedData());
