/**
 * The top-level header block as a list, for rule engines downstream that need fields we did not
 * anticipate: every field in order, unfolded (RFC 5322 §2.2.3) and RFC 2047-decoded, bounded in
 * total size.
 */
import type { HeaderField } from "./parsed.ts";

/** One raw header line as mailsplit gives it: `line` is the field with its folds, in latin1. */
export interface RawHeaderLine {
  readonly key: string;
  readonly line: string;
}

/** Bound on the list: UTF-8 bytes of every name and value together (64 KiB). */
export const HEADER_LIST_BYTES = 64 * 1024;

export interface HeaderList {
  fields: HeaderField[];
  /** True when a field did not fit in the bound; it and every later field are left out. */
  truncated: boolean;
}

/**
 * The fields of `lines` in order, whole fields only, until the next one would take the total past
 * `maxBytes`. A line without a colon (no field name) is skipped.
 */
export function headerList(
  lines: readonly RawHeaderLine[],
  maxBytes: number = HEADER_LIST_BYTES,
): HeaderList {
  const fields: HeaderField[] = [];
  let total = 0;
  for (const { line } of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trimEnd();
    if (name === "") continue;
    const value = decodeWords(utf8(unfold(line.slice(colon + 1)).trim()));
    const bytes = Buffer.byteLength(name, "utf8") + Buffer.byteLength(value, "utf8");
    if (total + bytes > maxBytes) return { fields, truncated: true };
    total += bytes;
    fields.push({ name: utf8(name), value });
  }
  return { fields, truncated: false };
}

/** RFC 5322 §2.2.3: unfolding removes each CRLF that is followed by whitespace. */
export function unfold(value: string): string {
  return value.replace(/\r?\n(?=[ \t])/g, "");
}

/**
 * mailsplit keeps header bytes as a latin1 string; raw UTF-8 (RFC 6532) is read as UTF-8 unless it
 * is not valid UTF-8, in which case the latin1 reading is kept (as mailsplit does).
 */
function utf8(binary: string): string {
  // Pure ASCII needs no conversion, which is most header fields.
  if (!/[\u0080-\u00ff]/.test(binary)) return binary;
  const text = Buffer.from(binary, "latin1").toString("utf8");
  return text.includes("\uFFFD") ? binary : text;
}

/** An RFC 2047 §2 encoded-word: `=?charset[*lang]?B|Q?text?=` (lang from RFC 2231 §5). */
const ENCODED_WORD = /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=/g;

/**
 * Decodes the RFC 2047 encoded-words in `value`. Whitespace between two adjacent encoded-words is
 * dropped (§6.2), and adjacent words in one charset are decoded together, so a multi-byte
 * character split across two words survives. A word in a charset the runtime cannot decode is
 * left as it is.
 */
export function decodeWords(value: string): string {
  if (!value.includes("=?")) return value;
  let out = "";
  let last = 0;
  /** Adjacent words not yet decoded: their charset, bytes, and the source text as a fallback. */
  let run: { charset: string; bytes: Buffer[]; source: string } | undefined;
  const flush = (): void => {
    if (run === undefined) return;
    out += decodeCharset(run.charset, Buffer.concat(run.bytes)) ?? run.source;
    run = undefined;
  };
  for (const match of value.matchAll(ENCODED_WORD)) {
    const [word, rawCharset = "", encoding = "", text = ""] = match;
    const start = match.index;
    const between = value.slice(last, start);
    const adjacent = run !== undefined && /^[ \t\r\n]*$/.test(between);
    const charset = rawCharset.toLowerCase();
    const bytes = encoding.toLowerCase() === "b" ? fromBase64(text) : fromQ(text);
    if (adjacent && run?.charset === charset) {
      run.bytes.push(bytes);
      run.source += between + word;
    } else {
      flush();
      if (!adjacent) out += between;
      run = { charset, bytes: [bytes], source: word };
    }
    last = start + word.length;
  }
  flush();
  return out + value.slice(last);
}

function fromBase64(text: string): Buffer {
  return Buffer.from(text, "base64");
}

/** RFC 2047 §4.2: "Q" is quoted-printable with `_` for space. */
function fromQ(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5f) bytes.push(0x20);
    else if (c === 0x3d && /^[0-9a-f]{2}$/i.test(text.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c & 0xff);
  }
  return Buffer.from(bytes);
}

/** `bytes` in `charset` as a string, or undefined when the runtime does not know the charset. */
function decodeCharset(charset: string, bytes: Buffer): string | undefined {
  try {
    return new TextDecoder(charset).decode(bytes);
  } catch {
    return undefined;
  }
}
