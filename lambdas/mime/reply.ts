/**
 * `textReply`: the newest part of a text body, without the quoted history and the signature, as
 * support tools show first (Postmark's StrippedTextReply, Mailgun's stripped-text).
 *
 * A small rule set rather than a library: `email-reply-parser` pulls in the native `re2` module,
 * which a Lambda bundle cannot carry portably. The rules, in the languages mail clients localise
 * them into (en, de, fr, es, nl, it, pt):
 * - an attribution line ("On … wrote:", "Am … schrieb …:", "Le … a écrit :", …), which clients
 *   may wrap over up to three lines;
 * - a separator such as "-----Original Message-----" or Gmail's "---------- Forwarded message";
 * - Outlook's header block ("From: … / Sent: …", "Von: … / Gesendet: …", "De : … / Envoyé : …"),
 *   with the underscore rule Outlook puts above it;
 * - `>` quoted lines trailing the reply;
 * - a "-- " signature (RFC 3676 §4.3) and a trailing "Sent from my iPhone"-style line.
 * Interleaved replies keep their quotes: cutting them would lose the answers between them.
 */
import { preview } from "./text.ts";

/** Largest `textReply`, in UTF-8 bytes (16 KiB). */
export const TEXT_REPLY_BYTES = 16 * 1024;

/**
 * Characters of the body searched for where the history starts. A reply whose newest part is
 * longer than this has nothing separated (and would be cut at 16 KiB anyway); it bounds the work
 * on a 16 MiB body.
 */
const SCAN_CHARS = 256 * 1024;

/** Longest line (characters) tested against the attribution rules; real ones are far shorter. */
const MAX_ATTRIBUTION_CHARS = 400;

/** Attribution lines, tested on one line or up to three joined by a space. */
const ATTRIBUTION: readonly RegExp[] = [
  /^On\s.{1,300}\swrote:$/i, // en
  /^Am\s.{1,300}\sschrieb\b.{0,200}:$/i, // de
  /^Le\s.{1,300}\sa\s+écrit\s*:$/i, // fr
  /^El\s.{1,300}\sescribió\s*:$/i, // es
  /^Op\s.{1,300}\s(?:schreef\b.{0,200}|het volgende geschreven)\s*:$/i, // nl
  /^Il\s.{1,300}\sha\s+scritto\s*:$/i, // it
  /^Em\s.{1,300}\sescreveu\s*:$/i, // pt
];

/** "-----Original Message-----" and its translations; Gmail's forward marker. */
const SEPARATOR =
  /^-{3,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|Oorspronkelijk bericht|Messaggio originale|Mensagem original|Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado|Doorgestuurd bericht|Messaggio inoltrato|Mensagem encaminhada)\s*-*$/i;

/** The first line of Outlook's header block: "From:" and its translations (bold in HTML). */
const OUTLOOK_FROM = /^\*{0,2}(?:From|Von|De|Van|Da)\s?:\*{0,2}\s/i;
/** A later line of that block that only it has: "Sent:" / "Date:" and translations. */
const OUTLOOK_SENT =
  /^\*{0,2}(?:Sent|Date|Gesendet|Datum|Envoyé|Date d'envoi|Enviado|Fecha|Verzonden|Inviato|Data)\s?:\*{0,2}\s/i;
/** How many lines after "From:" the "Sent:" line may come (To/Cc may be wrapped). */
const OUTLOOK_WINDOW = 6;
/** The rule Outlook draws above its header block. */
const RULE = /^_{10,}$/;

const SIGNATURE = /^-- ?$/;
/** Mobile clients' default sign-off, when it is the last line of the reply. */
const MOBILE_SIGNOFF =
  /^(?:Sent from my \S.{0,60}|Get Outlook for \S.{0,40}|Von meinem \S.{0,40} gesendet|Envoyé de mon \S.{0,40}|Enviado desde mi \S.{0,40}|Verstuurd vanaf mijn \S.{0,40}|Inviato da(?:l mio)? \S.{0,40}|Enviado do meu \S.{0,40})$/i;

/**
 * The newest part of `text`, or undefined when no history, quote or signature could be separated
 * (or nothing is left once they are).
 */
export function textReply(text: string): string | undefined {
  const lines = text.slice(0, SCAN_CHARS).replace(/\r\n?/g, "\n").split("\n");
  if (text.length > SCAN_CHARS) lines.pop();
  const cut = historyStart(lines);
  let head: string[];
  if (cut === 0) {
    // Bottom-posting: the history comes first and the reply after it.
    head = bottomPosted(lines) ?? [];
  } else if (cut !== undefined) {
    head = lines.slice(0, cut);
  } else if (text.length > SCAN_CHARS) {
    return undefined;
  } else {
    head = lines;
  }
  head = withoutSignature(withoutTrailingQuote(head));
  const reply = head.join("\n").trim();
  if (reply === "" || reply === text.replace(/\r\n?/g, "\n").trim()) return undefined;
  return preview(reply, TEXT_REPLY_BYTES);
}

/** Index of the first line of the quoted history, or undefined when none is found. */
function historyStart(lines: readonly string[]): number | undefined {
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "") continue;
    if (SEPARATOR.test(line)) return i;
    if (isOutlookBlock(lines, i)) return ruleAbove(lines, i);
    if (isAttribution(lines, i)) return i;
  }
  return undefined;
}

