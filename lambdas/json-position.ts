/**
 * Where a JSON text stops being valid, as line and column, so config and secret errors can point
 * at the fault without quoting it. `JSON.parse`'s own messages quote the text around the fault
 * (`Unexpected token 'H', ..."password":Hunter2...`), and only some of them give a position, so
 * callers must never show them; this scanner finds the position itself.
 */

export interface JsonSyntaxPosition {
  /** 1-based. */
  readonly line: number;
  /** 1-based, in UTF-16 code units. */
  readonly column: number;
  /** True when the text ended before the value did. */
  readonly atEnd: boolean;
}

/** `JSON.parse(text)`, or the position of its first fault; never an error message. */
export function parseJsonOrPosition(
  text: string,
):
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly at: JsonSyntaxPosition } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, at: positionOf(text, jsonErrorOffset(text) ?? 0) };
  }
}

/** "line 3, column 15" or "unexpected end of input at line 3, column 1", for messages. */
export function describePosition(at: JsonSyntaxPosition): string {
  const where = `line ${at.line}, column ${at.column}`;
  return at.atEnd ? `unexpected end of input at ${where}` : where;
}

const LITERALS = ["true", "false", "null"];
/** RFC 8259 §6. */
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const HEX4 = /[0-9a-fA-F]{4}/y;

/**
 * The offset of the first character that makes `text` invalid RFC 8259 JSON (the length when it
 * ends too early), or undefined when it is valid. Iterative, so hostile nesting cannot overflow
 * the stack.
 */
export function jsonErrorOffset(text: string): number | undefined {
  const n = text.length;
  /** Open containers, innermost last. */
  const open: string[] = [];
  let i = 0;
  /** What the grammar allows next. */
  let expect: "value" | "value-or-]" | "key" | "key-or-}" | "comma-or-close" = "value";
  const skipSpace = () => {
    while (i < n && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) {
      i += 1;
    }
  };
  /** Advances past a string starting at `i`; false with `i` at the fault. */
  const string = (): boolean => {
    i += 1;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i += 1;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const escaped = text[i + 1];
        if (escaped === "u") {
          HEX4.lastIndex = i + 2;
          if (!HEX4.test(text)) return false;
          i += 6;
        } else if (escaped !== undefined && '"\\/bfnrt'.includes(escaped)) {
          i += 2;
        } else {
          i += 1;
          return false;
        }
      } else {
        i += 1;
      }
    }
    return false;
  };

  for (;;) {
    skipSpace();
    if (i >= n) return expect === "comma-or-close" && open.length === 0 ? undefined : n;
    const c = text[i];
    if (expect === "comma-or-close") {
      const top = open.at(-1);
      if (top === undefined) return i;
      if (c === ",") {
        i += 1;
        expect = top === "{" ? "key" : "value";
      } else if (c === (top === "{" ? "}" : "]")) {
        i += 1;
        open.pop();
      } else {
        return i;
      }
    } else if (expect === "key" || expect === "key-or-}") {
      if (c === "}" && expect === "key-or-}") {
        i += 1;
        open.pop();
        expect = "comma-or-close";
      } else if (c === '"') {
        if (!string()) return Math.min(i, n);
        skipSpace();
        if (i >= n) return n;
        if (text[i] !== ":") return i;
        i += 1;
        expect = "value";
      } else {
        return i;
      }
    } else if (c === "]" && expect === "value-or-]") {
      i += 1;
      open.pop();
      expect = "comma-or-close";
    } else if (c === "{" || c === "[") {
      open.push(c);
      i += 1;
      expect = c === "{" ? "key-or-}" : "value-or-]";
    } else if (c === '"') {
      if (!string()) return Math.min(i, n);
      expect = "comma-or-close";
    } else {
      const literal = LITERALS.find((word) => text.startsWith(word, i));
      NUMBER.lastIndex = i;
      if (literal !== undefined) i += literal.length;
      else if (NUMBER.test(text)) i = NUMBER.lastIndex;
      else return i;
      expect = "comma-or-close";
    }
  }
}

function positionOf(text: string, offset: number): JsonSyntaxPosition {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i += 1) {
    if (text[i] === "\n") {
      line += 1;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1, atEnd: offset >= text.length };
}
