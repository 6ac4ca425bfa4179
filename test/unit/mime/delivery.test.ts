import { describe, expect, it } from "vitest";
import { deliveredTo, type SpamHeaders, spamVerdict } from "../../../lambdas/mime/delivery.ts";

describe("deliveredTo", () => {
  it("keeps header order, splits Exim's lists, strips angle brackets, dedupes ignoring case", () => {
    expect(
      deliveredTo([
        "<Alias@Example.com>",
        "alias@example.com",
        "catchall@example.com, other@example.com",
        " , ",
        "not an address",
      ]),
    ).toEqual(["Alias@Example.com", "catchall@example.com", "other@example.com"]);
  });

  it("keeps at most 100 addresses from a hostile header block", () => {
    const values = Array.from({ length: 500 }, (_, i) => `a${i}@example.com`);
    expect(deliveredTo(values)).toEqual(values.slice(0, 100));
  });
});

describe("spamVerdict", () => {
  it.each<[string, SpamHeaders, unknown]>([
    ["none of the headers", {}, undefined],
    [
      "SpamAssassin's status line",
      { "x-spam-status": "Yes, score=7.3 required=5.0 tests=BAYES_99 autolearn=no" },
      { flag: true, score: 7.3 },
    ],
    [
      "an old SpamAssassin hits= status",
      { "x-spam-status": "No, hits=-2.6 required=5.0" },
      { flag: false, score: -2.6 },
    ],
    [
      "the X-Spam-Flag and X-Spam-Score fallbacks",
      { "x-spam-flag": "YES", "x-spam-score": "12.5" },
      { flag: true, score: 12.5 },
    ],
    [
      "a status that wins over its fallbacks",
      { "x-spam-status": "No, score=1.0", "x-spam-flag": "YES", "x-spam-score": "9" },
      { flag: false, score: 1 },
    ],
    ["Exchange's SCL", { "x-ms-exchange-organization-scl": "-1" }, { scl: -1 }],
    [
      "unreadable values (present, so the verdict is empty rather than absent)",
      { "x-spam-score": "lots", "x-ms-exchange-organization-scl": "12" },
      {},
    ],
  ])("reads %s", (_name, headers, verdict) => {
    expect(spamVerdict(headers)).toEqual(verdict);
  });
});
