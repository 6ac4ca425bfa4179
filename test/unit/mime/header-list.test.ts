import { describe, expect, it } from "vitest";
import { decodeWords, headerList } from "../../../lambdas/mime/header-list.ts";

/** A raw line as mailsplit gives it: UTF-8 bytes read as latin1. */
const raw = (line: string) => ({
  key: line.slice(0, line.indexOf(":")).toLowerCase(),
  line: Buffer.from(line, "utf8").toString("latin1"),
});

describe("decodeWords (RFC 2047)", () => {
  it.each([
    ["B and Q words", "=?utf-8?B?R3LDvMOfZQ==?= =?UTF-8?Q?aus_K=C3=B6ln?=", "Grüßeaus Köln"],
    ["text around a word", "Re: =?iso-8859-1?q?J=F6rg?= here", "Re: Jörg here"],
    // §6.2: whitespace between adjacent encoded-words is not displayed.
    ["folded adjacent words", "=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"],
    // A UTF-8 character split across two words still decodes.
    ["a character split across words", "=?utf-8?B?w7w=?==?utf-8?q?=C3?==?utf-8?q?=BC?=", "üü"],
    ["an RFC 2231 language suffix", "=?utf-8*de?q?Gr=C3=BC=C3=9Fe?=", "Grüße"],
    ["Shift_JIS", "=?shift_jis?B?g2WDWINn?=", "テスト"],
    ["ISO-2022-JP", "=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=", "テスト"],
    ["an unknown charset, left as it is", "=?x-unknown?q?abc?=", "=?x-unknown?q?abc?="],
    ["no encoded-word", "plain text", "plain text"],
  ])("decodes %s", (_name, input, output) => {
    expect(decodeWords(input)).toBe(output);
  });
});

describe("decodeWords on hostile input", () => {
  // Encoded-word starts with no "?=" anywhere after them: a pattern whose text part may run past
  // a "?" (e.g. `(.*?)\?=`) rescans to the end from every start, quadratic on 1 MB (minutes, which
  // the test timeout catches); the pattern's runs stop at the next "?", so this stays linear.
  it.each([
    ["=?x?q?a".repeat(150_000)],
    ["=?x".repeat(350_000)],
    [`=?utf-8?q?${"a".repeat(1_000_000)}`],
  ])("leaves a 1 MB near-miss value as it is", (value) => {
    expect(decodeWords(value)).toBe(value);
  });
});

describe("headerList", () => {
  it("keeps raw UTF-8 (RFC 6532), and latin1 bytes that are not UTF-8 as they are", () => {
    const latin1 = { key: "x-old", line: "X-Old: caf\u00e9" };
    expect(headerList([raw("Subject: Grüße"), latin1]).fields).toEqual([
      { name: "Subject", value: "Grüße" },
      { name: "X-Old", value: "café" },
    ]);
  });

  it("skips a line without a field name", () => {
    expect(headerList([{ key: "", line: "no colon here" }, raw("A: 1")]).fields).toEqual([
      { name: "A", value: "1" },
    ]);
  });

  it("stops before the field that would pass the bound", () => {
    const list = headerList([raw("A: 12"), raw("B: 34"), raw("C: 5")], 4);
    expect(list).toEqual({ fields: [{ name: "A", value: "12" }], truncated: true });
    expect(headerList([raw("A: 12"), raw("B: 34")], 6).truncated).toBe(false);
  });
});
