/**
 * Authentication-Results (RFC 8601) parsing. The header is attacker-influenced (a sender can put
 * any number of them, of any size, in what it submits), so the parser is a single linear scan
 * with no regular expressions over the input: hostile values cost O(n), never backtracking.
 *
 * Trust note (RFC 8601 §5, §7.1): only headers added by your own border MTA are meaningful; anyone
 * upstream can forge one. Headers are read top-down and the first result per method wins, so the
 * header your MTA prepended (at the top) takes precedence over older or forged ones below it.
 * Pass `trustedAuthservIds` to ignore headers from any other authserv-id.
 */

/** Result keywords from RFC 8601 §2.7.1 (DKIM), §2.7.2 (SPF) and RFC 7489 §11.2 (DMARC). */
export const AUTH_RESULT_VALUES = [
  "none",
  "pass",
  "fail",
  "softfail",
  "neutral",
  "temperror",
  "permerror",
  "policy",
] as const;

export type AuthResultValue = (typeof AUTH_RESULT_VALUES)[number];

export interface AuthResults {
  spf?: AuthResultValue;
  dkim?: AuthResultValue;
  dmarc?: AuthResultValue;
}

export interface AuthResultsOptions {
  /**
   * When set, only headers whose authserv-id (RFC 8601 §2.5, compared case-insensitively) is in
   * this list are read.
   */
  readonly trustedAuthservIds?: readonly string[];
}

const METHODS: ReadonlySet<string> = new Set<keyof AuthResults>(["spf", "dkim", "dmarc"]);
const RESULTS: ReadonlySet<string> = new Set(AUTH_RESULT_VALUES);

type TokenKind = "word" | ";" | "=" | "/" | "end";

/**
 * Lexer for one header value: words (atoms, dot-atoms and quoted-strings) and the `;`, `=` and
 * `/` separators. CFWS (RFC 5322 §3.2.2), nested comments included, is skipped; an unterminated
 * comment or quoted-string runs to the end of the value. Each character is visited a bounded
 * number of times and words are only sliced out when the parser asks for their text, so hostile
 * values cost linear time and little garbage.
 */
class Lexer {
  /** Span of the current word; for a quoted-string, the content between the quotes. */
  private start = 0;
  private end = 0;
  private quoted = false;
  private pos = 0;

  constructor(private readonly value: string) {}

  next(): TokenKind {
    const value = this.value;
    const n = value.length;
    while (this.pos < n) {
      const c = value.charCodeAt(this.pos);
      if (c === 0x28 /* ( */) {
        this.skipComment();
      } else if (c === 0x22 /* " */) {
        this.start = ++this.pos;
        while (this.pos < n && value.charCodeAt(this.pos) !== 0x22) {
          this.pos += value.charCodeAt(this.pos) === 0x5c ? 2 : 1;
        }
        this.end = Math.min(this.pos, n);
        this.pos++;
        this.quoted = true;
        return "word";
      } else if (c === 0x3b || c === 0x3d || c === 0x2f) {
        this.pos++;
        return c === 0x3b ? ";" : c === 0x3d ? "=" : "/";
      } else if (isSpace(c)) {
        this.pos++;
      } else {
        this.start = this.pos;
        while (this.pos < n && !isDelimiter(value.charCodeAt(this.pos))) this.pos++;
        this.end = this.pos;
        this.quoted = false;
        return "word";
      }
    }
    return "end";
  }

  /** The current word's text, quoted-pairs resolved (RFC 5322 §3.2.1). */
  text(): string {
    const raw = this.value.slice(this.start, this.end);
    if (!this.quoted || !raw.includes("\\")) return raw;
    const pieces: string[] = [];
    let from = 0;
    for (let i = 0; i < raw.length; i++) {
      if (raw.charCodeAt(i) === 0x5c) {
        pieces.push(raw.slice(from, i));
        from = ++i;
      }
    }
    pieces.push(raw.slice(from));
    return pieces.join("");
  }

  private skipComment(): void {
    const value = this.value;
    const n = value.length;
    let depth = 0;
    do {
      const c = value.charCodeAt(this.pos);
      if (c === 0x5c) this.pos++;
      else if (c === 0x28) depth++;
      else if (c === 0x29) depth--;
      this.pos++;
    } while (this.pos < n && depth > 0);
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

function isDelimiter(c: number): boolean {
  return isSpace(c) || c === 0x28 || c === 0x22 || c === 0x3b || c === 0x3d || c === 0x2f;
}

/** The authserv-id and `method=result` pairs of one header value, in order. */
export interface ParsedAuthResultsHeader {
  readonly authservId: string;
  readonly results: ReadonlyArray<{ readonly method: string; readonly result: string }>;
}

/**
 * Parses one Authentication-Results value (without the field name). Returns null when there is
 * no authserv-id. Methods and results are lower-cased (RFC 8601 §2.2: case-insensitive).
 */
export function parseAuthResultsHeader(value: string): ParsedAuthResultsHeader | null {
  const lex = new Lexer(value);
  if (lex.next() !== "word") return null;
  const authservId = lex.text();
  const results: { method: string; result: string }[] = [];
  // Each resinfo (RFC 8601 §2.2) starts after a ";": methodspec = method ["/" version] "=" result,
  // followed by reasonspec / propspec, which are skipped up to the next ";".
  let kind = lex.next();
  while (kind !== "end") {
    if (kind !== ";") {
      kind = lex.next();
      continue;
    }
    kind = lex.next();
    if (kind !== "word") continue;
    const method = lex.text();
    kind = lex.next();
    if (kind === "/") {
      kind = lex.next();
      if (kind === "word") kind = lex.next();
    }
    if (kind !== "=") continue;
    kind = lex.next();
    if (kind !== "word") continue;
    results.push({ method: method.toLowerCase(), result: lex.text().toLowerCase() });
    kind = lex.next();
  }
  return { authservId, results };
}

/**
 * Folds any number of Authentication-Results values (topmost header first) into one result per
 * method: the first recognised result for spf, dkim and dmarc wins. Other methods, and result
 * keywords outside {@link AUTH_RESULT_VALUES} (the values RFC 8601 §2.7 and RFC 7489 §11.2
 * define), are skipped, so a later valid result for the method can still count. Returns
 * undefined when nothing was found.
 */
export function parseAuthResults(
  values: readonly string[],
  options: AuthResultsOptions = {},
): AuthResults | undefined {
  const trusted = options.trustedAuthservIds?.map((id) => id.toLowerCase());
  const out: AuthResults = {};
  let found = false;
  for (const value of values) {
    const header = parseAuthResultsHeader(value);
    if (header === null) continue;
    if (trusted !== undefined && !trusted.includes(header.authservId.toLowerCase())) continue;
    for (const { method, result } of header.results) {
      if (!isMethod(method) || !isResult(result)) continue;
      if (out[method] === undefined) {
        out[method] = result;
        found = true;
      }
    }
  }
  return found ? out : undefined;
}

function isMethod(value: string): value is keyof AuthResults {
  return METHODS.has(value);
}

function isResult(value: string): value is AuthResultValue {
  return RESULTS.has(value);
}