function isAttribution(lines: readonly string[], i: number): boolean {
  let joined = "";
  for (let n = 0; n < 3 && i + n < lines.length; n++) {
    const part = (lines[i + n] ?? "").trim();
    if (part === "" && n > 0) return false;
    joined = n === 0 ? part : `${joined} ${part}`;
    if (joined.length > MAX_ATTRIBUTION_CHARS) return false;
    if (ATTRIBUTION.some((rule) => rule.test(joined))) return true;
  }
  return false;
}

function isOutlookBlock(lines: readonly string[], i: number): boolean {
  if (!OUTLOOK_FROM.test((lines[i] ?? "").trim())) return false;
  for (let n = 1; n <= OUTLOOK_WINDOW && i + n < lines.length; n++) {
    if (OUTLOOK_SENT.test((lines[i + n] ?? "").trim())) return true;
  }
  return false;
}

/** `i`, or the line of Outlook's rule when only blank lines separate it from the block. */
function ruleAbove(lines: readonly string[], i: number): number {
  let j = i - 1;
  while (j >= 0 && (lines[j] ?? "").trim() === "") j--;
  return j >= 0 && RULE.test((lines[j] ?? "").trim()) ? j : i;
}

const isQuoted = (line: string): boolean => line.trimStart().startsWith(">");
const isBlank = (line: string): boolean => line.trim() === "";

/** `lines` without the quoted lines (and blank lines among them) at their end. */
function withoutTrailingQuote(lines: readonly string[]): string[] {
  let end = lines.length;
  while (end > 0 && (isBlank(lines[end - 1] ?? "") || isQuoted(lines[end - 1] ?? ""))) end--;
  return lines.slice(0, end);
}

/** Cuts at a "-- " separator, or a mobile sign-off that ends the reply. */
function withoutSignature(lines: readonly string[]): string[] {
  const sig = lines.findIndex((line) => SIGNATURE.test(line.trimEnd()));
  const out = sig >= 0 ? lines.slice(0, sig) : [...lines];
  let last = out.length - 1;
  while (last >= 0 && isBlank(out[last] ?? "")) last--;
  if (last >= 0 && MOBILE_SIGNOFF.test((out[last] ?? "").trim())) return out.slice(0, last);
  return out;
}

/**
 * For a reply written below the history: the lines after the leading attribution and quote, if
 * what follows has no further quote (an interleaved reply is not separable this way).
 */
function bottomPosted(lines: readonly string[]): string[] | undefined {
  let i = 0;
  while (i < lines.length && isBlank(lines[i] ?? "")) i++;
  if (isAttribution(lines, i)) {
    // Skip the (possibly wrapped) attribution up to its colon line.
    while (i < lines.length && !(lines[i] ?? "").trimEnd().endsWith(":")) i++;
    i++;
  }
  const quoteStart = i;
  while (i < lines.length && (isBlank(lines[i] ?? "") || isQuoted(lines[i] ?? ""))) i++;
  if (i === quoteStart) return undefined;
  const rest = lines.slice(i);
  if (rest.some(isQuoted)) return undefined;
  return rest;
}
