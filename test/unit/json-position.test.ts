import { describe, expect, it } from "vitest";
import {
  describePosition,
  jsonErrorOffset,
  parseJsonOrPosition,
} from "../../lambdas/json-position.ts";

describe("jsonErrorOffset", () => {
  it.each([
    ['{"a": [1, 2.5e3, true, null, "x\\u00e9\\n"]}', undefined],
    ["  7 ", undefined],
    ['{"a":1,}', 7],
    ['{"password":Hunter2}', 12],
    ["[1 2]", 3],
    ['{"a" 1}', 5],
    ['"tab\there"', 4],
    ['"\\x"', 2],
    ["01", 1],
    ['{"a":1}x', 7],
    ['{"a":', 5],
    ['"open', 5],
    ["", 0],
  ])("%j → %s", (text, offset) => {
    expect(jsonErrorOffset(text)).toBe(offset);
  });

  it("agrees with JSON.parse on which texts are valid", () => {
    const pieces = ["{", "}", "[", "]", ",", ":", '"k"', "1", "-0.5e2", "true", "nul", " ", "x"];
    // Every text of up to four pieces: 13^4 cases, exhaustive rather than random.
    let texts = [""];
    const all = [""];
    for (let len = 1; len <= 4; len += 1) {
      texts = texts.flatMap((prefix) => pieces.map((piece) => prefix + piece));
      all.push(...texts);
    }
    const disagreements = all.filter((text) => {
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      return (jsonErrorOffset(text) === undefined) !== valid;
    });
    expect(disagreements).toEqual([]);
  });

  it("survives hostile nesting without overflowing the stack", () => {
    expect(jsonErrorOffset("[".repeat(1_000_000))).toBe(1_000_000);
  });
});

describe("parseJsonOrPosition", () => {
  it("gives line and column of the fault and never the text", () => {
    const result = parseJsonOrPosition('{\n  "id": "a",\n  "password": Hunter2\n}');
    expect(result).toEqual({ ok: false, at: { line: 3, column: 15, atEnd: false } });
    if (!result.ok) expect(describePosition(result.at)).toBe("line 3, column 15");
  });

  it("says when the text ends too early", () => {
    const result = parseJsonOrPosition('{"a":\n');
    expect(result.ok).toBe(false);
    if (!result.ok)
      expect(describePosition(result.at)).toBe("unexpected end of input at line 2, column 1");
  });
});
