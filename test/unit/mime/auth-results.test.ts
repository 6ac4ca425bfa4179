import { describe, expect, it } from "vitest";
import { parseAuthResults, parseAuthResultsHeader } from "../../../lambdas/mime/auth-results.ts";

describe("parseAuthResultsHeader", () => {
  it("reads authserv-id and method=result pairs, skipping properties, reasons and comments", () => {
    expect(
      parseAuthResultsHeader(
        "mx.example.com 1; (first) spf=pass (sender SPF authorized) smtp.mailfrom=example.org;\r\n" +
          '\tdkim/1=FAIL reason="bad; sig" header.d=example.org header.b="abc=";' +
          " dmarc = pass (p=none) header.from=example.org",
      ),
    ).toEqual({
      authservId: "mx.example.com",
      results: [
        { method: "spf", result: "pass" },
        { method: "dkim", result: "fail" },
        { method: "dmarc", result: "pass" },
      ],
    });
  });

  it("treats the RFC 8601 no-result form as having no results", () => {
    expect(parseAuthResultsHeader("example.org 1; none")).toEqual({
      authservId: "example.org",
      results: [],
    });
  });

  it("accepts a quoted authserv-id and nested comments", () => {
    expect(parseAuthResultsHeader('"mx (x)" (a (b) c); spf=neutral')).toEqual({
      authservId: "mx (x)",
      results: [{ method: "spf", result: "neutral" }],
    });
  });

  it("returns null without an authserv-id", () => {
    expect(parseAuthResultsHeader("  (only a comment)")).toBeNull();
    expect(parseAuthResultsHeader("; spf=pass")).toBeNull();
  });
});

describe("parseAuthResults", () => {
  it("keeps the first result per method across headers, topmost first", () => {
    expect(
      parseAuthResults([
        "mx.example.com; spf=softfail; dkim=pass header.d=a.example; dkim=fail header.d=b.example",
        "forged.example; spf=pass; dkim=fail; dmarc=fail",
      ]),
    ).toEqual({ spf: "softfail", dkim: "pass", dmarc: "fail" });
  });

  it("ignores unknown methods and result keywords", () => {
    expect(
      parseAuthResults(["mx; spf=bogus; arc=pass; iprev=pass; spf=hardfail; spf=permerror"]),
    ).toEqual({
      spf: "permerror",
    });
    expect(parseAuthResults(["mx; arc=pass"])).toBeUndefined();
    expect(parseAuthResults([])).toBeUndefined();
  });

  it("reads only trusted authserv-ids when given", () => {
    expect(
      parseAuthResults(["evil.example; spf=pass", "MX.example.com; spf=fail"], {
        trustedAuthservIds: ["mx.example.com"],
      }),
    ).toEqual({ spf: "fail" });
  });

  it("survives unterminated comments, quotes and escapes", () => {
    expect(parseAuthResults(["mx; spf=pass (unterminated \\) comment; dkim=pass"])).toEqual({
      spf: "pass",
    });
    expect(parseAuthResults(['mx; spf="pass'])).toEqual({ spf: "pass" });
    expect(parseAuthResults(["mx; spf=pass \\"])).toEqual({ spf: "pass" });
  });

  it("parses hostile input in linear time", () => {
    const hostile = (n: number): string[] => [
      `mx; ${"(".repeat(n)}`,
      `mx; ${'"\\'.repeat(n)}`,
      `mx${"; spf=".repeat(n)}`,
      `mx ${"a=b/c.d ".repeat(n)}`,
      `mx${";".repeat(n)}dkim=pass`,
    ];
    // Best of 5 runs, so a garbage collection pause does not pass for superlinear work.
    const time = (n: number): number => {
      const input = hostile(n);
      let best = Number.POSITIVE_INFINITY;
      for (let run = 0; run < 5; run++) {
        const started = performance.now();
        parseAuthResults(input);
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    time(20_000);
    // Quadratic work would take ~16x longer at 4n; linear stays near 4x.
    const small = Math.max(time(50_000), 1);
    const large = time(200_000);
    expect(large / small).toBeLessThan(12);
  });
});
