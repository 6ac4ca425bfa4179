import { describe, expect, it } from "vitest";
import {
  FALLBACK_FILENAME,
  MAX_FILENAME_LENGTH,
  sanitizeFilename,
} from "../../../lambdas/mime/filename.ts";

describe("sanitizeFilename", () => {
  it.each([
    ["report.pdf", "report.pdf"],
    ["../../etc/passwd", "passwd"],
    ["C:\\Users\\x\\evil.exe", "evil.exe"],
    ["dir/", "dir"],
    ["a..b", "a.b"],
    ["...", FALLBACK_FILENAME],
    [".bashrc", "bashrc"],
    ["name.", "name"],
    ["nul\0byte\x7f.txt", "nul_byte_.txt"],
    ["résumé final.docx", "resume_final.docx"],
    ["日本語.pdf", "attachment.pdf"],
    ["", FALLBACK_FILENAME],
    ["   ", FALLBACK_FILENAME],
    [null, FALLBACK_FILENAME],
    [undefined, FALLBACK_FILENAME],
  ])("maps %j to %j", (input, expected) => {
    expect(sanitizeFilename(input)).toBe(expected);
  });

  it("caps long names at MAX_FILENAME_LENGTH, keeping the extension", () => {
    const name = sanitizeFilename(`${"x".repeat(5000)}.tar.gz`);
    expect(name).toHaveLength(MAX_FILENAME_LENGTH);
    expect(name.endsWith(".gz")).toBe(true);
  });

  it("only ever yields the safe charset, without dot segments", () => {
    for (let code = 0; code < 0x250; code++) {
      const name = sanitizeFilename(`a${String.fromCharCode(code)}${String.fromCharCode(code)}b`);
      expect(name).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/);
      expect(name).not.toContain("..");
    }
  });

  it("runs in linear time on long runs of trimmed characters", () => {
    const time = (n: number): number => {
      const input = `a${"_".repeat(n)}.${"_".repeat(n)}`;
      const started = performance.now();
      sanitizeFilename(input);
      return performance.now() - started;
    };
    time(10_000);
    // A quadratic trim takes ~16x longer at 4n; linear work stays near 4x.
    const small = Math.max(time(250_000), 1);
    const large = time(1_000_000);
    expect(large / small).toBeLessThan(12);
  });
});
