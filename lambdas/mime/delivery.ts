/**
 * Delivery facts from the top-level header block: which address received the mail
 * (`deliveredTo`) and the spam verdicts filters added on the way in (`spam`).
 */
import type { SpamVerdict } from "./parsed.ts";

/** Header fields naming the envelope recipient at delivery (lower-case names). */
export const DELIVERED_TO_FIELDS: ReadonlySet<string> = new Set([
  "delivered-to", // qmail, Postfix, Dovecot LDA
  "x-original-to", // Postfix: the recipient before alias expansion
  "envelope-to", // Exim: may list several, comma-separated
]);

/** Most addresses kept; a hostile header block cannot make the list grow without bound. */
const MAX_DELIVERED_TO = 100;

/**
 * The addresses in `values` (Delivered-To / X-Original-To / Envelope-To values in header order,
 * so topmost, i.e. latest hop, first), deduplicated ignoring case, first spelling kept.
 */
export function deliveredTo(values: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const value of values) {
    for (const token of value.split(",")) {
      const address = token
        .trim()
        .replace(/^<(.*)>$/, "$1")
        .trim();
      if (address === "" || /\s/.test(address) || address.length > 320) continue;
      const key = address.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(address);
      if (out.length >= MAX_DELIVERED_TO) return out;
    }
  }
  return out;
}

/** The first value of each spam header, lower-case names. */
export interface SpamHeaders {
  "x-spam-status"?: string;
  "x-spam-flag"?: string;
  "x-spam-score"?: string;
  "x-ms-exchange-organization-scl"?: string;
}

const SPAM_FIELDS: ReadonlySet<string> = new Set<keyof SpamHeaders>([
  "x-spam-status",
  "x-spam-flag",
  "x-spam-score",
  "x-ms-exchange-organization-scl",
]);

/** Whether `key` (a lower-case field name) is one of the spam headers read here. */
export function isSpamField(key: string): key is keyof SpamHeaders {
  return SPAM_FIELDS.has(key);
}

/**
 * The spam verdict, or undefined when the message has none of the headers.
 * - SpamAssassin's `X-Spam-Status: Yes, score=7.3 required=5.0 tests=…` gives `flag` and `score`;
 *   `X-Spam-Flag: YES` and `X-Spam-Score: 7.3` fill in what it lacks.
 * - Exchange's `X-MS-Exchange-Organization-SCL` (-1 trusted, 0–9) gives `scl`.
 * A header that is present but unreadable contributes nothing; if none is readable the verdict is
 * still `{}`, so consumers can tell "filtered, no verdict" from "never filtered".
 */
export function spamVerdict(headers: SpamHeaders): SpamVerdict | undefined {
  const status = headers["x-spam-status"];
  const flagHeader = headers["x-spam-flag"];
  const scoreHeader = headers["x-spam-score"];
  const sclHeader = headers["x-ms-exchange-organization-scl"];
  if (
    status === undefined &&
    flagHeader === undefined &&
    scoreHeader === undefined &&
    sclHeader === undefined
  ) {
    return undefined;
  }
  const verdict: SpamVerdict = {};
  if (status !== undefined) {
    const word = /^\s*(yes|no)\b/i.exec(status)?.[1];
    if (word !== undefined) verdict.flag = word.toLowerCase() === "yes";
    const score = /\b(?:score|hits)=(-?\d{1,6}(?:\.\d{1,6})?)/i.exec(status)?.[1];
    if (score !== undefined) verdict.score = Number(score);
  }
  if (verdict.flag === undefined && flagHeader !== undefined) {
    const word = /^\s*(yes|no|true|false)\b/i.exec(flagHeader)?.[1]?.toLowerCase();
    if (word !== undefined) verdict.flag = word === "yes" || word === "true";
  }
  if (verdict.score === undefined && scoreHeader !== undefined) {
    const score = /^\s*(-?\d{1,6}(?:\.\d{1,6})?)\s*$/.exec(scoreHeader)?.[1];
    if (score !== undefined) verdict.score = Number(score);
  }
  if (sclHeader !== undefined) {
    const scl = /^\s*(-1|\d)\s*$/.exec(sclHeader)?.[1];
    if (scl !== undefined) verdict.scl = Number(scl);
  }
  return verdict;
}
